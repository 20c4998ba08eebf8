"""StyleGAN2 (gan_jax/models/stylegan2.py) and its layers (gan_jax/models/stylegan_layers.py):
parameter counts of the official configurations, each layer against a direct computation, the
generator's mapping/synthesis contract, conditioning, and the trainer end to end."""
import concurrent.futures
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import experiment, read_jsonl, run_script

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models import stylegan_layers as sl

F = sl.setup_filter()


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _models(res=16, channels=1, num_classes=0, **model):
  c = model_config("stylegan2")
  c.update(conditional=num_classes > 0, **model)
  return build_models(c, DataSpec("image", (res, res, channels), num_classes))


def _toy(res=16, channels=1, num_classes=0, **model):
  kw = dict(z_dim=16, w_dim=16, channel_base=128, channel_max=16, mapping_layers=2, conv_impl="xla")
  return _models(res, channels, num_classes, **{**kw, **model})


# --- parameter counts ------------------------------------------------------------------------

# Official counts: NVlabs/stylegan2-ada-pytorch @ d72cc7d, training/networks.py `Generator` and
# `Discriminator` built with the kwargs train.py derives from its cfg_specs (z_dim = w_dim = 512,
# channel_base = fmaps · 32768, channel_max 512, mapping num_layers = map, mbstd_group_size = mbstd,
# c_dim = number of classes, the `cifar` cfg with architecture='orig'), instantiated with torch
# 2.13 (CPU) in a scratch directory and counted as sum(p.numel() for p in module.parameters()).
OFFICIAL = {
    # name: (resolution, channel_base, mapping layers, classes, D architecture, G params, D params)
    "config-f-256": (256, 32768, 8, 0, "resnet", 30_034_338, 28_864_129),
    "config-f-1024": (1024, 32768, 8, 0, "resnet", 30_370_060, 29_012_513),
    "paper256": (256, 16384, 8, 0, "resnet", 24_767_458, 24_001_089),
    "config-f-256-10-classes": (256, 32768, 8, 10, "resnet", 30_302_114, 31_233_152),
    "cifar-conditional": (32, 32768, 2, 10, "orig", 20_215_315, 23_089_664),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_parameter_counts_equal_the_official_networks(name):
  res, base, n_map, classes, arch, g_count, d_count = OFFICIAL[name]
  g, d = _models(res, 3, classes, channel_base=base, mapping_layers=n_map, d_architecture=arch)
  y = jnp.zeros((4,), jnp.int32) if classes else None
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((4, 512)), y, train=False))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((4, res, res, 3)), y, train=False))
  assert _count(gv["params"]) == g_count
  assert _count(dv["params"]) == d_count
  assert gv["stats"]["w_avg"].shape == (512,)          # a buffer, not a parameter (as `w_avg`)
  assert g.num_ws == {256: 14, 1024: 18, 32: 8}[res]


def test_config_f_layer_shapes():
  """Channels min(32768 / res, 512): 512 up to 64x64, 256 at 128, 128 at 256 (config F)."""
  g, d = _models(256, 3)
  gp = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, 512)), train=False))["params"]
  s = gp["synthesis_net"]
  assert s["b4"]["const"].shape == (4, 4, 512)
  assert s["b128"]["conv0"]["weight"].shape == (3, 3, 512, 256)
  assert s["b256"]["conv1"]["weight"].shape == (3, 3, 128, 128)
  assert s["b256"]["torgb"]["weight"].shape == (1, 1, 128, 3)
  assert s["b256"]["conv0"]["affine"]["weight"].shape == (512, 256)   # styles of the input channels
  assert [gp["mapping_net"][f"fc{i}"]["weight"].shape for i in range(8)] == [(512, 512)] * 8
  dp = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((2, 256, 256, 3)), train=False))["params"]
  assert dp["b256"]["fromrgb"]["weight"].shape == (1, 1, 3, 128)
  assert dp["b256"]["skip"]["weight"].shape == (1, 1, 128, 256) and "bias" not in dp["b256"]["skip"]
  assert dp["b4"]["conv"]["weight"].shape == (3, 3, 513, 512)       # + the minibatch-stddev channel
  assert dp["b4"]["fc"]["weight"].shape == (512 * 16, 512)
  assert dp["b4"]["out"]["weight"].shape == (512, 1)


# --- layers against direct computations -------------------------------------------------------

def _np_upfirdn(x, up=1, down=1, pad=(0, 0), gain=1.0):
  """Zero insertion, padding, full 2-D convolution with outer([1,3,3,1])/64 · gain, decimation."""
  n, h, w, c = x.shape
  if up > 1:
    z = np.zeros((n, h * up, w * up, c), x.dtype)
    z[:, ::up, ::up] = x
    x = z
  x = np.pad(x, ((0, 0), pad, pad, (0, 0)))
  f2 = np.outer(F, F) * gain
  k = f2.shape[0]
  out = np.zeros((n, x.shape[1] - k + 1, x.shape[2] - k + 1, c))
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      # convolution: out[i, j] = sum_ab x[i + a, j + b] f[k-1-a, k-1-b]
      out[:, i, j] = np.einsum("nabc,ab->nc", x[:, i:i + k, j:j + k], f2[::-1, ::-1])
  return out[:, ::down, ::down]


def _np_corr(x, w, stride=1):
  """VALID correlation x [N, H, W, I] with w [k, k, I, O] (per sample when w has a batch axis)."""
  k = w.shape[-4]
  h, wd = x.shape[1] - k + 1, x.shape[2] - k + 1
  out = 0
  for a in range(k):
    for b in range(k):
      patch = x[:, a:a + h, b:b + wd]
      out = out + (np.einsum("nhwi,nio->nhwo", patch, w[:, a, b]) if w.ndim == 5
                   else np.einsum("nhwi,io->nhwo", patch, w[a, b]))
  return out[:, ::stride, ::stride]


def test_fir_upsample_and_downsample_match_a_direct_computation():
  x_up = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype(np.float32)
  x_down = np.random.default_rng(1).standard_normal((2, 8, 6, 3)).astype(np.float32)
  up, down, ones = map(np.asarray, jax.jit(lambda x_up, x_down, const: (
      sl.upsample2d(x_up, F), sl.downsample2d(x_down, F), sl.upsample2d(const, F)))(
          x_up, x_down, np.ones((1, 6, 6, 1), np.float32)))
  np.testing.assert_allclose(up, _np_upfirdn(x_up, up=2, pad=(2, 1), gain=4.0), rtol=1e-5, atol=1e-5)
  assert up.shape == (2, 10, 12, 3)
  np.testing.assert_allclose(down, _np_upfirdn(x_down, down=2, pad=(1, 1)), rtol=1e-5, atol=1e-5)
  assert down.shape == (2, 4, 3, 3)
  # A constant image stays constant away from the borders: unit DC gain (x 4 for the zero-filled upsampling).
  np.testing.assert_allclose(ones[0, 2:-2, 2:-2, 0], 1.0, rtol=1e-6)


@pytest.mark.parametrize("impl", ["xla", "subpixel"])
def test_resampling_convolutions_match_the_reference_order(impl):
  """conv2d_resample's fast paths equal upfirdn2d's reference: up: upsample + FIR (pad 3, 2), then
  a true 3x3 convolution; down: FIR (pad 2, 2), then a stride-2 3x3 correlation; 1x1 skip: FIR
  downsample (pad 1, 1), then the 1x1 kernel."""
  rng = np.random.default_rng(2)
  x_up = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
  w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
  x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
  w1 = w[:1, :1]
  up, down, skip = jax.jit(lambda x_up, x, w, w1: (sl.conv2d_resample(x_up, w, F, up=2, padding=1, impl=impl),
                                                    sl.conv2d_resample(x, w, F, down=2, padding=1, impl=impl),
                                                    sl.conv2d_resample(x, w1, F, down=2, impl=impl)))(x_up, x, w, w1)
  ref = _np_corr(_np_upfirdn(x_up, up=2, pad=(3, 2), gain=4.0), w[::-1, ::-1])
  np.testing.assert_allclose(up, ref, rtol=1e-4, atol=1e-4)
  assert up.shape == (2, 8, 8, 5)
  np.testing.assert_allclose(down, _np_corr(_np_upfirdn(x, pad=(2, 2)), w, stride=2), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(skip, _np_corr(_np_upfirdn(x, down=2, pad=(1, 1)), w1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_equals_per_sample_demodulated_weights(up):
  """eq. 1-3 of StyleGAN2: w'_ijk = s_i w_ijk, w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps),
  each sample convolved with its own weights."""
  rng = np.random.default_rng(3)
  x = rng.standard_normal((3, 4, 4, 5)).astype(np.float32)
  w = rng.standard_normal((3, 3, 5, 6)).astype(np.float32)
  s = rng.uniform(0.2, 2.0, (3, 5)).astype(np.float32)
  noise = rng.standard_normal((3, 4 * up, 4 * up, 1)).astype(np.float32)

  @jax.jit
  def run(x, w, s, noise, s7):
    ys = {d: sl.modulated_conv2d(x, w, s, noise, up=up, padding=1, f=F, demodulate=d) for d in (True, False)}
    return ys, sl.modulated_conv2d(x, w, s, up=up, padding=1, f=F), sl.modulated_conv2d(x, w, s7, up=up, padding=1, f=F)

  ys, a, b = run(x, w, s, noise, 7 * s)
  for demod in (True, False):
    y = ys[demod]
    wn = w[None] * s[:, None, None, :, None]                     # [N, k, k, I, O]
    if demod:
      wn = wn / np.sqrt(np.sum(wn**2, axis=(1, 2, 3), keepdims=True) + 1e-8)
    if up == 1:
      ref = _np_corr(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), wn)
    else:
      ref = _np_corr(_np_upfirdn(x, up=2, pad=(3, 2), gain=4.0), wn[:, ::-1, ::-1])
    np.testing.assert_allclose(y, ref + noise, rtol=1e-4, atol=1e-4)
  # Demodulated outputs do not depend on the scale of the styles.
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("group,channels", [(4, 1), (2, 2), (None, 1)])
def test_minibatch_stddev_by_hand(group, channels):
  rng = np.random.default_rng(4)
  x = rng.standard_normal((8, 3, 3, 4)).astype(np.float32)
  y = np.asarray(sl.minibatch_stddev(jnp.asarray(x), group, channels))
  assert y.shape == (8, 3, 3, 4 + channels)
  np.testing.assert_array_equal(y[..., :4], x)
  g = group or 8
  n_groups, c = 8 // g, 4 // channels
  for i in range(8):
    members = [j for j in range(8) if j % n_groups == i % n_groups]   # official reshape(G, -1, ...)
    for f in range(channels):
      v = x[members][..., f * c:(f + 1) * c]
      expected = np.mean(np.sqrt(np.var(v, axis=0) + 1e-8))
      np.testing.assert_allclose(y[i, :, :, 4 + f], expected, rtol=1e-5)
  with pytest.raises(ValueError, match="not divisible"):
    sl.minibatch_stddev(jnp.zeros((6, 2, 2, 2)), 4)


@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
def test_equalized_dense_scales_weights_at_run_time(lr_mul):
  layer = sl.EqualizedDense(7, lr_mul=lr_mul, bias_init=0.5, activation="lrelu")
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 300))
  p = layer.init(jax.random.PRNGKey(1), x)["params"]
  # Stored ~ N(0, 1 / lr_mul^2); bias stored as its init value.
  np.testing.assert_allclose(np.std(p["weight"]) * lr_mul, 1.0, rtol=0.05)
  np.testing.assert_allclose(p["bias"], 0.5)
  pre = x @ (p["weight"] * lr_mul / math.sqrt(300)) + p["bias"] * lr_mul
  np.testing.assert_allclose(layer.apply({"params": p}, x), np.where(pre > 0, pre, 0.2 * pre) * math.sqrt(2),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fan_in,lr_mul", [(16, 1.0), (400, 1.0), (64, 0.01)])
def test_equalized_lr_adam_step_moves_each_weight_by_lr_times_the_runtime_scale(fan_in, lr_mul):
  """Karras et al. 2018 sec. 4.1: with w = c·v, c = lr_mul/sqrt(fan_in), an Adam step (scale
  invariant) moves every stored v by ~lr, so the effective weights move by lr·c: the same
  relative speed for every layer, slowed by lr_mul for the mapping network."""
  layer = sl.EqualizedDense(3, lr_mul=lr_mul)
  x = jax.random.normal(jax.random.PRNGKey(0), (8, fan_in))
  target = jax.random.normal(jax.random.PRNGKey(2), (8, 3))

  @jax.jit
  def adam_update(x, target):
    p = layer.init(jax.random.PRNGKey(1), x)["params"]
    # A large loss scale keeps |g| >> Adam's eps (the step is then lr·sign(g), whatever the scale).
    grads = jax.grad(lambda q: 1e4 * jnp.sum((layer.apply({"params": q}, x) - target) ** 2))(p)
    tx = optax.adam(0.002, b1=0.0, b2=0.99, eps=1e-8)
    return tx.update(grads, tx.init(p), p)[0]

  upd = adam_update(x, target)
  c = lr_mul / math.sqrt(fan_in)
  # The update itself (the difference of the stored weights ~ 1/lr_mul loses float32 digits).
  effective_step = np.abs(np.asarray(upd["weight"]) * c)
  np.testing.assert_allclose(effective_step, 0.002 * c, rtol=1e-3)


def test_equalized_conv_is_a_plain_conv_with_weight_gain():
  layer = sl.EqualizedConv(5, 3, activation="linear", conv_clamp=0.5)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 4))
  v = layer.init(jax.random.PRNGKey(1), x)
  v = jax.tree.map(lambda a: a + 0.1, v)        # non-zero bias
  w, b = v["params"]["weight"], v["params"]["bias"]
  ref = jax.lax.conv_general_dilated(x, w / math.sqrt(4 * 9), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
  np.testing.assert_allclose(layer.apply(v, x), np.clip(ref, -0.5, 0.5), rtol=1e-5, atol=1e-5)
  # gain scales the output and the clamp (the residual branches' sqrt(0.5)).
  np.testing.assert_allclose(layer.apply(v, x, gain=0.5), np.clip(0.5 * ref, -0.25, 0.25), rtol=1e-5, atol=1e-5)


# --- generator and discriminator ---------------------------------------------------------------

def _init(module, *args):
  """Jitted init: one XLA program instead of one per eager op (much faster on CPU)."""
  keys = {"params": jax.random.PRNGKey(0), "noise": jax.random.PRNGKey(1)}
  return jax.jit(lambda *a: module.init(keys, *a, train=False))(*args)


Z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))


@pytest.fixture(scope="module")
def toy():
  """A toy unconditional 8x8 RGB StyleGAN2 (one upsampling block, one D block) and its variables."""
  g, d = _toy(8, 3, w_avg_beta=0.9)
  gv = _init(g, Z, None)
  x = jax.jit(lambda v, z: g.apply(v, z, train=False, rngs={"noise": jax.random.PRNGKey(2)}))(gv, Z)
  return g, d, gv, x, _init(d, x, None)


def test_generator_and_discriminator_shapes_and_values(toy):
  g, d, gv, x, dv = toy
  assert set(gv) == {"params", "stats"} and set(dv) == {"params"}     # D has no state
  assert x.shape == (4, 8, 8, 3) and bool(jnp.all(jnp.isfinite(x)))
  assert 0.01 < float(jnp.std(x)) < 10          # no output activation; unit-scale images at init
  logits = jax.jit(d.apply)(dv, x)
  assert logits.shape == (4,) and bool(jnp.all(jnp.isfinite(logits)))


def test_g_is_synthesis_of_mapping_in_both_modes(toy):
  g, _, gv, _, _ = toy
  gv = {**gv, "params": jax.tree.map(lambda a: a + 0.3, gv["params"])}   # noise strengths != 0
  rngs = {"noise": jax.random.PRNGKey(5)}

  def both(gv, train):
    kw = dict(rngs=rngs, mutable=["stats"])
    full, _ = g.apply(gv, Z, train=train, **kw)
    ws, _ = g.apply(gv, Z, None, train, method="mapping", **kw)
    img, _ = g.apply(gv, ws, train, method="synthesis", **kw)
    other = g.apply(gv, Z, train=train, rngs={"noise": jax.random.PRNGKey(6)}, mutable=["stats"])[0]
    return full, img, ws, other

  for train in (False, True):
    full, img, ws, other = jax.jit(both, static_argnums=1)(gv, train)
    assert ws.shape == (4, g.num_ws, 16)
    np.testing.assert_allclose(full, img, rtol=1e-5, atol=1e-5)
    # The noise inputs are random: another key, another image.
    assert float(jnp.max(jnp.abs(other - full))) > 1e-3


def test_w_avg_is_tracked_in_training_only_and_truncation_lerps_towards_it(toy):
  g, _, gv, _, _ = toy
  np.testing.assert_array_equal(gv["stats"]["w_avg"], 0.0)
  rngs = {"noise": jax.random.PRNGKey(1)}

  @jax.jit
  def run(gv):
    w = g.apply(gv, Z, None, method=lambda m, z, y: m.mapping_net(z, y))
    _, upd = g.apply(gv, Z, train=True, rngs=rngs, mutable=["stats"])
    _, same = g.apply(gv, Z, train=False, rngs=rngs, mutable=["stats"])
    tv = {**gv, "stats": upd["stats"]}
    trunc = [g.apply(tv, z, None, False, psi, rngs=rngs, method="mapping") for z, psi in ((Z, 0.0), (Z, 0.5))]
    scaled = [g.apply(tv, z, None, False, rngs=rngs, method="mapping") for z in (Z, 3 * Z)]
    return w, upd["stats"]["w_avg"], same["stats"]["w_avg"], trunc, scaled

  w, w_avg, same, (ws0, ws_half), (ws1, ws3) = run(gv)
  np.testing.assert_allclose(w_avg, 0.1 * np.mean(w, axis=0), rtol=1e-5, atol=1e-6)   # beta 0.9, from 0
  np.testing.assert_array_equal(same, 0.0)
  np.testing.assert_allclose(ws0, np.broadcast_to(w_avg, ws0.shape), rtol=1e-6)
  np.testing.assert_allclose(ws_half, np.broadcast_to(0.5 * (w[:, None] + w_avg), ws_half.shape),
                             rtol=1e-5, atol=1e-6)
  # z is normalized to unit second moment first: the mapping ignores z's scale.
  np.testing.assert_allclose(ws3, ws1, rtol=1e-5, atol=1e-6)


def test_style_mixing_switches_to_a_second_latent_at_one_cutoff(toy):
  g, _, gv, _, _ = toy
  g16, _ = _toy(16, 3, style_mixing_prob=1.0)    # 6 ws: several possible cutoffs
  gv16 = jax.eval_shape(lambda: _init(g16, Z, None))
  gv16 = jax.tree.map(lambda s: jax.random.normal(jax.random.PRNGKey(3), s.shape), gv16)

  @jax.jit
  def mixed(gv, key):
    w = g16.apply(gv, Z, None, method=lambda m, z, y: m.mapping_net(z, y))
    return w, g16.apply(gv, Z, None, True, rngs={"noise": key}, method="mapping", mutable=["stats"])[0]

  cutoffs = set()
  for seed in range(6):
    w, ws = mixed(gv16, jax.random.PRNGKey(seed))
    same = np.all(np.isclose(ws, w[:, None], atol=1e-6), axis=(0, 2))   # [num_ws]
    cut = int(np.argmin(same))
    assert 1 <= cut < g16.num_ws and same[:cut].all() and not same[cut:].any()
    np.testing.assert_allclose(ws[:, cut:], np.broadcast_to(ws[:, cut:cut + 1], ws[:, cut:].shape))
    cutoffs.add(cut)
  assert len(cutoffs) > 1
  no_mixing = g16.clone(style_mixing_prob=0.0)
  ws = jax.jit(lambda v: no_mixing.apply(v, Z, None, True, rngs={"noise": jax.random.PRNGKey(0)},
                                         method="mapping", mutable=["stats"])[0])(gv16)
  np.testing.assert_allclose(ws, np.broadcast_to(ws[:, :1], ws.shape), rtol=1e-6)


def test_conditioning_changes_g_and_d():
  g, d = _toy(8, 1, num_classes=10)
  y0, y1 = jnp.array([0, 1, 2, 3]), jnp.array([4, 5, 6, 7])
  gv = _init(g, Z, y0)
  assert "embed" in gv["params"]["mapping_net"]
  gen = jax.jit(lambda v, y: g.apply(v, Z, y, train=False, rngs={"noise": jax.random.PRNGKey(1)}))
  x0, x1 = gen(gv, y0), gen(gv, y1)
  assert float(jnp.max(jnp.abs(x0 - x1))) > 1e-3
  dv = _init(d, x0, y0)
  assert "mapping" in dv["params"] and dv["params"]["b4"]["out"]["weight"].shape == (16, 16)   # cmap_dim = C(4)
  disc = jax.jit(d.apply)
  assert float(jnp.max(jnp.abs(disc(dv, x0, y0) - disc(dv, x0, y1)))) > 1e-4


def test_bad_configurations_raise_config_errors():
  with pytest.raises(ConfigError, match="power-of-two"):
    _toy(24, 1)
  with pytest.raises(ConfigError, match="power-of-two"):
    _toy(4, 1)
  with pytest.raises(ConfigError, match="needs image data"):
    build_models(model_config("stylegan2"), DataSpec("vector", (2,)))
  c = model_config("stylegan2")
  c.conditional = True
  with pytest.raises(ConfigError, match="labels"):
    build_models(c, DataSpec("image", (16, 16, 1), 0))
  with pytest.raises(ConfigError, match="valid choices: resnet, orig"):
    _toy(16, 1, d_architecture="skip")


def test_experiment_configs(load_config):
  c = load_config("experiments/stylegan2_ffhq256.py")
  assert (c.model.channel_base, c.batch_size, c.model.mbstd_group_size, c.reg.r1) == (16384, 64, 8, 1.0)
  assert c.total_steps * c.batch_size == 25_000_000 and c.ema.halflife_kimg == 20.0
  assert (c.reg.lazy_every, c.reg.pl_weight, c.reg.pl_every) == (16, 2.0, 4)
  assert (c.optim.g.lr, c.optim.g.b1, c.optim.g.b2) == (0.0025, 0.0, 0.99)
  f = load_config("experiments/stylegan2_ffhq256.py:cfg=stylegan2,resolution=1024")
  assert (f.model.channel_base, f.batch_size, f.reg.r1, f.optim.d.lr) == (32768, 32, 10.0, 0.002)
  assert f.data.resolution == 1024
  with pytest.raises(ConfigError, match="paper256, stylegan2"):
    load_config("experiments/stylegan2_ffhq256.py:cfg=paper512")


# --- the trainer end to end --------------------------------------------------------------------

@pytest.mark.slow
def test_runlocal_learns_digits_and_four_devices_equal_one(tmp_path):
  """The runlocal config (lazy R1, path length, style mixing, EMA) through scripts/train.py: its
  digit_fd falls clearly within 100 steps, and its first 5 steps (R1 and path length both applied
  at step 0, path length again at step 4) give the same metrics on 4 simulated devices as on 1.
  Both runs go in parallel (compilation is mostly single-threaded)."""
  spec = experiment("stylegan2_ffhq256") + ":runlocal"
  common = ["--config.log_every=5", "--config.sample_every=100", "--config.ckpt_every=100"]
  jobs = {1: [f"--workdir={tmp_path / 'one'}", "--config.total_steps=100", "--config.eval.every=100"],
          4: [f"--workdir={tmp_path / 'four'}", "--config.total_steps=5", "--config.eval.every=0"]}
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {n: pool.submit(run_script, "train.py", "--config", spec, *common, *args, devices=n)
               for n, args in jobs.items()}
    results = {n: f.result() for n, f in futures.items()}
  for r in results.values():
    assert r.returncode == 0, r.stderr[-3000:]
  one = read_jsonl(os.path.join(tmp_path / "one", "metrics.jsonl"))
  four = read_jsonl(os.path.join(tmp_path / "four", "metrics.jsonl"))
  fd = {r["step"]: r["digit_fd"] for r in one if "digit_fd" in r}
  assert set(fd) == {0, 100}
  assert fd[100] < 0.5 * fd[0], fd
  first = {r["step"]: r for r in one if "d_loss" in r}[5]
  assert four[0]["step"] == 5
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "pl_penalty", "pl_length"):
    assert np.isfinite(first[key]) and first[key] != 0, key
    np.testing.assert_allclose(four[0][key], first[key], rtol=2e-3, atol=1e-5, err_msg=key)
  assert os.path.exists(tmp_path / "one" / "samples" / "step_00000100.png")
