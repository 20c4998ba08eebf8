"""Format `transgan`: TransGAN's checkpoint (VITA-Group/TransGAN, train_derived.py save_checkpoint):
`checkpoint` / `checkpoint_best.pth`, a dict with gen_state_dict, dis_state_dict, avg_gen_state_dict
(the generator's parameter average: our EMA params), the optimizer states (not imported: a fine-tune
starts its optimizers afresh), epoch and fixed_z. Also a bare generator state dict (sampling).

Networks: models_search/ViT_custom_rp.py Generator and ViT_custom_scale2_rp_noise.py Discriminator
(the CIFAR-10 / STL-10 models). Linear weights are transposed, G's `deconv` 1x1 convolution becomes our
to_rgb dense layer, the relative-position tables map as they are (their index buffers are derived from
the window and dropped), D's noise_strength_1 to noise_strength. The official generator has no output
activation: the import sets model.g_tanh=False. Inferred: bottom_width, g_embed_dim, g_depths, z_dim,
heads, MLP ratios, d_embed_dim, d_depth, patch_size, the resolution and whether the norms are layer norms
(a parameter-free "pn" and "none" look alike in a file; "pn" is assumed, the STL-10 setting).
"""
from __future__ import annotations

import math
import os
import re

from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS, Format, Imported, torchfile
from gan_jax.importers import statedict as sdm
from gan_jax.models import DataSpec

FORMAT = "transgan"
EXPERIMENT = "experiments/transgan_cifar10.py"
_DROP = re.compile(r"\.relative_position_index$")


def _block(m: sdm.Mapping, key: str, ours: str) -> None:
  for norm in ("norm1", "norm2"):
    if m.has(f"{key}.{norm}.norm.weight"):
      m.put(f"params/{ours}/{norm}/ln/scale", f"{key}.{norm}.norm.weight")
      m.put(f"params/{ours}/{norm}/ln/bias", f"{key}.{norm}.norm.bias")
  m.put(f"params/{ours}/attn/qkv/kernel", f"{key}.attn.qkv.weight", sdm.linear)
  m.put(f"params/{ours}/attn/proj/kernel", f"{key}.attn.proj.weight", sdm.linear)
  m.put(f"params/{ours}/attn/proj/bias", f"{key}.attn.proj.bias")
  if m.has(f"{key}.attn.relative_position_bias_table"):
    m.put(f"params/{ours}/attn/relative_position_bias", f"{key}.attn.relative_position_bias_table")
  if m.has(f"{key}.attn.noise_strength_1"):
    m.put(f"params/{ours}/attn/noise_strength", f"{key}.attn.noise_strength_1", lambda x: x.reshape(()))
  for fc in ("fc1", "fc2"):
    m.put(f"params/{ours}/{fc}/kernel", f"{key}.mlp.{fc}.weight", sdm.linear)
    m.put(f"params/{ours}/{fc}/bias", f"{key}.mlp.{fc}.bias")


def _indices(sd: dict, prefix: str) -> list[int]:
  return sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})


def _g_stages(sd: dict) -> list[tuple[str, int]]:
  """(key prefix of the stage's blocks, depth) per stage: blocks.block., upsample_blocks.{k}.block."""
  stages = [("blocks.block.", len(_indices(sd, "blocks.block.")))]
  for k in _indices(sd, "upsample_blocks."):
    stages.append((f"upsample_blocks.{k}.block.", len(_indices(sd, f"upsample_blocks.{k}.block."))))
  return stages


def _generator(m: sdm.Mapping, sd: dict) -> None:
  m.put("params/l1/kernel", "l1.weight", sdm.linear)
  m.put("params/l1/bias", "l1.bias")
  for s, (prefix, depth) in enumerate(_g_stages(sd)):
    m.put(f"params/pos_embed{s}", f"pos_embed_{s + 1}", lambda x: x[0])
    for i in range(depth):
      _block(m, f"{prefix}{i}", f"stage{s}_block{i}")
  m.put("params/to_rgb/kernel", "deconv.0.weight", lambda w: w[:, :, 0, 0].T)
  m.put("params/to_rgb/bias", "deconv.0.bias")


def _discriminator(m: sdm.Mapping, sd: dict) -> None:
  for i in (1, 2):
    m.put(f"params/patch_embed{i}/kernel", f"fRGB_{i}.weight", sdm.conv)
    m.put(f"params/patch_embed{i}/bias", f"fRGB_{i}.bias")
    m.put(f"params/pos_embed{i}", f"pos_embed_{i}", lambda x: x[0])
  m.put("params/cls_token", "cls_token", lambda x: x.reshape(-1))
  for s in (1, 2):
    for i in _indices(sd, f"blocks_{s}."):
      _block(m, f"blocks_{s}.{i}", f"stage{s - 1}_block{i}")
  _block(m, "last_block.0", "last_block")
  if m.has("norm.norm.weight"):
    m.put("params/norm/ln/scale", "norm.norm.weight")
    m.put("params/norm/ln/bias", "norm.norm.bias")
  m.put("params/head/kernel", "head.weight", sdm.linear)
  m.put("params/head/bias", "head.bias")


def infer(g: dict | None, d: dict | None) -> dict:
  """Config values the state dicts fix ("model.g_embed_dim": 1024, "data.resolution": 32, ...)."""
  out: dict = {}
  if g is not None:
    n, c = g["pos_embed_1"].shape[1:]
    stages = _g_stages(g)
    bw = math.isqrt(int(n))
    first = stages[0][0] + "0"
    out.update({"model.bottom_width": bw, "model.g_embed_dim": int(c), "model.z_dim": int(g["l1.weight"].shape[1]),
                "model.g_depths": ",".join(str(depth) for _, depth in stages),
                "model.g_heads": int(g[f"{first}.attn.relative_position_bias_table"].shape[1]),
                "model.g_mlp_ratio": int(g[f"{first}.mlp.fc1.weight"].shape[0]) // int(c),
                "model.g_norm": "ln" if f"{first}.norm1.norm.weight" in g else "pn", "model.g_tanh": False,
                "data.resolution": bw * 2 ** (len(stages) - 1)})
  if d is not None:
    df = int(d["cls_token"].shape[-1])
    p = int(d["fRGB_1.weight"].shape[-1])
    out.update({"model.d_embed_dim": df, "model.d_depth": len(_indices(d, "blocks_1.")), "model.patch_size": p,
                "model.d_heads": int(d["blocks_1.0.attn.relative_position_bias_table"].shape[1]),
                "model.d_mlp_ratio": int(d["last_block.0.mlp.fc1.weight"].shape[0]) // df,
                "model.d_norm": "ln" if "norm.norm.weight" in d else "pn"})
    out.setdefault("data.resolution", p * math.isqrt(int(d["pos_embed_1"].shape[1])))
  return out


def convert(nets: dict, abstract=None) -> dict:
  """nets: {"G" | "G_avg" | "D": state dict} -> {"g_params", "ema_params", "d_params"} for the nets given,
  checked against `abstract` (our train state's shapes) here, or when fitted on import (None)."""
  out: dict = {}
  for name, field, build, group in (("G", "g_params", _generator, "g_params"),
                                    ("G_avg", "ema_params", _generator, "g_params"),
                                    ("D", "d_params", _discriminator, "d_params")):
    if name in nets:
      m = sdm.Mapping(nets[name], name, ignore=lambda k: bool(_DROP.search(k)))
      build(m, nets[name])
      out[field] = m.tree(None if abstract is None else {"params": sdm.field(abstract, group)}).get("params", {})
  return out


def _nets(path: str) -> dict:
  ckpt = torchfile.load(path)
  if not isinstance(ckpt, dict):
    raise ConfigError(f"{path}: not a TransGAN checkpoint (a dict); got {type(ckpt).__name__}")
  if "gen_state_dict" not in ckpt and "l1.weight" not in ckpt:
    raise ConfigError(f"{path}: no gen_state_dict (a TransGAN checkpoint) and not a generator state dict; keys: "
                      f"{sdm.names(ckpt)}")
  if "l1.weight" in ckpt:
    return {"G": dict(ckpt)}
  names = {"gen_state_dict": "G", "avg_gen_state_dict": "G_avg", "dis_state_dict": "D"}
  return {ours: dict(ckpt[k]) for k, ours in names.items() if k in ckpt}


def read(path: str) -> Imported:
  """`path`: the checkpoint file (or a directory holding `checkpoint`)."""
  if os.path.isdir(path):
    path = os.path.join(path, "checkpoint")
  nets = _nets(path)
  settings = infer(nets.get("G_avg", nets.get("G")), nets.get("D"))
  res = settings.pop("data.resolution")
  channels = int(nets["G"]["deconv.0.weight"].shape[0]) if "G" in nets else 3
  spec = DataSpec("image", (res, res, channels), 0)
  settings["data.resolution"] = res
  trees = convert(nets)   # checked against our train state's shapes on import (workdir.fit)
  notes = ["the optimizer states are not imported (a fine-tune starts Adam afresh)"]
  return Imported(model="transgan", experiment=EXPERIMENT, settings=settings, spec=spec,
                  g_params=trees.get("g_params"), d_params=trees.get("d_params"), ema_params=trees.get("ema_params"),
                  g_vars={}, d_vars={}, notes=notes)


FORMATS.register(FORMAT)(Format(read, "TransGAN (VITA-Group/TransGAN): train_derived.py's `checkpoint` (gen, dis and "
                                      "avg_gen state dicts), or a generator state dict"))
