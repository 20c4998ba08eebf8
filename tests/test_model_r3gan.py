"""R3GAN (Huang et al. 2024): parameter counts of every official preset, the layers against direct
computations, initialization, conditioning, and training through the trainer."""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_script

from gan_jax.config import base_config
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, r3gan

# Parameter counts of the official networks (brownvc/R3GAN at 19a7ddf), obtained by instantiating
# `R3GAN.Networks.Generator` / `Discriminator` with the keyword arguments train.py builds for each
# `--preset` (train.py lines 150-232: WidthPerStage, CardinalityPerStage, BlocksPerStage,
# ExpansionFactor=2, NoiseDimension=64, ConditionEmbeddingDimension = 64 for G and WidthPerStage[0]
# for D when --cond=1, ConditionDimension = the number of classes) with torch 2.13 (CPU) in a scratch
# directory and summing `p.numel()` over `parameters()`. The paper has no parameter-count table for
# config E; the "study's arithmetic" table of /work/shared/references/anchors_gan_libraries.md sec. 2.3
# (20.8M/21.3M, 22.4M/22.4M, 23.1M/23.0M, 82.9M/86.6M, 103.6M/107.2M) agrees to its 3 digits.
OFFICIAL_COUNTS = {                 # preset, classes -> (G, D)
    ("CIFAR10", 10): (20_781_952, 21_280_512),      # README command: --cond=1
    ("CIFAR10", 0): (20_732_160, 20_683_776),
    ("FFHQ-64", 0): (22_429_824, 22_381_440),
    ("FFHQ-256", 0): (23_057_952, 23_009_568),
    ("ImageNet-32", 1000): (82_914_304, 86_548_992),
    ("ImageNet-64", 1000): (103_570_432, 107_205_120),
}


def _count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _models(res=16, ch=3, classes=0, widths=(32, 32, 16), cards=(4, 4, 2), blocks=(2, 1, 2), **over):
  c = base_config("r3gan").model
  c.update(widths=widths, cardinalities=cards, blocks=blocks, conditional=classes > 0, **over)
  return build_models(c, DataSpec("image", (res, res, ch), classes))


def _labels(b, classes):
  return jnp.arange(b, dtype=jnp.int32) % classes if classes else None


@pytest.mark.parametrize("preset,classes", list(OFFICIAL_COUNTS))
def test_parameter_counts_equal_the_official_networks(preset, classes):
  p = r3gan.PRESETS[preset]
  c = base_config("r3gan")
  r3gan.apply_preset(c, preset)
  c.model.conditional = classes > 0
  g, d = build_models(c.model, DataSpec("image", (p.resolution, p.resolution, 3), classes))
  y = _labels(2, classes)
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, 64)), y, train=False))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((2, p.resolution, p.resolution, 3)), y,
                                     train=False))
  assert set(gv) == set(dv) == {"params"}       # no normalization state, nothing but weights
  assert (_count(gv), _count(dv)) == OFFICIAL_COUNTS[(preset, classes)]


def test_shapes_values_and_identity_blocks_at_init():
  g, d = _models(ch=1)
  z = jax.random.normal(jax.random.PRNGKey(0), (3, 64))
  gv = jax.jit(g.init)(jax.random.PRNGKey(1), z)
  x = jax.jit(g.apply)(gv, z)
  assert x.shape == (3, 16, 16, 1) and bool(np.all(np.isfinite(np.asarray(x))))
  # No tanh in the official G: the output is a linear 1x1 convolution, of order 1 at init.
  assert 0.05 < float(np.std(np.asarray(x))) < 20.0
  dv = jax.jit(d.init)(jax.random.PRNGKey(2), x)
  logits = jax.jit(d.apply)(dv, x)
  assert logits.shape == (3,) and bool(np.all(np.isfinite(np.asarray(logits))))
  # The last convolution of every residual branch starts at zero: each block is the identity, so
  # the whole G equals the network without its blocks.
  blocks = [k for k in gv["params"] if "_block" in k]
  assert len(blocks) == 5
  for k in blocks:
    assert not np.any(np.asarray(gv["params"][k]["linear3"]["kernel"]))

  @jax.jit
  def without_blocks(p, z):
    h = p["basis"][None] * (z @ p["basis_linear"]["kernel"])[:, None, None, :]
    h = r3gan.upsample2d(h)
    h = r3gan.upsample2d(jnp.einsum("bhwc,cd->bhwd", h, p["stage2_transition"]["kernel"][0, 0]))
    return jnp.einsum("bhwc,cd->bhwd", h, p["aggregation"]["kernel"][0, 0])

  np.testing.assert_allclose(x, without_blocks(gv["params"], z), rtol=1e-4, atol=1e-5)


def test_msr_initialization_scales():
  """MSRInitializer: std = gain / sqrt(fan_in), gain = sqrt(2/(1+0.2²)) · L^(-1/4) inside blocks."""
  g, d = _models(res=32, widths=(64, 64, 64, 64), cards=(8, 8, 8, 8), blocks=(2, 2, 2, 2), classes=10)
  gp = jax.jit(g.init)(jax.random.PRNGKey(0), jnp.zeros((2, 64)), jnp.zeros((2,), jnp.int32))["params"]
  dp = jax.jit(d.init)(jax.random.PRNGKey(1), jnp.zeros((2, 32, 32, 3)), jnp.zeros((2,), jnp.int32))["params"]
  gain = math.sqrt(2 / 1.04) * 8 ** -0.25                            # L = 8 blocks
  std = lambda a: float(np.std(np.asarray(a)))  # noqa: E731
  blk = gp["stage1_block0"]
  np.testing.assert_allclose(std(blk["linear1"]["kernel"]), gain / math.sqrt(64), rtol=0.05)
  np.testing.assert_allclose(std(blk["linear2"]["kernel"]), gain / math.sqrt(9 * 128 / 8), rtol=0.05)
  assert not np.any(np.asarray(blk["act1"]["bias"]))
  np.testing.assert_allclose(std(gp["basis"]), 1.0, rtol=0.05)
  np.testing.assert_allclose(std(gp["basis_linear"]["kernel"]), 1 / math.sqrt(128), rtol=0.05)   # z 64 + embed 64
  np.testing.assert_allclose(std(gp["class_embedding"]), 1 / math.sqrt(10), rtol=0.15)
  np.testing.assert_allclose(std(dp["basis"]), 1 / 4, rtol=0.05)       # depthwise 4x4: fan_in 16
  # D's class embedding: gain 1/sqrt(embed dim = 64), fan_in 10 classes.
  np.testing.assert_allclose(std(dp["class_embedding"]), 1 / math.sqrt(64) / math.sqrt(10), rtol=0.05)


def _upfirdn_direct(x, up, down, pad, kernel):
  """upfirdn2d as StyleGAN's reference: zero-insert by `up`, pad, correlate with `kernel`, keep every `down`-th."""
  b, h, w, c = x.shape
  u = np.zeros((b, h * up, w * up, c))
  u[:, ::up, ::up] = x
  u = np.pad(u, ((0, 0), pad, pad, (0, 0)))
  k = kernel.shape[0]
  out = np.zeros((b, u.shape[1] - k + 1, u.shape[2] - k + 1, c))
  for i in range(k):
    for j in range(k):
      out += kernel[i, j] * u[:, i:i + out.shape[1], j:j + out.shape[2]]
  return out[:, ::down, ::down]


def test_resamplers_equal_upfirdn2d():
  x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
  f = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0      # CreateLowpassKernel([1, 2, 1], Inplace=False)
  got_up, got_down = jax.jit(lambda x: (r3gan.upsample2d(x), r3gan.downsample2d(x)))(jnp.asarray(x))
  up = _upfirdn_direct(x, 2, 1, (2, 1), 4 * f)         # upsample2d: padding (2, 1), gain 4
  np.testing.assert_allclose(got_up, up, rtol=1e-5, atol=1e-6)
  assert up.shape == (2, 12, 12, 3)
  down = _upfirdn_direct(x, 1, 2, (1, 1), f)           # downsample2d: padding (1, 1)
  np.testing.assert_allclose(got_down, down, rtol=1e-5, atol=1e-6)
  assert down.shape == (2, 3, 3, 3)


def _grouped_conv3x3(x, w, groups):
  """Direct 'same' 3x3 grouped convolution: x [B, H, W, C], w [3, 3, C/groups, O]."""
  b, h, wd, c = x.shape
  o = w.shape[-1]
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((b, h, wd, o))
  ci, co = c // groups, o // groups
  for gidx in range(groups):
    for i in range(3):
      for j in range(3):
        out[..., gidx * co:(gidx + 1) * co] += xp[:, i:i + h, j:j + wd, gidx * ci:(gidx + 1) * ci] @ w[
            i, j, :, gidx * co:(gidx + 1) * co]
  return out


@pytest.mark.parametrize("impl", ["split", "xla"])
def test_residual_block_equals_direct_computation(impl):
  block = r3gan.ResidualBlock(cardinality=4, expansion=2, kernel_size=3, variance_scaling=6.0, impl=impl)
  x = np.random.default_rng(1).normal(size=(2, 5, 5, 8)).astype(np.float32)
  params = jax.jit(block.init)(jax.random.PRNGKey(0), jnp.asarray(x))["params"]
  rng = np.random.default_rng(2)
  # Random values everywhere, so the last convolution and the biases are not zero.
  params = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32) * 0.3, params)
  lrelu = lambda t: np.where(t > 0, t, 0.2 * t)  # noqa: E731
  p = jax.tree.map(np.asarray, params)
  y = lrelu(x @ p["linear1"]["kernel"][0, 0] + p["act1"]["bias"])
  y = lrelu(_grouped_conv3x3(y, p["linear2"]["kernel"], 4) + p["act2"]["bias"])
  y = x + y @ p["linear3"]["kernel"][0, 0]
  np.testing.assert_allclose(jax.jit(block.apply)({"params": params}, jnp.asarray(x)), y, rtol=1e-4, atol=1e-4)
  assert p["linear2"]["kernel"].shape == (3, 3, 4, 16)         # 16 channels in 4 groups of 4


def test_grouped_conv_forms_agree_to_second_order():
  """"split" (one convolution per group, the CPU form) equals XLA's grouped convolution and the
  direct sums, and so do the first and second derivatives an R1 penalty takes."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(2, 6, 6, 8)).astype(np.float32)
  k = rng.normal(size=(3, 3, 2, 12)).astype(np.float32)
  k1 = rng.normal(size=(1, 1, 8, 5)).astype(np.float32)     # 1x1 without groups: a matmul

  def penalty_grads(impl, x, k):
    def d(kernel, inp):
      return jnp.sum(jnp.tanh(r3gan.grouped_conv(inp, kernel, 4, impl)) ** 2, axis=(1, 2, 3))
    def loss(kernel):   # D's loss plus an R1-style penalty: gradients through the input gradient
      gx = jax.grad(lambda inp: jnp.sum(d(kernel, inp)))(x)
      return jnp.mean(d(kernel, x)) + jnp.mean(jnp.sum(gx ** 2, axis=(1, 2, 3)))
    return jax.grad(loss)(k)

  out, grads, matmul = jax.jit(lambda x, k, k1: (
      {impl: r3gan.grouped_conv(x, k, 4, impl) for impl in ("split", "xla")},
      {impl: penalty_grads(impl, x, k) for impl in ("split", "xla")}, r3gan.grouped_conv(x, k1)))(x, k, k1)
  np.testing.assert_allclose(out["split"], _grouped_conv3x3(x, k, 4), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(out["split"], out["xla"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grads["split"], grads["xla"], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(matmul, x @ k1[0, 0], rtol=1e-5, atol=1e-5)


def test_discriminator_head_is_depthwise_basis_and_projection():
  _, d = _models(res=8, widths=(8, 8), cards=(2, 2), blocks=(1, 1), classes=5)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3))
  y = jnp.array([0, 1, 2, 4], jnp.int32)
  p = jax.jit(d.init)(jax.random.PRNGKey(1), x, y)["params"]

  @jax.jit
  def by_hand(p, x, y):
    """Blocks are the identity at init: D = projection(linear(depthwise(down(extraction(x)))))."""
    h = r3gan.downsample2d(jnp.einsum("bhwc,cd->bhwd", x, p["extraction"]["kernel"][0, 0]))
    feat = jnp.einsum("bhwc,hwc->bc", h, p["basis"][:, :, 0, :]) @ p["basis_linear"]["kernel"]
    return feat, jnp.sum(feat * p["class_embedding"][y], axis=1), d.apply({"params": p}, x, y)

  feat, expected, logits = by_hand(p, x, y)
  assert feat.shape == (4, 8)                             # d_embed_dim defaults to G's first width
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-6)


def test_conditioning_changes_both_networks():
  g, d = _models(classes=10)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 64))
  y0, y1 = jnp.zeros((4,), jnp.int32), jnp.full((4,), 7, jnp.int32)
  gv = jax.jit(g.init)(jax.random.PRNGKey(1), z, y0)
  x0, x1 = jax.jit(g.apply)(gv, z, y0), jax.jit(g.apply)(gv, z, y1)
  assert float(np.max(np.abs(np.asarray(x0) - np.asarray(x1)))) > 1e-3
  dv = jax.jit(d.init)(jax.random.PRNGKey(2), x0, y0)
  d_apply = jax.jit(d.apply)
  assert float(np.max(np.abs(np.asarray(d_apply(dv, x0, y0)) - np.asarray(d_apply(dv, x0, y1))))) > 1e-4
  with pytest.raises(ValueError, match="needs labels"):
    g.apply(gv, z)


def test_build_rejects_bad_configs():
  with pytest.raises(ConfigError, match="3 stage widths make 16x16"):
    _models(res=32)
  with pytest.raises(ConfigError, match="needs image data"):
    build_models(base_config("r3gan").model, DataSpec("vector", (2,)))
  with pytest.raises(ConfigError, match="needs a dataset with labels"):
    c = base_config("r3gan").model
    c.conditional = True
    build_models(c, DataSpec("image", (32, 32, 3), 0))
  with pytest.raises(ConfigError, match="cardinality 5 does not divide"):
    _models(cards=(4, 5, 2))
  with pytest.raises(ConfigError, match="resample_filter"):
    _models(resample_filter=(1, 3, 3, 1))
  with pytest.raises(ConfigError, match="conv_impl"):
    _models(conv_impl="cuda")


def test_presets_map_onto_the_trainer_keys(load_config):
  c = load_config("experiments/r3gan_cifar10.py")
  assert c.model.name == "r3gan" and c.model.conditional and c.loss.name == "rpgan"
  assert (c.batch_size, c.total_steps) == (512, 488_282)           # 250 Mimg / 512
  assert (c.optim.d.lr, c.optim.d.lr_final, c.optim.d.b1, c.optim.d.b2, c.optim.d.b2_final) == (
      2e-4, 5e-5, 0.0, 0.9, 0.99)
  assert (c.reg.r1, c.reg.r2, c.reg.gamma_final, c.reg.lazy_every) == (0.05, 0.05, 0.005, 1)
  assert (c.schedule.kimg, c.ema.halflife_kimg, c.ema.halflife_final_kimg) == (20_000.0, 0.0, 5000.0)
  expected = {"r3gan_ffhq64": (64, (2.0, 0.2), 256, False), "r3gan_ffhq256": (256, (150.0, 15.0), 256, False),
              "r3gan_imagenet32": (32, (0.5, 0.05), 4096, True), "r3gan_imagenet64": (64, (1.0, 0.1), 4096, True)}
  for name, (res, gamma, batch, cond) in expected.items():
    c = load_config(f"experiments/{name}.py")
    assert (c.data.resolution, (c.reg.r1, c.reg.gamma_final), c.batch_size, c.model.conditional) == (
        res, gamma, batch, cond), name


def _train(workdir, *extra, devices=1, name="r3gan_cifar10"):
  r = run_script("train.py", "--config", experiment(name) + ":runlocal", "--workdir", workdir,
                 "--config.sample_every=0", "--config.ckpt_every=1000", *extra, devices=devices)
  assert r.returncode == 0, r.stderr[-3000:]
  return read_jsonl(os.path.join(workdir, "metrics.jsonl"))


FEW_STEPS = ["--config.total_steps=3", "--config.log_every=1", "--config.batch_size=8", "--config.eval.every=0"]


@pytest.mark.slow
def test_rpgan_r1_r2_steps_and_four_devices_equal_one(tmp_path):
  """Three class-conditional steps of the CIFAR-10 recipe (RpGAN + R1 + R2 every step) at toy width,
  on 1 and on 4 simulated devices: same losses and penalties."""
  runs = {n: _train(str(tmp_path / f"dev{n}"), *FEW_STEPS, devices=n) for n in (1, 4)}
  keys = ("d_loss", "g_loss", "r1", "r2")
  one = np.array([[r[k] for k in keys] for r in runs[1]])
  assert one.shape == (3, 4) and np.all(np.isfinite(one)) and np.all(one[:, 2:] > 0)
  np.testing.assert_allclose(np.array([[r[k] for k in keys] for r in runs[4]]), one, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_runlocal_learns_digits(tmp_path):
  """The first 100 of r3gan_cifar10:runlocal's 300 steps on the digits (class-conditional):
  digit_fd well below its step-0 value (measured: 1651 at step 0, 369 at 100, 180 at 300)."""
  rows = _train(str(tmp_path / "run"), "--config.total_steps=100", "--config.log_every=50")
  fd = {r["step"]: r["digit_fd"] for r in rows if "digit_fd" in r}
  assert sorted(fd) == [0, 100], fd
  assert fd[100] < 0.5 * fd[0], fd


@pytest.mark.slow
def test_stacked_digits_runlocal_logs_modes(tmp_path):
  rows = _train(str(tmp_path / "stacked"), "--config.total_steps=1", "--config.log_every=1",
                "--config.batch_size=8", "--config.eval.every=1", "--config.eval.num_samples=200",
                name="r3gan_stacked_mnist")
  modes = {r["step"]: r["modes_covered"] for r in rows if "modes_covered" in r}
  assert sorted(modes) == [0, 1] and all(1 <= m <= 200 for m in modes.values()), modes
