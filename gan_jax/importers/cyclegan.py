"""Format `cyclegan`: the official CycleGAN checkpoints (junyanz/pytorch-CycleGAN-and-pix2pix), one
state dict per network, `<epoch>_net_{G_A,G_B,D_A,D_B}.pth` (`latest_` by default) in the run's
checkpoint directory.

`--in` names that directory (all four files: the full train state, generators and discriminators)
or one generator file (`latest_net_G_A.pth`: G_A alone, enough for scripts/translate.py, which only
translates A -> B; G_B alone likewise for B -> A). Official G_A maps A -> B (our g_ab), G_B maps
B -> A (g_ba); D_A judges G_A's outputs, domain B (our d_b), D_B domain A (our d_a).
Layouts: `ResnetGenerator` (norm 'instance', with or without dropout) and `NLayerDiscriminator`;
InstanceNorm has no parameters; the running-statistics buffers older versions saved for it are
ignored, as the official loader drops them (they are unused in the official inference). Inferred:
g_width (ngf), d_width (ndf), g_blocks, d_layers, the image channels.
"""
from __future__ import annotations

import glob
import os
import re

import jax
import numpy as np

from gan_jax.importers import FORMATS, Format, Imported
from gan_jax.importers import statedict as sdm
from gan_jax.models import DataSpec

FORMAT = "cyclegan"
EXPERIMENT = "experiments/cyclegan_horse2zebra.py"
NETS = ("G_A", "G_B", "D_A", "D_B")
OURS = {"G_A": ("g_params", "g_ab"), "G_B": ("g_params", "g_ba"), "D_A": ("d_params", "d_b"),
        "D_B": ("d_params", "d_a")}
_IN_BUFFER = re.compile(r"\.(running_mean|running_var|num_batches_tracked)$")


def _latest(directory: str) -> dict[str, str]:
  """Each network's newest file of a checkpoint directory (latest_ preferred)."""
  found = {}
  for net in NETS:
    cands = sorted(glob.glob(os.path.join(directory, f"*_net_{net}.pth")))
    latest = [c for c in cands if os.path.basename(c).startswith("latest_")]
    if latest or cands:
      found[net] = (latest or cands)[-1]
  return found


def files(path: str) -> dict[str, str]:
  """{official network name: file} from a directory (prefers latest_) or a single file."""
  return sdm.network_files(path, _latest, r"_net_(G_A|G_B|D_A|D_B)\.pth$", "CycleGAN network",
                           "<epoch>_net_G_A.pth, _G_B, _D_A or _D_B")


def _conv_indices(sd: dict) -> list[int]:
  return sorted({int(k.split(".")[1]) for k in sd if re.fullmatch(r"model\.\d+\.weight", k)
                 and np.ndim(sd[k]) == 4})


def _blocks(sd: dict) -> list[int]:
  return sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})


def _instance_norm_buffer(sd: dict, key: str) -> bool:
  """A running-statistics buffer of an InstanceNorm layer (one without an affine weight)."""
  return bool(_IN_BUFFER.search(key)) and key.rsplit(".", 1)[0] + ".weight" not in sd


def infer(nets: dict) -> dict:
  """The config values the files fix ("model.g_width": 64, ...), each from the first network showing it.
  (model.g_blocks = 0, the paper's choice by resolution, matches when it gives the file's count.)"""
  out = {}
  for name, sd in nets.items():
    if name.startswith("G") and "model.1.weight" in sd:
      out.setdefault("model.g_width", int(sd["model.1.weight"].shape[0]))
      out.setdefault("model.g_blocks", len(_blocks(sd)))
    elif name.startswith("D") and "model.0.weight" in sd:
      out.setdefault("model.d_width", int(sd["model.0.weight"].shape[0]))
      out.setdefault("model.d_layers", len(_conv_indices(sd)) - 2)
  return out


def _generator(m: sdm.Mapping, sd: dict) -> None:
  m.put("c7s1/kernel", "model.1.weight", sdm.conv)
  m.put("c7s1/bias", "model.1.bias")
  for i, k in enumerate((4, 7)):
    m.put(f"down_{i}/kernel", f"model.{k}.weight", sdm.conv)
    m.put(f"down_{i}/bias", f"model.{k}.bias")
  blocks = _blocks(sd)
  for i, k in enumerate(blocks):
    convs = sorted({int(key.split(".")[3]) for key in sd if key.startswith(f"model.{k}.conv_block.")
                    and key.endswith(".weight") and np.ndim(sd[key]) == 4})
    for j, c in enumerate(convs):
      m.put(f"block_{i}/conv_{j}/kernel", f"model.{k}.conv_block.{c}.weight", sdm.conv)
      m.put(f"block_{i}/conv_{j}/bias", f"model.{k}.conv_block.{c}.bias")
  last = (blocks[-1] if blocks else 9) + 1
  for i, k in enumerate((last, last + 3)):
    m.put(f"up_{i}/conv/kernel", f"model.{k}.weight", sdm.conv_transpose)
    m.put(f"up_{i}/conv/bias", f"model.{k}.bias")
  m.put("out/kernel", f"model.{last + 7}.weight", sdm.conv)
  m.put("out/bias", f"model.{last + 7}.bias")


def _discriminator(m: sdm.Mapping, sd: dict) -> None:
  idx = _conv_indices(sd)
  for i, k in enumerate(idx):
    name = "logits" if i == len(idx) - 1 else f"conv_{i}"
    m.put(f"{name}/kernel", f"model.{k}.weight", sdm.conv)
    m.put(f"{name}/bias", f"model.{k}.bias")


def convert(nets: dict, abstract: dict | None = None) -> dict:
  """nets: {official name: state dict of numpy arrays}; abstract: our train state's shapes (jax.eval_shape
  of the init: g_params {"g_ab", "g_ba"}, d_params {"d_a", "d_b"}) to check against here (None: when
  fitted on import). Returns that layout holding the official weights of the networks given."""
  out: dict = {}
  for name, sd in nets.items():
    group, ours = OURS[name]
    m = sdm.Mapping(sd, name, ignore=lambda k, sd=sd: _instance_norm_buffer(sd, k))
    (_generator if name.startswith("G") else _discriminator)(m, sd)
    out.setdefault(group, {})[ours] = m.tree(None if abstract is None else sdm.field(abstract, group)[ours],
                                             f"{ours}/")
  return out


def read(path: str) -> Imported:
  """`path`: the checkpoint directory (all four networks) or one network file."""
  nets = {name: sdm.read_state_dict(f) for name, f in files(path).items()}
  settings = infer(nets)
  g = next((sd for n, sd in nets.items() if n.startswith("G")), None)
  d = next((sd for n, sd in nets.items() if n.startswith("D")), None)
  channels = int((g["model.1.weight"] if g is not None else d["model.0.weight"]).shape[1])
  resolution = sdm.settings_config(EXPERIMENT, {}).data.resolution   # not in the files: any multiple of 4 fits
  spec = DataSpec("image", (resolution, resolution, channels), 0)
  missing = [n for n in NETS if n not in nets]
  # Checked against our train state's shapes on import (workdir.fit); a partial set takes the networks
  # it lacks from our initialization.
  state = sdm.abstract_state(EXPERIMENT, settings, spec, fresh=True) if missing else None
  trees = convert(nets, state)
  notes = []
  if missing:   # the others keep our initialization (seed 0)
    notes.append(f"{', '.join(missing)} not in {path}: freshly initialized (G_A alone serves translate.py "
                 "A -> B; training needs all four)")
    for name in missing:
      group, ours = OURS[name]
      trees.setdefault(group, {})[ours] = jax.tree.map(np.asarray, sdm.field(state, group)[ours])
  return Imported(model="cyclegan", experiment=EXPERIMENT, settings=settings, spec=spec,
                  g_params=trees["g_params"], d_params=trees["d_params"], notes=notes)


FORMATS.register(FORMAT)(Format(read, "CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix): the checkpoint directory with "
                                      "latest_net_{G_A,G_B,D_A,D_B}.pth, or one of them (G_A alone: translation)"))
