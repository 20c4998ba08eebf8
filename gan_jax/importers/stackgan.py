"""Format `stackgan`: StackGAN-Pytorch's checkpoints (hanzhanggit/StackGAN-Pytorch, miscc/utils.save_model):
`netG_epoch_N.pth` and `netD_epoch_last.pth`, state dicts of STAGE1_G / STAGE1_D or STAGE2_G (its
frozen STAGE1_G under `STAGE1_G.`) / STAGE2_D. `--in` names the model directory (the newest netG_epoch_N
and netD_epoch_last) or one netG_*.pth file (sampling; D then keeps our initialization).

Mapping (code/model.py): every nn.Sequential taken in order, its Conv2d / Linear weights to our Conv_k /
Dense kernels and its BatchNorm weight, bias, running_mean, running_var to BatchNorm_k params and
batch_stats (num_batches_tracked is unused with a momentum and dropped). Stage I's fc output (and its
BatchNorm1d) is reordered from PyTorch's [C, 4, 4] view to our [4, 4, C]. Inferred: stage, z_dim, t_dim,
c_dim, g_width (GF_DIM), d_width (DF_DIM), r_num, upscale and the resolutions.
"""
from __future__ import annotations

import glob
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS, Format, Imported
from gan_jax.importers import statedict as sdm
from gan_jax.models import DataSpec, build_models

FORMAT = "stackgan"
EXPERIMENT = "experiments/stackgan_cub.py"


def files(path: str) -> dict[str, str]:
  """{"G": netG file, "D": netD file} from a model directory, or {"G" | "D": path} for one file."""
  if os.path.isdir(path):
    gs = glob.glob(os.path.join(path, "netG_epoch_*.pth"))
    epoch = lambda f: int(m.group(1)) if (m := re.search(r"_(\d+)\.pth$", f)) else -1  # noqa: E731
    found = {"G": max(gs, key=epoch)} if gs else {}
    ds = sorted(glob.glob(os.path.join(path, "netD_epoch_*.pth")), key=lambda f: ("last" in f, epoch(f)))
    if ds:
      found["D"] = ds[-1]
    if not found:
      raise ConfigError(f"{path}: no StackGAN checkpoint (netG_epoch_N.pth, netD_epoch_last.pth) in this directory")
    return found
  name = os.path.basename(path)
  if not re.fullmatch(r"net[GD]_.*\.pth", name):
    raise ConfigError(f"{path}: not a StackGAN network file (netG_epoch_N.pth or netD_epoch_last.pth)")
  return {name[3]: path}


def _seq(sd: dict, prefix: str) -> list[tuple[str, str]]:
  """The layers with tensors of the nn.Sequential at `prefix`, in order: ("conv" | "bn" | "linear", key prefix)."""
  idx = sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"\.(\d+)\.", k))})
  out = []
  for i in idx:
    key = f"{prefix}.{i}"
    if f"{key}.running_mean" in sd:
      out.append(("bn", key))
    elif f"{key}.weight" in sd:
      out.append(("conv" if np.ndim(sd[f"{key}.weight"]) == 4 else "linear", key))
  return out


def _fill_seq(m: sdm.Mapping, sd: dict, prefix: str, ours: str, names: dict | None = None) -> None:
  """Our Conv_k / BatchNorm_k (counted in order within `ours`) from the Sequential at `prefix`; `names`
  renames a layer by its official key (e.g. hr_joint's conv)."""
  count = {"conv": 0, "bn": 0}
  for kind, key in _seq(sd, prefix):
    if names and key in names:
      name = names[key]
    else:
      name = f"{'Conv' if kind == 'conv' else 'BatchNorm'}_{count[kind]}"
      count[kind] += 1
    if kind == "conv":
      m.put(f"params/{ours}/{name}/kernel", f"{key}.weight", sdm.conv)
      if m.has(f"{key}.bias"):
        m.put(f"params/{ours}/{name}/bias", f"{key}.bias")
    else:
      _bn(m, key, f"{ours}/{name}")


def _bn(m: sdm.Mapping, key: str, ours: str, fn=lambda x: x) -> None:
  m.put(f"params/{ours}/scale", f"{key}.weight", fn)
  m.put(f"params/{ours}/bias", f"{key}.bias", fn)
  m.put(f"batch_stats/{ours}/mean", f"{key}.running_mean", fn)
  m.put(f"batch_stats/{ours}/var", f"{key}.running_var", fn)


def _ca(m: sdm.Mapping, key: str, ours: str) -> None:
  m.put(f"params/{ours}/ca_net/fc/kernel", f"{key}ca_net.fc.weight", sdm.linear)
  m.put(f"params/{ours}/ca_net/fc/bias", f"{key}ca_net.fc.bias")


def _up_blocks(sd: dict, prefix: str) -> list[int]:
  return sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"upsample(\d+)\.", k))})


def _stage1(m: sdm.Mapping, sd: dict, p: str) -> None:
  _ca(m, p, "stage1")
  w = m.take(f"{p}fc.0.weight")
  if w is not None:   # h.view(-1, ngf, 4, 4): output c*16 + q -> ours q*ngf + c
    c = w.shape[0] // 16
    perm = np.arange(16 * c).reshape(c, 16).T.reshape(-1)
    m.put("params/stage1/fc/kernel", f"{p}fc.0.weight", value=w[perm].T)
    _bn(m, f"{p}fc.1", "stage1/BatchNorm_0", lambda x: x[perm])
  for i in _up_blocks(sd, p):
    _fill_seq(m, sd, f"{p}upsample{i}", f"stage1/upsample{i}")
  m.put("params/stage1/img/kernel", f"{p}img.0.weight", sdm.conv)


def _stage2(m: sdm.Mapping, sd: dict) -> None:
  _ca(m, "", "stage2")
  _fill_seq(m, sd, "encoder", "stage2")
  enc = sum(kind == "bn" for kind, _ in _seq(sd, "encoder"))
  m.put("params/stage2/hr_joint/kernel", "hr_joint.0.weight", sdm.conv)
  _bn(m, "hr_joint.1", f"stage2/BatchNorm_{enc}")
  for i in sorted({int(k.split(".")[1]) for k in sd if k.startswith("residual.")}):
    _fill_seq(m, sd, f"residual.{i}.block", f"stage2/residual{i}")
  for i in _up_blocks(sd, ""):
    _fill_seq(m, sd, f"upsample{i}", f"stage2/upsample{i}")
  m.put("params/stage2/img/kernel", "img.0.weight", sdm.conv)


def _generator(m: sdm.Mapping, sd: dict) -> None:
  if m.has("STAGE1_G.fc.0.weight"):
    _stage1(m, sd, "STAGE1_G.")
    _stage2(m, sd)
  else:
    _stage1(m, sd, "")


def _discriminator(m: sdm.Mapping, sd: dict) -> None:
  _fill_seq(m, sd, "encode_img", "encoder")
  _fill_seq(m, sd, "get_cond_logits.outlogits", "cond_head")
  if any(k.startswith("get_uncond_logits.") for k in sd):
    _fill_seq(m, sd, "get_uncond_logits.outlogits", "uncond_head")


def infer(nets: dict) -> dict:
  """Config values the files fix ("model.stage": 2, "model.g_width": 128, "data.resolution": 256, ...)."""
  out: dict = {}
  g = nets.get("G")
  if g is not None:
    stage = 2 if "STAGE1_G.fc.0.weight" in g else 1
    p = "STAGE1_G." if stage == 2 else ""
    ca = g[f"{p}ca_net.fc.weight"]
    out.update({"model.stage": stage, "model.c_dim": int(ca.shape[0]) // 2, "model.t_dim": int(ca.shape[1])})
    out["model.z_dim"] = int(g[f"{p}fc.0.weight"].shape[1]) - out["model.c_dim"]
    s1_width = int(g[f"{p}fc.0.weight"].shape[0]) // 16 // 8
    s1 = 4 * 2 ** len(_up_blocks(g, p))
    out["model.g_width"] = s1_width
    if stage == 2:
      width = int(g["encoder.0.weight"].shape[0])
      if width != s1_width:
        raise ConfigError(f"Stage II's GF_DIM {width} differs from its Stage I's {s1_width}; our StackGAN has one "
                          "model.g_width")
      out["model.r_num"] = len({k.split(".")[1] for k in g if k.startswith("residual.")})
      out["model.upscale"] = 2 ** (len(_up_blocks(g, "")) - 2)
      out["data.resolution"] = s1 * out["model.upscale"]
    else:
      out["data.resolution"] = s1
  d = nets.get("D")
  if d is not None:
    out["model.d_width"] = int(d["encode_img.0.weight"].shape[0])
    if g is None:
      out["model.stage"] = 2 if any(k.startswith("get_uncond_logits.") for k in d) else 1
  return out


def abstract_variables(settings: dict, spec: DataSpec):
  """Shapes of our G and D variables (init's, without the Stage-II run's Stage-I workdir check)."""
  g, d = build_models(sdm.settings_config(EXPERIMENT, settings).model, spec)
  m = sdm.settings_config(EXPERIMENT, settings).model
  keys = {"params": jax.random.PRNGKey(0), "noise": jax.random.PRNGKey(1)}
  ga = jax.eval_shape(lambda: g.init(keys, jnp.zeros((2, m.z_dim)), jnp.zeros((2, m.t_dim)), train=False))
  da = jax.eval_shape(lambda: d.init(keys, jnp.zeros((2, *spec.shape)), jnp.zeros((2, m.c_dim)), train=False))
  return ga, da


def convert(nets: dict, settings: dict, spec: DataSpec) -> dict:
  """nets: {"G" | "D": state dict of numpy arrays} -> {"g_params", "g_vars", "d_params", "d_vars"} (given nets)."""
  ga, da = abstract_variables(settings, spec)
  out: dict = {}
  for name, build, abstract in (("G", _generator, ga), ("D", _discriminator, da)):
    if name in nets:
      m = sdm.Mapping(nets[name], name, ignore=lambda k: k.endswith(".num_batches_tracked"))
      build(m, nets[name])
      tree = m.tree(abstract)
      out[f"{name.lower()}_params"] = tree["params"]
      out[f"{name.lower()}_vars"] = {"batch_stats": tree["batch_stats"]}
  return out


def read(path: str) -> Imported:
  """`path`: the model directory (netG_epoch_N.pth, netD_epoch_last.pth) or one of those files."""
  nets = {name: sdm.read_state_dict(f) for name, f in files(path).items()}
  settings = infer(nets)
  if "data.resolution" not in settings:
    raise ConfigError(f"{path}: a discriminator alone does not say the generator's settings; pass the model "
                      "directory or its netG_epoch_N.pth")
  res = settings["data.resolution"]
  spec = DataSpec("image", (res, res, 3), 0)
  trees = convert(nets, settings, spec)
  if "g_vars" in trees:   # the train state's caption table (text data): not in the file, our zeros
    config = sdm.settings_config(EXPERIMENT, settings)
    rows = min(config.model.num_captions, config.batch_size)
    trees["g_vars"]["captions"] = {"table": np.zeros((rows, settings["model.t_dim"]), np.float32)}
  notes = [] if "D" in nets else [f"no netD in {path}: the discriminator keeps our initialization"]
  experiment = EXPERIMENT + (":stage=2" if settings["model.stage"] == 2 else "")
  return Imported(model="stackgan", experiment=experiment, settings=settings, spec=spec,
                  g_params=trees.get("g_params"), d_params=trees.get("d_params"), g_vars=trees.get("g_vars"),
                  d_vars=trees.get("d_vars"), notes=notes)


FORMATS.register(FORMAT)(Format(read, "StackGAN-Pytorch (hanzhanggit/StackGAN-Pytorch): the model directory with "
                                      "netG_epoch_N.pth and netD_epoch_last.pth (Stage I or II), or netG_*.pth alone"))
