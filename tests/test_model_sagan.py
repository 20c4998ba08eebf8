"""sagan: the ImageNet 128x128 SAGAN of Zhang et al. 2019 (official TF code brain-research/self-attention-gan).

Reference parameter counts: the official code is TensorFlow 1 with tf.contrib (not installable
here), so its count was taken from the shapes of the trainable tf.get_variable calls its graph makes
(generator.py generator_test / generator_test_64, discriminator.py discriminator_test /
discriminator_test_64, ops.py snconv2d / snlinear / sn_embedding / ConditionalBatchNorm /
batch_norm(scale=True), non_local.sn_non_local_block_sim; gf_dim = df_dim = 64, z_dim 128, 1000
classes as train_imagenet.py/model.py set them; the spectral-norm u vectors and the BN moving
statistics are trainable=False), summed in a scratch script outside this repository. For feat64
that sum equals the count PyTorch-StudioGAN logs for its ImageNet SAGAN, a second, independent
source (logs/IMAGENET/SAGAN-train-2021_02_11_16_18_59.log, lines 10 and 120).
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_script

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _paths(tree):
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in flat]


def _init(module, *args):
  """module.init(key, *args, train=False), jitted, from an "rbg" key (XLA:CPU compiles the
  initializers' threefry random bits 3-4x slower)."""
  return jax.jit(lambda *a: module.init(jax.random.key(0, impl="rbg"), *a, train=False))(*args)


def _models(res, channels=3, num_classes=1000, conditional=True, **kw):
  c = model_config("sagan")
  c.conditional = conditional
  c.update(kw)
  return c, build_models(c, DataSpec("image", (res, res, channels), num_classes))


@pytest.mark.parametrize("attn_res,g_count,d_count", [
    # feat64 (the published IS 52.52 / FID 18.65 model): official TF variable shapes (module
    # docstring) = StudioGAN's logged counts (logs/IMAGENET/SAGAN-train-2021_02_11_16_18_59.log:10, :120).
    (64, 42_017_412, 39_448_258),
    # feat32 (generator_test / discriminator_test, the README's launch command): official TF variable shapes.
    (32, 42_078_852, 39_463_618),
])
def test_imagenet128_parameter_counts_equal_the_official_code(attn_res, g_count, d_count):
  c, (g, d) = _models(128, attn_res=attn_res)
  y = jnp.zeros((2,), jnp.int32)
  key = jax.random.PRNGKey(0)
  gv = jax.eval_shape(lambda: g.init(key, jnp.zeros((2, 128)), y, train=False))
  dv = jax.eval_shape(lambda: d.init(key, jnp.zeros((2, 128, 128, 3)), y, train=False))
  assert _count(gv["params"]) == g_count
  assert _count(dv["params"]) == d_count
  gp, dp = gv["params"], dv["params"]
  assert gp["linear"]["dense"]["kernel"].shape == (128, 4 * 4 * 1024)
  assert [gp[f"block{i}"]["conv2"]["conv"]["kernel"].shape[-1] for i in range(1, 6)] == [1024, 512, 256, 128, 64]
  assert gp["block3"]["norm1"]["cbn"]["gain"]["embedding"].shape == (1000, 512)    # per-class CBN tables
  # Attention on the attn_res x attn_res maps: G's has 256 (feat32) or 128 (feat64) channels, D's 128 or 64.
  g_ch, d_ch = (128, 64) if attn_res == 64 else (256, 128)
  assert gp["attention"]["theta"]["conv"]["kernel"].shape == (1, 1, g_ch, g_ch // 8)
  assert dp["attention"]["g"]["conv"]["kernel"].shape == (1, 1, d_ch, d_ch // 2)
  assert [dp[f"block{i}"]["conv2"]["conv"]["kernel"].shape[-1] for i in range(6)] == [64, 128, 256, 512, 1024, 1024]
  # discriminator.block: the first conv goes straight to the output width; no shortcut conv in the last block.
  assert dp["block1"]["conv1"]["conv"]["kernel"].shape == (3, 3, 64, 128) and "shortcut" not in dp["block5"]
  assert "bias" in dp["head"]["linear"]["dense"] and dp["head"]["embed"]["embed"]["embedding"].shape == (1000, 1024)
  # Spectral norm on every weight of G too: linear, 3 convs x 5 blocks, 4 attention convs, the last conv.
  assert sum(p.endswith("/u") for p in _paths(gv["batch_stats"])) == 1 + 15 + 4 + 1


def test_output_shapes_ranges_conditioning_and_state_updates():
  c, (g, d) = _models(32, 1, num_classes=10, g_width=4, d_width=8, attn_res=16)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, 128))
  y0, y1 = jnp.array([0, 1, 2, 3]), jnp.array([4, 5, 6, 7])
  gv = _init(g, z, y0)
  gp = jax.tree.map(np.asarray, gv["params"])
  assert float(gp["attention"]["gamma"]) == 0.0          # non_local.py: sigma_ratio initialised to 0
  # Perturb the class tables (init 1 and 0) and the attention gain as training would.
  rs = np.random.RandomState(0)
  for name in ("gain", "bias"):
    table = gp["block1"]["norm1"]["cbn"][name]
    table["embedding"] = table["embedding"] + rs.randn(*table["embedding"].shape).astype(np.float32)
  gp["attention"]["gamma"] = np.float32(0.5)
  gv = {**gv, "params": gp}
  g_fn = jax.jit(lambda v, z, y: g.apply(v, z, y, train=True, mutable=["batch_stats"]))
  (x0, upd), (x1, _) = g_fn(gv, z, y0), g_fn(gv, z, y1)
  assert x0.shape == (4, 32, 32, 1)
  assert float(jnp.max(jnp.abs(x0))) <= 1.0 and float(jnp.std(x0)) > 0.01
  assert float(jnp.max(jnp.abs(x0 - x1))) > 1e-3
  # Every BN statistic and every spectral-norm vector u of G moves in training.
  for path, new, old in zip(_paths(upd), jax.tree.leaves(upd), jax.tree.leaves(gv["batch_stats"])):
    assert path.endswith("/sigma") or not np.array_equal(new, old), path
  dv = _init(d, x0, y0)
  d_fn = jax.jit(lambda v, x, y: d.apply(v, x, y, train=False))
  l0, l1 = d_fn(dv, x0, y0), d_fn(dv, x0, y1)
  assert l0.shape == (4,) and bool(jnp.all(jnp.isfinite(l0)))
  assert float(jnp.max(jnp.abs(l0 - l1))) > 1e-4


def test_unconditional_sagan_has_no_class_parameters():
  c, (g, d) = _models(32, 3, num_classes=0, conditional=False, g_width=4, d_width=4, attn_res=8)
  key = jax.random.PRNGKey(0)
  gv = jax.eval_shape(lambda: g.init(key, jnp.zeros((2, 128)), train=False))
  dv = jax.eval_shape(lambda: d.init(key, jnp.zeros((2, 32, 32, 3)), train=False))
  assert "bn" in gv["params"]["block1"]["norm1"] and "embed" not in dv["params"]["head"]
  assert jax.eval_shape(lambda v: g.apply(v, jnp.zeros((2, 128)), train=False), gv).shape == (2, 32, 32, 3)


def test_initialization_is_xavier_uniform():
  """ops.py: tf.contrib.layers.xavier_initializer() on every weight (uniform, scale 1), zero biases.
  flax's SpectralNorm stores the kernel divided by its first sigma estimate at init (the layer's
  variables pass through the normalization when they are created), so the stored kernel is a
  uniform sample within the Xavier bound, scaled by a factor near 1."""
  c, (g, _) = _models(32, 3, num_classes=10, g_width=16, attn_res=0)
  p = _init(g, jnp.zeros((1, 128)), jnp.zeros((1,), jnp.int32))["params"]
  k = np.asarray(p["block2"]["conv1"]["conv"]["kernel"])          # 3x3, 64 -> 32
  bound = np.sqrt(6 / (9 * 64 + 9 * 32))
  assert 0.6 * bound < np.abs(k).max() <= bound
  np.testing.assert_allclose(np.abs(k).max() / np.std(k), np.sqrt(3), rtol=0.03)   # uniform: max = sqrt(3)·std
  assert not np.any(np.asarray(p["block2"]["conv1"]["conv"]["bias"]))


def test_bad_configs_raise_config_errors():
  with pytest.raises(ConfigError, match=r"attn_res=48 .* valid: 0 \(none\), 8, 16, 32, 64"):
    _models(128, attn_res=48)
  with pytest.raises(ConfigError, match="4·2\\^n"):
    _models(48)
  with pytest.raises(ConfigError, match="needs a dataset with labels"):
    _models(128, num_classes=0)
  with pytest.raises(ConfigError, match=r"sees 8 \(G\) and 4 \(D\) channels"):
    _models(32, g_width=4, d_width=4, attn_res=16)
  with pytest.raises(ConfigError, match="square"):
    build_models(model_config("sagan"), DataSpec("image", (64, 32, 3), 10))


@pytest.mark.slow
def test_runlocal_learns_digits_and_4_devices_equal_1(tmp_path):
  """The runlocal experiment (conditional, SN in G and D, self-attention on the 16x16 maps of G and D,
  hinge loss, TTUR) moves the digit Fréchet distance clearly below the untrained generator's within
  100 steps; its first two steps sharded over 4 devices give the same losses."""
  spec = experiment("sagan_imagenet128") + ":runlocal"
  common = ["--config.log_every=1", "--config.sample_every=0"]
  wd = str(tmp_path / "run")
  r = run_script("train.py", "--config", spec, "--workdir", wd, *common, "--config.total_steps=100",
                 "--config.eval.every=100", "--config.ckpt_every=100")
  assert r.returncode == 0, r.stderr[-3000:]
  rows = read_jsonl(os.path.join(wd, "metrics.jsonl"))
  fd = {row["step"]: row["digit_fd"] for row in rows if "digit_fd" in row}
  assert sorted(fd) == [0, 100]
  assert fd[100] < 0.75 * fd[0], fd

  sharded = str(tmp_path / "dev4")
  r = run_script("train.py", "--config", spec, "--workdir", sharded, *common, "--config.total_steps=2",
                 "--config.eval.every=0", "--config.ckpt_every=2", devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "4 devices" in r.stderr
  keys = ("d_loss", "g_loss", "d_real", "d_fake")
  one = np.array([[row[k] for k in keys] for row in rows if "d_loss" in row][:2])
  four = np.array([[row[k] for k in keys] for row in read_jsonl(os.path.join(sharded, "metrics.jsonl"))])
  assert four.shape == (2, 4) and np.all(np.isfinite(four))
  np.testing.assert_allclose(four, one, atol=1e-4, rtol=1e-4)
