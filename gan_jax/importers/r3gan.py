"""Format `r3gan`: R3GAN's network pickles (brownvc/R3GAN, `network-snapshot-*.pkl` of its training loop:
`dict(G, D, G_ema, training_set_kwargs, cur_nimg, <phase>_opt_state)`), read without torch and without
running the pickle. Its modules are plain torch.nn classes named by module path
(`training.networks.Generator` wrapping `R3GAN.Networks.Generator` as `.Model`): they carry no
constructor arguments, so the architecture is read from the tensors' shapes (stage widths, blocks
per stage, cardinalities from the grouped convolutions, expansion, kernel size, noise and embedding
dimensions) and from the wrappers' `z_dim`, `c_dim`, `img_resolution`.

Names map onto gan_jax/models/r3gan.py: `MainLayers.i.Layers.j` residual blocks -> `stage{i}_block{j'}`
(LinearLayer1-3 -> linear1-3, NonLinearity1-2.Bias -> act1-2/bias), the transitions' 1x1
convolutions -> `stage{i}_transition`, G's GenerativeBasis -> `basis` [4, 4, C] and `basis_linear`, D's
DiscriminativeBasis -> `basis` (depthwise [4, 4, 1, C]) and `basis_linear`, `EmbeddingLayer` ->
`class_embedding` [classes, dim]; convolutions [O, I/g, k, k] -> [k, k, I/g, O], linear maps
transposed. The resamplers' `Kernel` buffers must be the [1, 2, 1] filter our model implements.
The official presets run their highest-resolution stages in bfloat16 (`FP16Stages`); the imported
networks run in float32 unless `--config.precision=bfloat16`.
"""
from __future__ import annotations

import re

import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS, Format, Imported, torchfile
from gan_jax.importers.workdir import nest
from gan_jax.models import DataSpec
from gan_jax.models import r3gan as ours

_BLOCK = re.compile(r"MainLayers\.(\d+)\.Layers\.(\d+)\.(LinearLayer[123]\.Layer\.weight|NonLinearity[12]\.Bias)$")


def _conv(x: np.ndarray) -> np.ndarray:
  return np.transpose(x, (2, 3, 1, 0))


def _stage_blocks(sd: dict) -> dict[int, list[int]]:
  """{stage: sorted Layers indices that are residual blocks}."""
  out: dict[int, set[int]] = {}
  for key in sd:
    m = _BLOCK.match(key)
    if m:
      out.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
  return {i: sorted(js) for i, js in sorted(out.items())}


def convert(sd: dict[str, np.ndarray], generator: bool, source: str) -> tuple[dict, dict]:
  """An official state dict (its `Model.` prefix removed) -> ({our path: array}, {derived buffers})."""
  params: dict[str, np.ndarray] = {}
  derived: dict[str, np.ndarray] = {}
  blocks = _stage_blocks(sd)
  last = max(blocks) if blocks else 0
  for key, x in sd.items():
    x = np.asarray(x, np.float32)
    m = _BLOCK.match(key)
    if m:
      i, j, leaf = int(m.group(1)), int(m.group(2)), m.group(3)
      name = f"stage{i}_block{blocks[i].index(j)}"
      if leaf.startswith("LinearLayer"):
        params[f"{name}/linear{leaf[11]}/kernel"] = _conv(x)
      else:
        params[f"{name}/act{leaf[12]}/bias"] = x
      continue
    if key.endswith("Resampler.Kernel"):
      derived[key] = x
      continue
    stage = re.match(r"MainLayers\.(\d+)\.Layers\.\d+\.(.*)$", key)
    if key == "AggregationLayer.Layer.weight":
      params["aggregation/kernel"] = _conv(x)
    elif key == "ExtractionLayer.Layer.weight":
      params["extraction/kernel"] = _conv(x)
    elif key == "EmbeddingLayer.weight":
      params["class_embedding"] = x.T
    elif stage and stage.group(2) == "LinearLayer.Layer.weight":
      params[f"stage{stage.group(1)}_transition/kernel"] = _conv(x)
    elif stage and generator and int(stage.group(1)) == 0 and stage.group(2) == "Basis":
      params["basis"] = np.transpose(x, (1, 2, 0))
    elif stage and not generator and int(stage.group(1)) == last and stage.group(2) == "Basis.weight":
      params["basis"] = _conv(x)
    elif stage and stage.group(2) == "LinearLayer.weight":
      params["basis_linear/kernel"] = x.T
    else:
      raise ConfigError(f"{source}: unexpected tensor {key} {x.shape} for an R3GAN "
                        f"{'generator' if generator else 'discriminator'}")
  return params, derived


def _architecture(sd: dict, source: str) -> dict:
  """Widths, blocks, cardinalities, expansion and kernel size per stage, from the blocks' shapes."""
  blocks = _stage_blocks(sd)
  if not blocks:
    raise ConfigError(f"{source}: no R3GAN residual blocks (Model.MainLayers.i.Layers.j.LinearLayer1) found")
  widths, cards, expansions, kernels = [], [], set(), set()
  for i, js in blocks.items():
    w1 = sd[f"MainLayers.{i}.Layers.{js[0]}.LinearLayer1.Layer.weight"]
    w2 = sd[f"MainLayers.{i}.Layers.{js[0]}.LinearLayer2.Layer.weight"]
    widths.append(int(w1.shape[1]))
    cards.append(int(w2.shape[0] // w2.shape[1]))
    expansions.add(int(w1.shape[0] // w1.shape[1]))
    kernels.add(int(w2.shape[2]))
  if len(expansions) != 1 or len(kernels) != 1:
    raise ConfigError(f"{source}: stages differ in expansion {sorted(expansions)} or kernel size {sorted(kernels)}")
  return {"widths": tuple(widths), "blocks": tuple(len(js) for js in blocks.values()),
          "cardinalities": tuple(cards), "expansion": expansions.pop(), "kernel_size": kernels.pop()}


def _model(data: dict, name: str, path: str) -> tuple[dict, dict] | None:
  """(wrapper attributes, state dict without the `Model.` prefix) of network `name`."""
  obj = data.get(name)
  if obj is None:
    return None
  if not isinstance(obj, torchfile.Placeholder) or not isinstance(obj.state, dict):
    raise ConfigError(f"{path}: {name} is a {type(obj).__name__}, not an R3GAN network")
  sd = torchfile.module_state_dict(obj)
  if not all(k.startswith("Model.") for k in sd):
    raise ConfigError(f"{path}: {name} is a {obj.qualname} without R3GAN's `Model` (training/networks.py)")
  return {k: v for k, v in obj.state.items() if not k.startswith("_")}, {k[6:]: v for k, v in sd.items()}


def _check_kernels(derived: dict, path: str, values: bool = True) -> None:
  f = ours.lowpass_filter()
  for key, k in derived.items():
    if np.shape(k) != (len(f), len(f)) or (values and not np.allclose(k, np.outer(f, f), atol=1e-7)):
      raise ConfigError(f"{path}: {key} is not the [1, 2, 1] resampling filter our model implements")


def read(path: str) -> Imported:
  data = torchfile.load(path)
  if not isinstance(data, dict) or not ({"G", "G_ema"} & set(data)):
    raise ConfigError(f"{path}: not an R3GAN network snapshot (a dict with G, D, G_ema)")
  nets = {n: _model(data, n, path) for n in ("G", "G_ema", "D")}
  attrs, sd = nets["G_ema"] or nets["G"]
  arch = _architecture(sd, f"{path}: G")
  c_dim = int(attrs.get("c_dim", 0))
  n = len(arch["widths"])
  res = 4 * 2 ** (n - 1)
  if attrs.get("img_resolution", res) != res:
    raise ConfigError(f"{path}: G has {n} stages ({res}x{res}) but img_resolution {attrs['img_resolution']}")
  channels = int(sd["AggregationLayer.Layer.weight"].shape[0])
  settings = {"model.z_dim": int(attrs.get("z_dim", sd["MainLayers.0.Layers.0.LinearLayer.weight"].shape[1])),
              **{f"model.{k}": v for k, v in arch.items()}, "model.conditional": c_dim > 0,
              "data.resolution": res, "data.channels": channels}
  if c_dim:
    settings["model.g_embed_dim"] = int(sd["EmbeddingLayer.weight"].shape[0])
  if nets["D"] is not None:
    d_sd = nets["D"][1]
    d_arch = _architecture(d_sd, f"{path}: D")
    mirrored = {k: (v[::-1] if isinstance(v, tuple) else v) for k, v in arch.items()}
    if d_arch != mirrored:
      raise ConfigError(f"{path}: D's stages {d_arch} do not mirror G's {arch}; our model builds D as G reversed")
    if c_dim:
      d_embed = int(d_sd["EmbeddingLayer.weight"].shape[0])
      settings["model.d_embed_dim"] = 0 if d_embed == arch["widths"][0] else d_embed   # 0: widths[0]
  out = Imported(model="r3gan", experiment=_experiment(res, c_dim), settings=settings,
                 spec=DataSpec("image", (res, res, channels), c_dim), g_vars={}, d_vars={},
                 step=0)
  for name, field in (("G", "g_params"), ("G_ema", "ema_params"), ("D", "d_params")):
    if nets[name] is None:
      out.notes.append(f"{name} absent: our fresh initialization kept")
      continue
    params, derived = convert(nets[name][1], name != "D", f"{path}: {name}")
    _check_kernels(derived, path)
    setattr(out, field, nest(params))
  if out.g_params is None:
    out.g_params = out.ema_params
  return out


def trees(nets: dict[str, dict]) -> dict[str, dict]:
  """{"G": state dict, "D": state dict} (with their `Model.` prefix) -> {"g_params", "d_params", ...};
  the resampling kernels' shapes are checked (their values by `read`)."""
  out = {}
  for name, sd in nets.items():
    params, derived = convert({k.removeprefix("Model."): v for k, v in sd.items()}, name != "D", name)
    _check_kernels(derived, name, values=False)
    out["d_params" if name == "D" else "g_params"] = nest(params)
    out["d_vars" if name == "D" else "g_vars"] = {}
  return out


def _experiment(res: int, c_dim: int) -> str:
  if res == 32:
    return "experiments/r3gan_cifar10.py" if c_dim in (0, 10) else "experiments/r3gan_imagenet32.py"
  if res == 64:
    return "experiments/r3gan_imagenet64.py" if c_dim else "experiments/r3gan_ffhq64.py"
  return "experiments/r3gan_ffhq256.py"


FORMATS.register("r3gan")(Format(read, "brownvc/R3GAN network pickles (network-snapshot-*.pkl)", trees))
