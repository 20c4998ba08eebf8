"""Formats `stylegan2-ada` and `stylegan3`: NVIDIA's network pickles (NVlabs/stylegan2-ada-pytorch,
NVlabs/stylegan3: `network-snapshot-*.pkl`, the published `*.pkl`), read without torch and without
running the pickle or the module source it embeds (gan_jax/importers/torchfile.py).

A snapshot is `dict(training_set_kwargs, G, D, G_ema, augment_pipe, ...)`; each network is a
persistent object whose state holds its constructor arguments (`_init_kwargs`: the architecture)
and its torch.nn state (parameters and buffers). The architecture settings come from those
arguments (official defaults where a key is absent), resolution and labels from the networks
(`img_resolution`, `c_dim`; `training_set_kwargs` where present must agree).

Tensor names map one to one onto ours (gan_jax/models/stylegan2.py, stylegan3.py): `a.b.weight`
-> `a/b/weight`, G's `mapping`/`synthesis` -> `mapping_net`/`synthesis_net`; convolutions
[O, I, kh, kw] -> [kh, kw, I, O], dense [O, I] -> [I, O], the 4x4 constant [C, 4, 4] -> [4, 4, C].
Buffers: `w_avg` and `magnitude_ema` -> the "stats" collection, StyleGAN3's Fourier `freqs` and
`phases` -> "consts"; `noise_const` (the fixed noise of noise_mode 'const') -> `Imported.extras`
(not in the train state); `resample_filter`, `up_filter`, `down_filter` are designed from the
settings, and the input's user `transform` must be the identity; these are not imported.
G's buffers come from G_ema (the training loop copies G's buffers into G_ema every step).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS, Format, Imported, torchfile
from gan_jax.importers.workdir import nest
from gan_jax.models import DataSpec

DERIVED = ("resample_filter", "up_filter", "down_filter")   # designed from the settings
STATS = ("w_avg", "magnitude_ema")
CONSTS = ("freqs", "phases")


def _plain(x: Any) -> Any:
  """EasyDicts and OrderedDicts -> dicts, recursively (constructor arguments as data)."""
  if isinstance(x, dict):
    return {k: _plain(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return type(x)(_plain(v) for v in x)
  return x


def network(data: dict, name: str, path: str) -> tuple[dict, dict] | None:
  """(constructor kwargs, state dict) of snapshot network `name`, None when absent."""
  obj = data.get(name)
  if obj is None:
    return None
  if not isinstance(obj, torchfile.PersistentObject) or not isinstance(obj.state, dict):
    raise ConfigError(f"{path}: {name} is a {getattr(obj, 'qualname', type(obj).__name__)}, not a network of "
                      "NVIDIA's persistence layer (torch_utils.persistence)")
  return _plain(obj.state.get("_init_kwargs") or {}), torchfile.module_state_dict(obj)


def convert(sd: dict[str, np.ndarray], renames: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
  """Official state dict -> {collection: {our path "a/b/c": array}}, collections "params", "stats",
  "consts", "noise_const" (apply-time) and "derived" (designed buffers, not imported)."""
  out: dict[str, dict[str, np.ndarray]] = {"params": {}, "stats": {}, "consts": {}, "noise_const": {}, "derived": {}}
  for key, x in sd.items():
    parts = key.split(".")
    parts[0] = renames.get(parts[0], parts[0])
    leaf = parts[-1]
    x = np.asarray(x, np.float32)
    if leaf in DERIVED or leaf == "transform":
      coll = "derived"
    elif leaf == "noise_const":
      coll, parts[-1] = "noise_const", "noise"
    elif leaf in STATS:
      coll = "stats"
      if leaf == "w_avg" and parts[0] == "mapping_net":
        parts = parts[-1:]   # our G keeps w_avg at its top
    elif leaf in CONSTS:
      coll = "consts"
    else:
      coll = "params"
      if leaf == "const" and x.ndim == 3:
        x = np.transpose(x, (1, 2, 0))
      elif x.ndim == 4:
        x = np.transpose(x, (2, 3, 1, 0))
      elif x.ndim == 2:
        x = np.transpose(x)
    out[coll]["/".join(parts)] = x
  return out


def _check_noise(noise: dict[str, np.ndarray], source: str) -> None:
  """noise_const of layer synthesis_net/b{R}/convK is [R, R]."""
  for key, x in noise.items():
    res = int(key.split("/")[1][1:])
    if np.shape(x) != (res, res):
      raise ConfigError(f"{source}: {key} has shape {np.shape(x)}, ({res}, {res}) expected")


def trees(nets: dict[str, dict]) -> dict[str, Any]:
  """{"G": state dict, "D": state dict} -> {"g_params", "g_vars", "d_params", "d_vars"}; the designed
  filter buffers and the fixed noise maps are accounted for, not placed."""
  out = {}
  for name, sd in nets.items():
    conv = convert(sd, {"mapping": "mapping_net", "synthesis": "synthesis_net"} if name != "D" else {})
    _check_noise(conv["noise_const"], name)
    who = "d" if name == "D" else "g"
    out[f"{who}_params"] = nest(conv["params"])
    out[f"{who}_vars"] = {c: nest(conv[c]) for c in ("stats", "consts") if conv[c]}
  return out


def _check_transform(derived: dict, path: str) -> None:
  for key, t in derived.items():
    if key.endswith("transform") and not np.allclose(t, np.eye(3)):
      raise ConfigError(f"{path}: {key} is not the identity: a user transform of the Fourier features is not "
                        "imported (pass it to synthesis(..., transform=) instead)")


def _unsupported(path: str, what: str, have: Any, ours: Any) -> None:
  if have != ours:
    raise ConfigError(f"{path}: {what} is {have!r}; our model supports only {ours!r}")


def _mapping_settings(mk: dict, w_avg_beta: float, layers: int) -> dict:
  return {"model.mapping_layers": mk.get("num_layers", layers),
          "model.mapping_lr_mul": mk.get("lr_multiplier", 0.01), "model.w_avg_beta": mk.get("w_avg_beta", w_avg_beta)}


def _d_settings(dk: dict, path: str, prefix: str = "model.") -> dict:
  ek = dk.get("epilogue_kwargs", {})
  _unsupported(path, "D mapping_kwargs", {k: v for k, v in dk.get("mapping_kwargs", {}).items()
                                          if (k, v) not in (("num_layers", 8), ("lr_multiplier", 0.01))}, {})
  _unsupported(path, "D block_kwargs.activation", dk.get("block_kwargs", {}).get("activation", "lrelu"), "lrelu")
  _unsupported(path, "D cmap_dim", dk.get("cmap_dim"), None)
  return {f"{prefix}channel_base": dk.get("channel_base", 32768), f"{prefix}channel_max": dk.get("channel_max", 512),
          "model.d_architecture": dk.get("architecture", "resnet"),
          "model.mbstd_group_size": ek.get("mbstd_group_size", 4),
          "model.mbstd_num_channels": ek.get("mbstd_num_channels", 1)}


def _spec(gk: dict, data: dict, path: str) -> DataSpec:
  res, ch, c_dim = int(gk["img_resolution"]), int(gk["img_channels"]), int(gk.get("c_dim", 0))
  tsk = data.get("training_set_kwargs") or {}
  if tsk.get("resolution") not in (None, res):
    raise ConfigError(f"{path}: training_set_kwargs.resolution {tsk['resolution']} but G's img_resolution {res}")
  if c_dim and tsk.get("use_labels") is False:
    raise ConfigError(f"{path}: G is conditional (c_dim {c_dim}) but training_set_kwargs.use_labels is False")
  return DataSpec("image", (res, res, ch), c_dim)


def _imported(data: dict, path: str, model: str, experiment: str, renames: dict, settings: dict,
              spec: DataSpec) -> Imported:
  nets = {name: network(data, name, path) for name in ("G", "D", "G_ema")}
  if nets["G"] is None and nets["G_ema"] is None:
    raise ConfigError(f"{path}: no generator (G or G_ema) in this pickle; keys: {', '.join(map(str, data))}")
  out = Imported(model=model, experiment=experiment, settings=settings, spec=spec)
  gen_buffers = None
  for name, field in (("G", "g_params"), ("G_ema", "ema_params"), ("D", "d_params")):
    if nets[name] is None:
      out.notes.append(f"{name} absent: our fresh initialization kept")
      continue
    conv = convert(nets[name][1], renames if name != "D" else {})
    _check_transform(conv["derived"], path)
    _check_noise(conv["noise_const"], path)
    setattr(out, field, nest(conv["params"]))
    colls = {c: nest(conv[c]) for c in ("stats", "consts") if conv[c]}
    if name == "D":
      out.d_vars = colls
    elif name == "G_ema" or gen_buffers is None:
      gen_buffers = colls
    if conv["noise_const"]:
      out.extras[field] = {"noise_const": nest(conv["noise_const"])}
  out.g_vars = gen_buffers
  if out.g_params is None:   # a published pickle with G_ema only: it is the generator to fine-tune
    out.g_params = out.ema_params
  return out


def read_stylegan2_ada(path: str) -> Imported:
  data = _snapshot(path)
  gk = (network(data, "G_ema", path) or network(data, "G", path))[0]
  sd_g = (network(data, "G_ema", path) or network(data, "G", path))[1]
  if any(k.startswith("synthesis.input.") for k in sd_g):
    raise ConfigError(f"{path}: this is a StyleGAN3 generator (synthesis.input.*): use --format stylegan3")
  return _stylegan2(data, path, gk, 0.995)


def _stylegan2(data: dict, path: str, gk: dict, w_avg_beta: float) -> Imported:
  sk, mk = gk.get("synthesis_kwargs", {}), gk.get("mapping_kwargs", {})
  _unsupported(path, "G synthesis architecture", sk.get("architecture", "skip"), "skip")
  _unsupported(path, "G mapping embed/layer features", {k: mk[k] for k in ("embed_features", "layer_features")
                                                        if mk.get(k) not in (None, gk["w_dim"])}, {})
  clamp = sk.get("conv_clamp")
  settings = {"model.z_dim": gk["z_dim"], "model.w_dim": gk["w_dim"], "model.conditional": gk.get("c_dim", 0) > 0,
              **_mapping_settings(mk, w_avg_beta, 8), "model.channel_base": sk.get("channel_base", 32768),
              "model.channel_max": sk.get("channel_max", 512), "model.conv_clamp": clamp or 0,
              "data.resolution": gk["img_resolution"], "data.channels": gk["img_channels"]}
  d = network(data, "D", path)
  if d is not None:
    ds = _d_settings(d[0], path)
    for key in ("model.channel_base", "model.channel_max"):
      _unsupported(path, f"D {key.split('.')[1]} (ours shares G's)", ds[key], settings[key])
    _unsupported(path, "D conv_clamp (ours shares G's)", d[0].get("conv_clamp") or 0, clamp or 0)
    settings.update(ds)
  experiment = ("experiments/stylegan2_ffhq256.py:cfg=stylegan2,resolution=1024" if gk["img_resolution"] == 1024
                else "experiments/stylegan2_ffhq256.py")
  return _imported(data, path, "stylegan2", experiment, {"mapping": "mapping_net", "synthesis": "synthesis_net"},
                   settings, _spec(gk, data, path))


# StyleGAN3 synthesis settings: our config key (or None: fixed in our model) and the official default.
SG3_SYNTHESIS = {
    "channel_base": ("model.channel_base", 32768), "channel_max": ("model.channel_max", 512),
    "num_layers": ("model.num_layers", 14), "num_critical": ("model.num_critical", 2),
    "margin_size": ("model.margin_size", 10), "conv_kernel": ("model.conv_kernel", 3),
    "filter_size": ("model.filter_size", 6), "lrelu_upsampling": ("model.lrelu_upsampling", 2),
    "use_radial_filters": ("model.use_radial_filters", False), "conv_clamp": ("model.conv_clamp", 256),
    "magnitude_ema_beta": ("model.magnitude_ema_beta", 0.999),
    "first_cutoff": (None, 2), "first_stopband": (None, 2**2.1), "last_stopband_rel": (None, 2**0.3),
    "output_scale": (None, 0.25),
}


def read_stylegan3(path: str) -> Imported:
  data = _snapshot(path)
  gk, sd_g = network(data, "G_ema", path) or network(data, "G", path)
  if not any(k.startswith("synthesis.input.") for k in sd_g):
    # The stylegan3 repository's cfg=stylegan2 networks (training/networks_stylegan2.py).
    return _stylegan2(data, path, gk, 0.998)
  settings = {"model.z_dim": gk["z_dim"], "model.w_dim": gk["w_dim"], "model.conditional": gk.get("c_dim", 0) > 0,
              **_mapping_settings(gk.get("mapping_kwargs", {}), 0.998, 2), "data.resolution": gk["img_resolution"],
              "data.channels": gk["img_channels"]}
  for name, (key, default) in SG3_SYNTHESIS.items():
    value = gk.get(name, default)
    if key is None:
      if not math.isclose(float(value), float(default)):
        raise ConfigError(f"{path}: G {name} is {value!r}; our model fixes it at the official default {default!r}")
    else:
      settings[key] = (value or 0) if name == "conv_clamp" else value
  d = network(data, "D", path)
  if d is not None:
    settings.update(_d_settings(d[0], path, prefix="model.d_"))
  args = ([f"resolution={gk['img_resolution']}"] if gk["img_resolution"] == 1024 else []) + (
      ["cfg=stylegan3-r"] if gk.get("conv_kernel", 3) == 1 else [])
  experiment = "experiments/stylegan3_ffhqu256.py" + (":" + ",".join(args) if args else "")
  return _imported(data, path, "stylegan3", experiment, {"mapping": "mapping_net", "synthesis": "synthesis_net"},
                   settings, _spec(gk, data, path))


def _snapshot(path: str) -> dict:
  data = torchfile.load(path)
  if not isinstance(data, dict) or not ({"G", "G_ema"} & set(data)):
    what = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
    raise ConfigError(f"{path}: not a network pickle of NVIDIA's training loop (no G or G_ema; it holds {what})")
  return data


FORMATS.register("stylegan2-ada")(Format(read_stylegan2_ada, "NVlabs/stylegan2-ada-pytorch network pickles (*.pkl)",
                                        trees))
FORMATS.register("stylegan3")(Format(read_stylegan3, "NVlabs/stylegan3 network pickles (*.pkl; T, R and its "
                                                     "StyleGAN2 networks)", trees))
