"""Importers of the official PyTorch state-dict checkpoints (BigGAN-PyTorch, CycleGAN, TransGAN,
StackGAN-Pytorch): the toy checkpoints the official code wrote (tests/fixtures/official/<model>/, made by
benchmarks/official/<model>.py) read through the format registry as the command line reads them, and
our networks' outputs on the fixture's inputs against the official ones (relative L2 <= 1e-5 each);
every name and shape of the published full-size networks mapped onto our full-size model, none left
on either side; and the one-line errors for missing, extra and misshapen tensors."""
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from gan_jax.cli import load_experiment
from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS
from gan_jax.importers import biggan as biggan_imp
from gan_jax.importers import cyclegan as cyclegan_imp
from gan_jax.importers import stackgan as stackgan_imp
from gan_jax.importers import statedict as sdm
from gan_jax.importers import transgan as transgan_imp
from gan_jax.models import DataSpec, build_models

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "official")
MODELS = ("cyclegan", "biggan", "stackgan", "stackgan_s2", "transgan")


def _manifest(model: str) -> dict:
  with open(os.path.join(FIXTURES, model, "manifest.json")) as f:
    return json.load(f)


def _config(manifest: dict):
  config = load_experiment(manifest["config"]["experiment"])
  for key, value in manifest["config"]["overrides"].items():
    section, name = key.split(".", 1)
    config[section][name] = value
  return config


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def _fixed_ca_eps(eps: list):
  """Flax interceptor: each CANet call (in call order) uses the official run's epsilon instead of a draw."""
  from gan_jax.models.stackgan import CANet
  it = iter(eps)

  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, CANet) and context.method_name == "__call__":
      _, mu, logvar = next_fun(*args, **kwargs)
      return mu + jnp.asarray(next(it)) * jnp.exp(0.5 * logvar), mu, logvar
    return next_fun(*args, **kwargs)
  return interceptor


def _apply(net, tree, variables, inputs, output: dict, manifest: dict, arrays):
  """One network of the fixture in inference mode (train=False); `output["method"]` chains D's methods
  ("encode+cond_logits": cond_logits(encode(x), mu)), `output["index"]` picks from a tuple result."""
  v = {"params": tree, **(variables or {})}
  if "method" in output:
    first, *rest = output["method"].split("+")
    h = net.apply(v, inputs[0], train=False, method=first, rngs={"noise": jax.random.PRNGKey(0)})
    for method in rest:
      h = net.apply(v, h, *inputs[1:], **({"train": False} if method == "cond_logits" else {}), method=method)
    return h
  eps = [arrays[k] for k in manifest.get("noise", {}).get("ca_eps", [])]
  rngs = {"noise": jax.random.PRNGKey(0)}   # TransGAN's D draws its (zero-strength) input noise
  if eps:
    with nn.intercept_methods(_fixed_ca_eps(eps)):
      out = net.apply(v, *inputs, train=False, rngs=rngs)
  else:
    out = net.apply(v, *inputs, train=False, rngs=rngs)
  return out[output["index"]] if "index" in output else out


@pytest.mark.slow   # the quick tier compares the same fixtures through the workdir (test_official_parity.py)
@pytest.mark.parametrize("model", MODELS)
def test_forward_parity(model):
  """The importers' trees applied directly (no workdir, no train state) against the official outputs."""
  m = _manifest(model)
  read = functools.lru_cache(lambda p: FORMATS.get(m["format"]).read(os.path.join(FIXTURES, model, p)))
  imported = read(m["import_path"])
  config = _config(m)
  for key, value in imported.settings.items():   # the manifest's config is the one the file describes
    section, name = key.split(".", 1)
    assert config[section][name] == value, key
  g, d = build_models(config.model, imported.spec)
  inputs = np.load(os.path.join(FIXTURES, model, m["inputs"]))
  outputs = np.load(os.path.join(FIXTURES, model, m["outputs_file"]))
  errors = {}
  for o in m["outputs"]:
    imp = read(o.get("import_path", m["import_path"]))    # an output may need one file read alone
    tree = getattr(imp, o["params"])
    tree = tree[o["key"]] if "key" in o else tree
    net, variables = (g, imp.g_vars) if o["net"] == "generator" else (d, imp.d_vars)
    ours = _apply(net, tree, variables, [jnp.asarray(inputs[k]) for k in o["inputs"]], o, m, inputs)
    errors[o["name"]] = rel_err(ours, outputs[o["name"]])
  print(model, errors)
  assert all(e <= m["tolerance"] for e in errors.values()), errors


def _zeros(shapes: dict) -> dict:
  """Zero-stride stand-ins of the official tensors: names and shapes without the memory."""
  return {k: np.broadcast_to(np.zeros((), np.float32), s) for k, s in shapes.items()}


def _full_shapes(model: str) -> dict:
  with open(os.path.join(FIXTURES, model, "full_shapes.json")) as f:
    return json.load(f)


def _mapped(tree) -> int:
  return len(jax.tree.leaves(tree))


def test_full_size_cyclegan_maps_onto_ours():
  """resnet_9blocks + basic D at ngf = ndf = 64: every official tensor onto our horse2zebra networks."""
  nets = {n: _zeros(s) for n, s in _full_shapes("cyclegan").items()}
  nets["G_B"], nets["D_B"] = nets["G_A"], nets["D_A"]
  settings = cyclegan_imp.infer(nets)
  assert settings == {"model.g_width": 64, "model.g_blocks": 9, "model.d_width": 64, "model.d_layers": 3}
  spec = DataSpec("image", (256, 256, 3), 0)
  state = sdm.abstract_state(cyclegan_imp.EXPERIMENT, settings, spec)
  trees = cyclegan_imp.convert(nets, state)
  assert jax.tree.map(np.shape, trees["g_params"]) == jax.tree.map(lambda x: x.shape, state.g_params)
  assert jax.tree.map(np.shape, trees["d_params"]) == jax.tree.map(lambda x: x.shape, state.d_params)


def test_full_size_biggan_maps_onto_ours():
  """The ImageNet 128x128 model (G_ch = D_ch = 96, dim_z 120, shared 128, 1000 classes, attention at 64)."""
  nets = {n: _zeros(s) for n, s in _full_shapes("biggan").items()}
  nets["G_ema"] = nets["G"]
  settings = biggan_imp.infer(nets)
  assert settings == {"data.resolution": 128, "data.num_classes": 1000, "model.g_width": 96, "model.d_width": 96,
                      "model.z_dim": 120, "model.shared_dim": 128, "model.shared": True, "model.hier": True,
                      "model.attention": 64}
  settings = {k: v for k, v in settings.items() if k.startswith("model.")}
  defaults = load_experiment("experiments/biggan_imagenet128.py").model
  assert {k: defaults[k.split(".")[1]] for k in settings} == settings   # the experiment is the published model
  state = sdm.abstract_state("experiments/biggan_imagenet128.py", settings, DataSpec("image", (128, 128, 3), 1000))
  trees = biggan_imp.convert(nets, state)
  shape = functools.partial(jax.tree.map, lambda x: tuple(np.shape(x)))
  assert shape(trees["g_params"]) == shape(state.g_params) == shape(trees["ema_params"])
  assert shape(trees["d_params"]) == shape(state.d_params)
  assert shape(trees["g_vars"]) == shape(state.g_vars) and shape(trees["d_vars"]) == shape(state.d_vars)


@pytest.mark.parametrize("stage", [1, 2])
def test_full_size_stackgan_maps_onto_ours(stage):
  """CUB Stage I (64x64) and Stage II (256x256) at cfg's defaults (GF_DIM 128, DF_DIM 64, R_NUM 4)."""
  nets = {n: _zeros(s) for n, s in _full_shapes("stackgan" + ("_s2" if stage == 2 else "")).items()}
  settings = stackgan_imp.infer(nets)
  res = 64 * 4 ** (stage - 1)
  assert settings["data.resolution"] == res and settings["model.stage"] == stage
  model = {k.split(".")[1]: v for k, v in settings.items() if k.startswith("model.")}
  defaults = load_experiment(f"experiments/stackgan_cub.py:stage={stage}").model
  assert {k: defaults[k] for k in model} == model   # the experiment is the published model
  spec = DataSpec("image", (res, res, 3), 0)
  trees = stackgan_imp.convert(nets, settings, spec)
  ga, da = stackgan_imp.abstract_variables(settings, spec)
  shape = functools.partial(jax.tree.map, lambda x: tuple(np.shape(x)))
  assert shape({"params": trees["g_params"], **trees["g_vars"]}) == shape(ga)
  assert shape({"params": trees["d_params"], **trees["d_vars"]}) == shape(da)


def test_full_size_transgan_maps_onto_ours():
  """The CIFAR-10 networks (exps/cifar_train.py: bottom width 8, gf 1024, depths 5,4,2, z 256; df 384)."""
  full = _full_shapes("transgan")
  nets = {"G": _zeros(full["G"]), "G_avg": _zeros(full["G"]), "D": _zeros(full["D"])}
  settings = transgan_imp.infer(nets["G"], nets["D"])
  defaults = load_experiment("experiments/transgan_cifar10.py")
  expected = {k: defaults[k.split(".")[0]][k.split(".")[1]] for k in settings}
  assert {k: v for k, v in settings.items() if k != "model.g_tanh"} == {
      k: v for k, v in expected.items() if k != "model.g_tanh"}
  spec = DataSpec("image", (32, 32, 3), 0)
  state = sdm.abstract_state(transgan_imp.EXPERIMENT, settings, spec)
  trees = transgan_imp.convert(nets, state)
  shape = functools.partial(jax.tree.map, lambda x: tuple(np.shape(x)))
  assert shape(trees["g_params"]) == shape(state.g_params) == shape(trees["ema_params"])
  assert shape(trees["d_params"]) == shape(state.d_params)


def _fixture_nets(model: str, names) -> dict:
  return {n: sdm.read_state_dict(os.path.join(FIXTURES, model, f)) for n, f in names.items()}


def test_strict_errors_name_the_tensors(tmp_path):
  """Missing, unexpected and misshapen tensors: one ConfigError line naming them."""
  nets = _fixture_nets("cyclegan", {"G_A": "latest_net_G_A.pth"})
  spec = DataSpec("image", (32, 32, 3), 0)
  state = sdm.abstract_state(cyclegan_imp.EXPERIMENT, cyclegan_imp.infer(nets), spec)
  sd = nets["G_A"]
  missing = {k: v for k, v in sd.items() if k != "model.4.bias"}
  with pytest.raises(ConfigError, match=r"G_A: missing tensors model\.4\.bias$"):
    cyclegan_imp.convert({"G_A": missing}, state)
  with pytest.raises(ConfigError, match=r"G_A: unexpected tensors extra\.weight"):
    cyclegan_imp.convert({"G_A": {**sd, "extra.weight": np.zeros(3, np.float32)}}, state)
  bad = {**sd, "model.4.weight": np.zeros((16, 4, 3, 3), np.float32)}
  with pytest.raises(ConfigError, match=r"G_A: shape mismatch: model\.4\.weight \(3, 3, 4, 16\) -> "
                                        r"g_ab/down_0/kernel \(3, 3, 4, 8\)$"):
    cyclegan_imp.convert({"G_A": bad}, state)
  nets = _fixture_nets("biggan", {"D": "D.pth"})
  settings = {k: v for k, v in biggan_imp.infer(nets).items() if k.startswith("model.")}
  state = sdm.abstract_state("experiments/biggan_imagenet128.py", {**settings, "model.conditional": True,
                                                                    "model.g_width": 4, "model.z_dim": 12,
                                                                    "model.shared_dim": 8},
                             DataSpec("image", (128, 128, 3), 5))
  bad = {**nets["D"], "embed.u0": np.zeros((1, 7), np.float32)}
  with pytest.raises(ConfigError, match=r"D: shape mismatch: embed\.u0 \(1, 7\) -> batch_stats/embed/u \(1, 5\)"):
    biggan_imp.convert({"D": bad}, state)
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(ConfigError, match="no BigGAN-PyTorch weights"):
    biggan_imp.files(str(tmp_path))
  with pytest.raises(ConfigError, match="not a CycleGAN network file"):
    cyclegan_imp.files(str(tmp_path / "notes.txt"))
