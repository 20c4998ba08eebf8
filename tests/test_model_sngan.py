"""sngan_resnet: the ResNet G/D of Miyato et al. 2018 (SNGAN) with the projection discriminator.

Reference parameter counts come from the official Chainer code (pfnet-research/sngan_projection),
instantiated with chainer 7.8.1 in a scratch virtualenv outside this repository and counted as
sum(p.size for p in model.params()): gen_models/resnet_32.ResNetGenerator(ch=256, dim_z=128,
bottom_width=4, n_classes=0|10) and dis_models/snresnet_32.SNResNetProjectionDiscriminator(ch=128,
n_classes=0|10), the arguments of configs/sn_cifar10_{un,}conditional.yml. The repository has no
STL-10 model file: its blocks (gen_models/resblocks.Block, dis_models/resblocks.{OptimizedBlock,
Block}, SNLinear) were put together as the paper's table 5 and counted the same way.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_script
from jax import lax

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models.sngan_resnet import DBlock, DOptimizedBlock, GBlock, ProjectionHead


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _paths(tree):
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in flat]


def _init(module, *args):
  """module.init(key, *args, train=False), jitted (one compilation instead of one per operation),
  from an "rbg" key: XLA:CPU compiles the initializers' threefry random bits 3-4x slower."""
  return jax.jit(lambda *a: module.init(jax.random.key(0, impl="rbg"), *a, train=False))(*args)


def _jit_apply(module, train=False):
  """A jitted `module.apply(variables, *args, train)` (updated batch_stats returned in training)."""
  if train:
    return jax.jit(lambda v, *a: module.apply(v, *a, train=True, mutable=["batch_stats"]))
  return jax.jit(lambda v, *a: module.apply(v, *a, train=False))


def _apply(module, variables, *args, train=False):
  return _jit_apply(module, train)(variables, *args)


def _models(res, channels=3, num_classes=0, conditional=False, **kw):
  c = model_config("sngan_resnet")
  c.conditional = conditional
  c.update(kw)
  return c, build_models(c, DataSpec("image", (res, res, channels), num_classes))


def _abstract_init(res, channels=3, num_classes=0, conditional=False, **kw):
  """Shapes of G's and D's variables, without computing anything (jax.eval_shape)."""
  c, (g, d) = _models(res, channels, num_classes, conditional, **kw)
  y = jnp.zeros((2,), jnp.int32) if conditional else None
  key = jax.random.PRNGKey(0)
  gv = jax.eval_shape(lambda: g.init(key, jnp.zeros((2, c.z_dim)), y, train=False))
  dv = jax.eval_shape(lambda: d.init(key, jnp.zeros((2, res, res, channels)), y, train=False))
  return gv, dv


@pytest.mark.parametrize("conditional,g_count,d_count", [
    # Official Chainer counts (see the module docstring): ResNetGenerator / SNResNetProjectionDiscriminator
    # of gen_models/resnet_32.py and dis_models/snresnet_32.py with configs/sn_cifar10_unconditional.yml ...
    (False, 4_276_739, 1_053_824),
    # ... and configs/sn_cifar10_conditional.yml (n_classes: 10). PyTorch-StudioGAN logs the same G,
    # 4,304,387 (logs/CIFAR10/SNGAN-train-2020_09_18_14_37_00.log line 10; its D has a bias: 1,055,105).
    (True, 4_304_387, 1_055_104),
])
def test_cifar10_parameter_counts_equal_the_official_code(conditional, g_count, d_count):
  gv, dv = _abstract_init(32, num_classes=10, conditional=conditional, variant="cifar")
  assert _count(gv["params"]) == g_count
  assert _count(dv["params"]) == d_count
  g, d = gv["params"], dv["params"]
  # Table 4: z (128) -> 4x4x256, three up blocks of 256, 3x3 conv to RGB.
  assert g["linear"]["kernel"].shape == (128, 4 * 4 * 256)
  assert [g[f"block{i}"]["conv1"]["conv"]["kernel"].shape for i in (1, 2, 3)] == [(3, 3, 256, 256)] * 3
  assert g["conv_out"]["kernel"].shape == (3, 3, 256, 3)
  # Table 4 (D): down, down, -, - blocks of 128, the first two with 1x1 shortcuts only.
  assert "shortcut" in d["block1"] and "shortcut" not in d["block2"] and "shortcut" not in d["block3"]
  assert "bias" not in d["head"]["linear"]["dense"]      # dis_models/snresnet_32.py: l5 nobias=True
  assert ("embed" in d["head"]) == conditional
  # Spectral norm in D only: a u vector per conv (10), the linear layer and the embedding in D's batch_stats.
  assert sum(p.endswith("/u") for p in _paths(dv["batch_stats"])) == (12 if conditional else 11)
  assert not any(p.endswith("/u") for p in _paths(gv["batch_stats"]))


def test_stl10_parameter_counts_equal_the_official_blocks():
  # Official Chainer blocks arranged as the paper's table 5 (module docstring): 4,878,083 and 10,141,440.
  gv, dv = _abstract_init(48, g_width=64, d_width=64)          # variant "auto" -> "stl" at 48x48
  assert _count(gv["params"]) == 4_878_083
  assert _count(dv["params"]) == 10_141_440
  g, d = gv["params"], dv["params"]
  assert g["linear"]["kernel"].shape == (128, 6 * 6 * 512)
  assert [g[f"block{i}"]["conv2"]["conv"]["kernel"].shape[-1] for i in (1, 2, 3)] == [256, 128, 64]
  assert [d[f"block{i}"]["conv2"]["conv"]["kernel"].shape[-1] for i in range(5)] == [64, 128, 256, 512, 1024]
  # dis_models/resblocks.Block: the first conv keeps the input width.
  assert d["block1"]["conv1"]["conv"]["kernel"].shape == (3, 3, 64, 64)


def test_output_shapes_ranges_and_state_updates():
  c, (g, d) = _models(16, 1, variant="cifar", g_width=8, d_width=8)
  z = jax.random.normal(jax.random.PRNGKey(1), (3, 128))
  gv = _init(g, z)
  x, upd = _apply(g, gv, z, train=True)
  assert x.shape == (3, 16, 16, 1)
  assert float(jnp.max(jnp.abs(x))) <= 1.0 and float(jnp.std(x)) > 0.01
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(upd), jax.tree.leaves(gv["batch_stats"])))
  dv = _init(d, x)
  logits = _apply(d, dv, x)
  assert logits.shape == (3,) and bool(jnp.all(jnp.isfinite(logits)))


def test_conditioning_changes_g_and_d():
  c, (g, d) = _models(16, 1, num_classes=10, conditional=True, variant="stl", g_width=4, d_width=4)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, 128))
  y0, y1 = jnp.array([0, 1, 2, 3]), jnp.array([4, 5, 6, 7])
  gv = _init(g, z, y0)
  # Class gains start at 1 and biases at 0 (official CBN init): perturb them as training would.
  gp = jax.tree.map(np.asarray, gv["params"])
  cbn = gp["block1"]["norm1"]["cbn"]
  cbn["gain"]["embedding"] = cbn["gain"]["embedding"] + np.random.RandomState(0).randn(*cbn["gain"]["embedding"].shape)
  gv = {**gv, "params": gp}
  g_fn, d_fn = _jit_apply(g), _jit_apply(d)
  x0, x1 = g_fn(gv, z, y0), g_fn(gv, z, y1)
  assert x0.shape == (4, 16, 16, 1) and float(jnp.max(jnp.abs(x0))) <= 1.0
  assert float(jnp.max(jnp.abs(x0 - x1))) > 1e-3
  dv = _init(d, x0, y0)
  assert float(jnp.max(jnp.abs(d_fn(dv, x0, y0) - d_fn(dv, x0, y1)))) > 1e-4
  with pytest.raises(ValueError, match="needs labels"):
    g.apply(gv, z, train=False)


def test_initialization_is_the_official_glorot_uniform():
  """gen_models/resblocks.py: GlorotUniform(sqrt(2)) on the 3x3 convs, GlorotUniform() on the shortcut."""
  c, (g, _) = _models(32, 3, g_width=64)
  p = _init(g, jnp.zeros((1, 128)))["params"]
  k3 = np.asarray(p["block2"]["conv1"]["conv"]["kernel"])
  k1 = np.asarray(p["block2"]["shortcut"]["conv"]["kernel"])
  bound3 = np.sqrt(2) * np.sqrt(6 / (9 * 64 + 9 * 64))
  bound1 = np.sqrt(6 / (64 + 64))
  assert np.abs(k3).max() <= bound3 and np.abs(k3).max() > 0.98 * bound3
  assert np.abs(k1).max() <= bound1 and np.abs(k1).max() > 0.98 * bound1
  np.testing.assert_allclose(np.std(k3), bound3 / np.sqrt(3), rtol=0.05)   # uniform: std = bound / sqrt(3)
  assert not np.any(np.asarray(p["block2"]["conv1"]["conv"]["bias"]))


def test_bad_configs_raise_config_errors():
  with pytest.raises(ConfigError, match="divisible by 16"):
    _models(24, variant="stl")
  with pytest.raises(ConfigError, match="resolution >= 16"):
    _models(8)
  with pytest.raises(ConfigError, match="unknown value 'resnet'; valid: auto, cifar, stl"):
    _models(32, variant="resnet")
  with pytest.raises(ConfigError, match="needs a dataset with labels"):
    _models(32, num_classes=0, conditional=True)
  with pytest.raises(ConfigError, match="needs image data"):
    build_models(model_config("sngan_resnet"), DataSpec("vector", (2,)))


# ---- The blocks against direct computations (plain convolutions, spectral norm off: the SN layers
# are tested in tests/test_layers.py).

def _conv(x, p):
  """3x3 or 1x1 "SAME" convolution of NHWC x with the HWIO kernel and bias of an SNConv's params."""
  k = p["conv"]["kernel"]
  y = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               precision=lax.Precision.HIGHEST)
  return y + p["conv"]["bias"]


def _up(x):
  return np.repeat(np.repeat(np.asarray(x), 2, axis=1), 2, axis=2)


def _pool(x):
  b, h, w, c = x.shape
  return np.asarray(x).reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _bn(x, gain, bias, eps):
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  return (x - mean) / np.sqrt(var + eps) * gain[:, None, None, :] + bias[:, None, None, :]


def _relu(x):
  return np.maximum(np.asarray(x), 0)


def test_gblock_against_a_direct_computation():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 3, 6))
  y = jnp.array([0, 1, 2, 1])
  m = GBlock(5, num_classes=3)
  v = _init(m, x, y)
  rs = np.random.RandomState(0)
  p = jax.tree.map(lambda a: np.asarray(a) + 0.3 * rs.randn(*a.shape).astype(np.float32), v["params"])
  out, _ = _apply(m, {"params": p, "batch_stats": v["batch_stats"]}, x, y, train=True)
  n1, n2 = p["norm1"]["cbn"], p["norm2"]["cbn"]
  h = _relu(_bn(np.asarray(x), n1["gain"]["embedding"][y], n1["bias"]["embedding"][y], 2e-5))
  h = _conv(_up(h), p["conv1"])
  h = _relu(_bn(np.asarray(h), n2["gain"]["embedding"][y], n2["bias"]["embedding"][y], 2e-5))
  expected = _conv(h, p["conv2"]) + _conv(_up(x), p["shortcut"])
  assert out.shape == (4, 6, 6, 5)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("down,hidden_from_input,features", [(True, True, 8), (False, True, 6), (False, False, 8)])
def test_dblock_against_a_direct_computation(down, hidden_from_input, features):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 6))
  m = DBlock(features, down=down, hidden_from_input=hidden_from_input, use_sn=False)
  p = _init(m, x)["params"]
  hidden = 6 if hidden_from_input else features
  assert p["conv1"]["conv"]["kernel"].shape == (3, 3, 6, hidden)
  h = _conv(_relu(_conv(_relu(x), p["conv1"])), p["conv2"])
  h = _pool(h) if down else h
  if down or features != 6:
    sc = _conv(x, p["shortcut"])
    sc = _pool(sc) if down else sc
  else:
    assert "shortcut" not in p           # identity shortcut
    sc = x
  np.testing.assert_allclose(_apply(m, {"params": p}, x), h + sc, rtol=1e-4, atol=1e-5)


def test_optimized_block_and_projection_head_against_a_direct_computation():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 2))
  m = DOptimizedBlock(5, use_sn=False)
  p = _init(m, x)["params"]
  expected = _pool(_conv(_relu(_conv(x, p["conv1"])), p["conv2"])) + _conv(_pool(x), p["shortcut"])
  np.testing.assert_allclose(_apply(m, {"params": p}, x), expected, rtol=1e-4, atol=1e-5)

  y = jnp.array([2, 0, 1])
  head = ProjectionHead(num_classes=3, use_sn=False)
  hp = _init(head, x, y)["params"]
  h = _relu(x).sum(axis=(1, 2))                                   # global sum pooling
  expected = h @ np.asarray(hp["linear"]["dense"]["kernel"])[:, 0] + (np.asarray(hp["embed"]["embed"]["embedding"])[
      np.asarray(y)] * h).sum(-1)
  np.testing.assert_allclose(_apply(head, {"params": hp}, x, y), expected, rtol=1e-4, atol=1e-4)


# ---- Through the trainer.

def _metric(workdir, key):
  return [(r["step"], r[key]) for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if key in r]


@pytest.mark.slow
def test_runlocal_learns_digits_and_4_devices_equal_1(tmp_path):
  """The conditional runlocal experiment (categorical CBN in G, projection D with spectral norm,
  hinge loss) moves the digit Fréchet distance clearly below the untrained generator's within 100
  steps; its first two steps sharded over 4 devices give the same losses (global-batch BatchNorm,
  spectral-norm vectors updated identically). n_dis 2 instead of the recipe's 5: the unrolled
  train step with 5 D updates takes XLA:CPU 2.4x as long to compile (32 s against 14 s)."""
  spec = experiment("sngan_cifar10") + ":runlocal,conditional"
  common = ["--config.log_every=1", "--config.sample_every=0", "--config.n_critic=2"]
  wd = str(tmp_path / "run")
  r = run_script("train.py", "--config", spec, "--workdir", wd, *common, "--config.total_steps=100",
                 "--config.eval.every=100", "--config.ckpt_every=100")
  assert r.returncode == 0, r.stderr[-3000:]
  fd = dict(_metric(wd, "digit_fd"))
  assert sorted(fd) == [0, 100]
  assert fd[100] < 0.75 * fd[0], fd

  sharded = str(tmp_path / "dev4")
  r = run_script("train.py", "--config", spec, "--workdir", sharded, *common, "--config.total_steps=2",
                 "--config.eval.every=0", "--config.ckpt_every=2", devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "4 devices" in r.stderr
  keys = ("d_loss", "g_loss", "d_real", "d_fake")
  one = np.array([[row[k] for k in keys] for row in read_jsonl(os.path.join(wd, "metrics.jsonl"))
                  if "d_loss" in row][:2])
  four = np.array([[row[k] for k in keys] for row in read_jsonl(os.path.join(sharded, "metrics.jsonl"))])
  assert four.shape == (2, 4) and np.all(np.isfinite(four))
  np.testing.assert_allclose(four, one, atol=1e-4, rtol=1e-4)
