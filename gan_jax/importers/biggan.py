"""Format `biggan-pytorch`: BigGAN-PyTorch's weights (ajbrock/BigGAN-PyTorch, utils.save_weights):
`G.pth`, `D.pth` and `G_ema.pth` (with --ema), each a state dict, in the run's weights directory
(`--in` names it, or G.pth / G_ema.pth alone for sampling).

Mapping (BigGAN.py Generator / Discriminator with G_param = D_param = 'SN'): every SN layer's weight
and bias go to params, its power-iteration vector u0 [1, out] and logged sv0 to our SpectralNorm's u
and sigma (batch_stats); ccbn's gain/bias SNLinear maps (or, without --G_shared, nn.Embedding tables)
and its stored_mean/stored_var (with --mybn / --cross_replica, its inner BN's), the output bn's
gain/bias/statistics, the shared embedding, attention's theta/phi/g/o and gamma. The linear layer's
outputs are reordered from PyTorch's [C, 4, 4] view to our [4, 4, C] (its u0 with them: sigma is
unchanged). G_ema.pth becomes the EMA params; its BN statistics and u vectors replace G's (ours are
shared by G and its EMA, and sampling uses the EMA).
Inferred from the file: resolution (number of G blocks), g_width, d_width, z_dim, shared_dim, hier,
shared, attention, the number of classes. Not in the files: SN_eps, BN_eps (the config's).
"""
from __future__ import annotations

import os
import re

import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS, Format, Imported
from gan_jax.importers import statedict as sdm
from gan_jax.models import DataSpec
from gan_jax.models.biggan import D_ARCH, G_ARCH

FORMAT = "biggan-pytorch"
FILES = {"G": "G.pth", "D": "D.pth", "G_ema": "G_ema.pth"}


def files(path: str) -> dict[str, str]:
  """{"G" | "D" | "G_ema": file} from the weights directory, or one file named G.pth / G_ema.pth / D.pth
  (with an optional `_suffix`, as save_weights' copies: G_best0.pth)."""
  return sdm.network_files(
      path, lambda d: {k: os.path.join(d, f) for k, f in FILES.items() if os.path.isfile(os.path.join(d, f))},
      r"^(G_ema|G|D)(_[^.]*)?\.pth$", "BigGAN-PyTorch weights", "G.pth, G_ema.pth or D.pth")


def _g_blocks(sd: dict) -> int:
  return len({int(k.split(".")[1]) for k in sd if k.startswith("blocks.")})


def _attention_block(sd: dict) -> int | None:
  hits = [int(k.split(".")[1]) for k in sd if re.fullmatch(r"blocks\.\d+\.1\.gamma", k)]
  return hits[0] if hits else None


def infer(nets: dict) -> dict:
  """Config values the files fix ("model.g_width": 96, "data.resolution": 128, ...)."""
  out: dict = {}
  g = nets.get("G_ema", nets.get("G"))
  if g is not None:
    n = _g_blocks(g)
    res = 4 * 2 ** n
    if res not in G_ARCH:
      raise ConfigError(f"G has {n} blocks ({res}x{res}); our BigGAN has {sorted(G_ARCH)}")
    out["data.resolution"] = res
    out["model.g_width"] = int(g["blocks.0.0.conv1.weight"].shape[0]) // G_ARCH[res][1][0]
    shared = "shared.weight" in g
    out["model.shared"] = shared
    bn_in = int(g["blocks.0.0.bn1.gain.weight"].shape[1 if shared else 0])
    if shared:
      out["model.shared_dim"] = int(g["shared.weight"].shape[1])
      chunk = bn_in - out["model.shared_dim"]
      out["model.hier"] = chunk > 0
      out["model.z_dim"] = int(g["linear.weight"].shape[1]) * (n + 1 if chunk > 0 else 1)
      out["data.num_classes"] = int(g["shared.weight"].shape[0])
    else:
      out["model.hier"] = False
      out["model.z_dim"] = int(g["linear.weight"].shape[1])
      out["data.num_classes"] = bn_in
    a = _attention_block(g)
    out["model.attention"] = 8 * 2 ** a if a is not None else 0
  d = nets.get("D")
  if d is not None:
    n = len({int(k.split(".")[1]) for k in d if k.startswith("blocks.")})
    res = {len(v[0]): r for r, v in D_ARCH.items()}.get(n)
    if res is None:
      raise ConfigError(f"D has {n} blocks; our BigGAN's have {sorted(len(v[0]) for v in D_ARCH.values())}")
    out.setdefault("data.resolution", res)
    out["model.d_width"] = int(d["blocks.0.0.conv1.weight"].shape[0]) // D_ARCH[res][0][0]
    a = _attention_block(d)
    d_attn = D_ARCH[res][2][a] if a is not None else 0
    if out.setdefault("model.attention", d_attn) != d_attn:
      raise ConfigError(f"G's attention is at {out['model.attention']} and D's at {d_attn}; our BigGAN has one "
                        "model.attention for both")
    out.setdefault("data.num_classes", int(d["embed.weight"].shape[0]))
  return out


def _sn(m: sdm.Mapping, ours: str, layer: str, key: str, transform, bias: bool = True) -> None:
  """One SN layer: weight (+ bias) into params, u0/sv0 into batch_stats."""
  m.put(f"params/{ours}/{layer}/kernel", f"{key}.weight", transform)
  if bias:
    m.put(f"params/{ours}/{layer}/bias", f"{key}.bias")
  m.put_sn(f"batch_stats/{ours}", layer, "kernel", key)


def _attention(m: sdm.Mapping, ours: str, key: str) -> None:
  for part in ("theta", "phi", "g", "o"):
    _sn(m, f"{ours}/{part}", "conv", f"{key}.{part}", sdm.conv, bias=False)
  m.put(f"params/{ours}/gamma", f"{key}.gamma", lambda x: x.reshape(()))


def _bn_stats(m: sdm.Mapping, key: str, ours: str) -> None:
  """A BN's running statistics: stored_mean/var of ccbn and bn; with --mybn those of its myBN (`.bn.stored_*`,
  its accumulation_counter dropped), with --cross_replica those of its SyncBN (`.bn.running_*`)."""
  for base in (key, f"{key}.bn"):
    for mean, var in (("stored_mean", "stored_var"), ("running_mean", "running_var")):
      if m.has(f"{base}.{mean}"):
        m.put(f"batch_stats/{ours}/mean", f"{base}.{mean}")
        m.put(f"batch_stats/{ours}/var", f"{base}.{var}")
        for unused in ("accumulation_counter", "num_batches_tracked"):
          if m.has(f"{base}.{unused}"):
            m.take(f"{base}.{unused}")
        return
  m.take(f"{key}.stored_mean")   # reported as missing


def _generator(m: sdm.Mapping, sd: dict) -> None:
  if m.has("shared.weight"):
    m.put("params/shared/embedding", "shared.weight")
  w = m.take("linear.weight")
  if w is not None:   # PyTorch's h.view(B, C, 4, 4): output c*16 + p -> ours p*C + c
    c = w.shape[0] // 16
    perm = np.arange(16 * c).reshape(c, 16).T.reshape(-1)
    m.put("params/linear/dense/kernel", "linear.weight", value=w[perm].T)
    m.put("params/linear/dense/bias", "linear.bias", lambda b: b[perm])
    m.put(("batch_stats", "linear", "SpectralNorm_0", "dense/kernel/u"), "linear.u0", lambda u: u[:, perm])
    m.put(("batch_stats", "linear", "SpectralNorm_0", "dense/kernel/sigma"), "linear.sv0", lambda x: x.reshape(()))
  for i in range(_g_blocks(sd)):
    b = f"blocks.{i}.0"
    for conv in ("conv1", "conv2", "conv_sc"):
      _sn(m, f"block{i}/{conv}", "conv", f"{b}.{conv}", sdm.conv)
    for bn in ("bn1", "bn2"):
      for part in ("gain", "bias"):
        key = f"{b}.{bn}.{part}"
        if m.has(f"{key}.u0"):      # SNLinear(bias=False) of [shared, z chunk]
          _sn(m, f"block{i}/{bn}/{part}", "dense", key, sdm.linear, bias=False)
        else:                       # nn.Embedding [classes, C]: our one-hot dense kernel as is
          m.put(f"params/block{i}/{bn}/{part}/dense/kernel", f"{key}.weight")
      _bn_stats(m, f"{b}.{bn}", f"block{i}/{bn}/bn")
    if m.has(f"blocks.{i}.1.gamma"):
      _attention(m, f"attention{i}", f"blocks.{i}.1")
  m.put("params/out_bn/scale", "output_layer.0.gain")
  m.put("params/out_bn/bias", "output_layer.0.bias")
  _bn_stats(m, "output_layer.0", "out_bn")
  _sn(m, "out_conv", "conv", "output_layer.2", sdm.conv)


def _discriminator(m: sdm.Mapping, sd: dict) -> None:
  for i in sorted({int(k.split(".")[1]) for k in sd if k.startswith("blocks.")}):
    for conv in ("conv1", "conv2", "conv_sc"):
      if m.has(f"blocks.{i}.0.{conv}.weight") or conv != "conv_sc":
        _sn(m, f"block{i}/{conv}", "conv", f"blocks.{i}.0.{conv}", sdm.conv)
    if m.has(f"blocks.{i}.1.gamma"):
      _attention(m, f"attention{i}", f"blocks.{i}.1")
  _sn(m, "linear", "dense", "linear", sdm.linear)
  if m.has("embed.weight"):
    m.put("params/embed/embed/embedding", "embed.weight")
    m.put("batch_stats/embed/u", "embed.u0")
    m.put("batch_stats/embed/sigma", "embed.sv0", lambda x: x.reshape(()))


def _part(abstract, name: str, collection: str | None = None):
  """`abstract`'s field `name` (its `collection`), or None without an abstract state."""
  if abstract is None:
    return None
  tree = sdm.field(abstract, name)
  return tree if collection is None else tree[collection]


def _variables(sd: dict, source: str, build, abstract_params, abstract_stats) -> tuple[dict, dict]:
  m = sdm.Mapping(sd, source)
  build(m, sd)
  tree = m.tree(None if abstract_params is None else {"params": abstract_params, "batch_stats": abstract_stats})
  return tree["params"], tree.get("batch_stats", {})


def convert(nets: dict, abstract=None) -> dict:
  """nets: {"G" | "D" | "G_ema": state dict of numpy arrays}; abstract: our train state's shapes, to
  check the trees against here (None: when they are fitted on import). Returns {"g_params", "g_vars",
  "d_params", "d_vars", "ema_params"} for the networks given."""
  g_params, g_vars = _part(abstract, "g_params"), _part(abstract, "g_vars", "batch_stats")
  out: dict = {}
  for name in ("G", "G_ema"):
    if name in nets:
      params, stats = _variables(nets[name], name, _generator, g_params, g_vars)
      out["g_params" if name == "G" else "ema_params"] = params
      if name == "G_ema" or "g_vars" not in out:
        out["g_vars"] = {"batch_stats": stats}
  if "D" in nets:
    params, stats = _variables(nets["D"], "D", _discriminator, _part(abstract, "d_params"),
                               _part(abstract, "d_vars", "batch_stats"))
    out["d_params"], out["d_vars"] = params, {"batch_stats": stats}
  return out


def read(path: str) -> Imported:
  """`path`: the weights directory (G.pth, D.pth, G_ema.pth, whichever exist) or one of those files."""
  nets = {name: sdm.read_state_dict(f) for name, f in files(path).items()}
  inferred = infer(nets)
  res, classes = inferred.pop("data.resolution"), inferred.pop("data.num_classes")
  g = nets.get("G_ema", nets.get("G"))
  channels = int(g["output_layer.2.weight"].shape[0] if g is not None
                 else nets["D"]["blocks.0.0.conv1.weight"].shape[1])
  settings = {**inferred, "model.conditional": True, "data.resolution": res}
  experiment = "experiments/biggan_cifar10.py" if res == 32 else "experiments/biggan_imagenet128.py"
  spec = DataSpec("image", (res, res, channels), classes)
  trees = convert(nets)   # checked against our train state's shapes on import (workdir.fit)
  notes = [f"{n}.pth not in {path}: freshly initialized" for n in FILES if n not in nets]
  return Imported(model="biggan", experiment=experiment, settings=settings, spec=spec, g_params=trees.get("g_params"),
                  d_params=trees.get("d_params"), ema_params=trees.get("ema_params"), g_vars=trees.get("g_vars"),
                  d_vars=trees.get("d_vars"), notes=notes)


FORMATS.register(FORMAT)(Format(read, "BigGAN-PyTorch (ajbrock/BigGAN-PyTorch): the weights directory with G.pth, "
                                      "D.pth, G_ema.pth, or one of them"))
