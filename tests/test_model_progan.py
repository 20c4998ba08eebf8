"""ProGAN (gan_jax/models/progan.py, gan_jax/train/kinds/progressive.py): parameter counts of the official
networks, the layers against direct computations, the two forms of each network, fade-ins against
the lower- and higher-resolution networks alone, the growth schedule against the official formula,
the WGAN-GP + drift loss by hand, and the trainer end to end (exact resume within and across stages,
4 devices = 1, runlocal learning).

Reference parameter counts: tkarras/progressive_growing_of_gans @ 2504c3f, `networks.py` `G_paper`
and `D_paper` at their defaults (fmap_base 8192, fmap_decay 1.0, fmap_max 512, latent_size
nf(0) = 512, no labels, mbstd_group_size 4), counted by hand from the shapes its `get_weight` and
`apply_bias` create (trainable variables only; `lod` is not trainable): `_official_counts` below is
that count written out layer by layer. CelebA-HQ 1024 (3 channels): G 23,079,115, D 23,087,249.
"""
import functools
import math
import os
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_script
from ml_collections import ConfigDict

from gan_jax import regularizers as regs
from gan_jax.errors import ConfigError
from gan_jax.losses import make_loss
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models import progan as pg
from gan_jax.regularizers import Regularization
from gan_jax.train import loop
from gan_jax.train.kinds import build_trainer
from gan_jax.train.kinds import progressive as ps
from gan_jax.train.kinds.gan import GAN, d_update
from gan_jax.train.state import init_state


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _official_counts(resolution, channels, fmap_base=8192, fmap_decay=1.0, fmap_max=512):
  """Trainable parameters of G_paper and D_paper, layer by layer from networks.py."""
  nf = lambda s: min(int(fmap_base / 2.0 ** (s * fmap_decay)), fmap_max)  # noqa: E731
  conv = lambda k, i, o: k * k * i * o + o  # noqa: E731   conv2d weight + apply_bias
  top = int(math.log2(resolution))
  latent = nf(0)
  # G: 4x4 Dense (no bias inside dense; apply_bias after the reshape: nf(1) values), 4x4 Conv,
  # then Conv0_up and Conv1 per resolution (the fused upscale conv's weight is [3, 3, out, in]),
  # one ToRGB_lod (1x1, bias) per resolution.
  g = latent * nf(1) * 16 + nf(1) + conv(3, nf(1), nf(1))
  g += sum(conv(3, nf(r - 2), nf(r - 1)) + conv(3, nf(r - 1), nf(r - 1)) for r in range(3, top + 1))
  g += sum(conv(1, nf(r - 1), channels) for r in range(2, top + 1))
  # D: FromRGB_lod per resolution, Conv0 and Conv1_down per resolution >= 8, then the 4x4 block:
  # Conv over nf(1) + 1 maps (minibatch stddev), Dense0 from 16·nf(1) to nf(0), Dense1 to 1.
  d = sum(conv(1, channels, nf(r - 1)) for r in range(2, top + 1))
  d += sum(conv(3, nf(r - 1), nf(r - 1)) + conv(3, nf(r - 1), nf(r - 2)) for r in range(3, top + 1))
  d += conv(3, nf(1) + 1, nf(1)) + (16 * nf(1) * nf(0) + nf(0)) + (nf(0) + 1)
  return g, d


def _nets(res=16, channels=1, **model):
  c = model_config("progan")
  c.update(**model)
  return build_models(c, DataSpec("image", (res, res, channels)))


def _init(module, x):
  return module.init({"params": jax.random.PRNGKey(0)}, x, train=False)


TOY = dict(fmap_base=32, fmap_max=16, z_dim=16)


# --- parameter counts ------------------------------------------------------------------------

@pytest.mark.parametrize("res,channels,widths,expected", [
    (1024, 3, {}, (23_079_115, 23_087_249)),    # CelebA-HQ 1024, the paper's network
    (32, 3, {}, None),                          # CIFAR-10
    (16, 1, dict(fmap_base=128, fmap_max=64), None),   # the runlocal width
])
def test_parameter_counts_equal_the_official_networks(res, channels, widths, expected):
  latent = pg.nf(0, widths.get("fmap_base", 8192), 1.0, widths.get("fmap_max", 512))   # official latent_size
  g, d = _nets(res, channels, **widths, z_dim=latent)
  gs = jax.eval_shape(lambda: _init(g, jnp.zeros((2, latent))))
  ds = jax.eval_shape(lambda: _init(d, jnp.zeros((2, res, res, channels))))
  official = _official_counts(res, channels, **widths)
  assert (_count(gs["params"]), _count(ds["params"])) == official
  if expected:
    assert official == expected
  assert jax.tree.map(lambda x: x.shape, gs["growth"]) == {"lod": ()}


def test_layer_shapes_follow_the_official_code():
  g, d = _nets(1024, 3)
  gp = jax.eval_shape(lambda: _init(g, jnp.zeros((2, 512))))["params"]
  dp = jax.eval_shape(lambda: _init(d, jnp.zeros((2, 1024, 1024, 3))))["params"]
  assert gp["4x4_Dense"]["weight"].shape == (512, 8192) and gp["4x4_Dense_bias"].shape == (512,)
  assert gp["64x64_Conv0_up"]["weight"].shape == (3, 3, 512, 256)
  assert gp["1024x1024_Conv1"]["weight"].shape == (3, 3, 16, 16)
  assert gp["ToRGB_1024x1024"]["weight"].shape == (1, 1, 16, 3)
  assert dp["4x4_Conv"]["weight"].shape == (3, 3, 513, 512)          # + the minibatch-stddev map
  assert dp["4x4_Dense0"]["weight"].shape == (8192, 512) and dp["4x4_Dense1"]["weight"].shape == (512, 1)
  assert dp["FromRGB_1024x1024"]["weight"].shape == (1, 1, 3, 16)
  assert dp["64x64_Conv1_down"]["weight"].shape == (3, 3, 256, 512)


# --- layers ----------------------------------------------------------------------------------

def test_layers_against_direct_computations():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 8, 8, 6)).astype(np.float32)
  # Pixel norm: each pixel's vector over its RMS (eq. 2).
  np.testing.assert_allclose(pg.pixel_norm(jnp.asarray(x)), x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + 1e-8),
                             rtol=1e-5)
  # Box downsampling and nearest upsampling.
  down = x.reshape(4, 4, 2, 4, 2, 6).mean(axis=(2, 4))
  np.testing.assert_allclose(pg.downscale(jnp.asarray(x), 2), down, rtol=1e-5, atol=1e-7)
  assert np.array_equal(pg.upscale(jnp.asarray(down), 2)[:, 3, 5], down[:, 1, 2])
  # Equalized lr: the stored N(0, 1) weight times gain / sqrt(fan_in); the fused stride-2 conv equals
  # the 3x3 conv followed by 2x2 box downsampling (official conv2d_downscale2d).
  conv = pg.WSConv(5, 3)
  params = conv.init(jax.random.PRNGKey(1), jnp.asarray(x))
  params = jax.tree.map(lambda p: p + 0.1, params)           # a non-zero bias
  w, b = params["params"]["weight"], params["params"]["bias"]
  full = jax.lax.conv_general_dilated(jnp.asarray(x), w * math.sqrt(2 / (9 * 6)), (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
  np.testing.assert_allclose(conv.apply(params, jnp.asarray(x)), full, rtol=1e-5, atol=1e-5)
  down_conv = pg.WSConv(5, 3, down=True).apply(params, jnp.asarray(x))
  np.testing.assert_allclose(down_conv, pg.downscale(full, 2), rtol=1e-5, atol=1e-5)
  # Minibatch stddev (official minibatch_stddev_layer): groups of 4, sample i in group i mod N/4.
  y = rng.normal(size=(8, 4, 4, 3)).astype(np.float32)
  out = np.asarray(pg.minibatch_stddev(jnp.asarray(y), 4, 1))
  groups = y.reshape(4, 2, 4, 4, 3)
  stat = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))      # [2]
  np.testing.assert_allclose(out[:, 0, 0, 3], np.tile(stat, 4), rtol=1e-5)


# --- the two forms and the fade-in -----------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _toy(res=16):
  g, d = _nets(res, 1, **TOY)
  rng = np.random.default_rng(2)
  z = jnp.asarray(rng.standard_normal((8, 16), np.float32))
  x = jnp.asarray(rng.uniform(-1, 1, (8, res, res, 1)).astype(np.float32))
  # Random values drawn by numpy in the initializer's shapes (XLA:CPU compiles flax's per-leaf random
  # initializers slowly): weights N(0, 1) as the initializer's, biases N(0, 0.3²) rather than 0, so
  # every layer matters.
  def values(module, inp, seed):
    shapes = jax.eval_shape(lambda: _init(module, inp))
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map_with_path(
        lambda path, s: (1.0 if "weight" in jax.tree_util.keystr(path) else 0.3)
        * rng.standard_normal(s.shape, np.float32), shapes["params"])
    return {"params": params, "growth": {"lod": jnp.zeros((), jnp.float32)}}
  return g, d, z, x, values(g, z, 4), values(d, x, 5)


def _perturb(variables, seed, only=None, scale=0.3):
  rng = np.random.default_rng(seed)   # numpy: a jax.random draw per leaf shape would compile each
  moved = jax.tree.map(lambda p: p + np.float32(scale) * rng.standard_normal(p.shape, np.float32), variables["params"])
  if only is not None:
    moved = {name: (moved[name] if name == only else p) for name, p in variables["params"].items()}
  return {**variables, "params": moved}


@functools.lru_cache(maxsize=None)
def _compiled(which, res, level=None):
  """The toy G (which=0) or D (1) of resolution `res` at `level`, applied under jit (eager applies
  are slow): (variables, x) -> output; shared between the tests so each compiles once."""
  return jax.jit(_nets(res, 1, **TOY)[which].clone(level=level).apply)


def _at(variables, lod):
  return {**variables, "growth": {"lod": jnp.asarray(lod, jnp.float32)}}


def test_linear_form_equals_the_pruned_network_of_each_stage():
  """The official 'linear' structure (every block, lod traced) and the stage network pruned to 2^r
  give the same images and logits for lod in [L - r, L - r + 1] (16x16: L = 4)."""
  g, d, z, x, gv, dv = _toy()
  g_all, d_all = _compiled(0, 16), _compiled(1, 16)
  for level, lods in ((2, (2.0,)), (3, (1.0, 1.3, 1.999)), (4, (0.0, 0.25, 0.75, 1.0))):
    g_stage, d_stage = _compiled(0, 16, level), _compiled(1, 16, level)
    for lod in lods:
      np.testing.assert_allclose(g_stage(_at(gv, lod), z), g_all(_at(gv, lod), z),
                                 rtol=1e-5, atol=1e-5, err_msg=f"G level {level} lod {lod}")
      np.testing.assert_allclose(d_stage(_at(dv, lod), x), d_all(_at(dv, lod), x),
                                 rtol=1e-5, atol=1e-5, err_msg=f"D level {level} lod {lod}")


def _subset(variables, res):
  """The parameters a network of resolution `res` has (names by resolution: a subset)."""
  keep = lambda name: int(name.split("x")[0].split("_")[-1]) <= res  # noqa: E731
  return {"params": {k: v for k, v in variables["params"].items() if keep(k)},
          "growth": {"lod": jnp.zeros((), jnp.float32)}}


def test_fade_in_endpoints_equal_the_lower_and_the_new_network_alone():
  """Fading in 8x8 in a 16x16 network (level 3, lod = 2 - alpha): at alpha 0 G's output is the 4x4
  network's (its own module, only its parameters) upsampled and D's logits the 4x4 network's on the
  box-downsampled input; at alpha 1 they are the 8x8 network's; in between the blend is linear in
  alpha. Fading in 16x16 (level 4): alpha 0 gives the 8x8 network, and at alpha 1 the output does
  not depend on the 8x8 ToRGB / FromRGB (moving them changes nothing) and is the full network's."""
  g, d, z, x, gv, dv = _toy()
  g_out = {res: pg.upscale(_compiled(0, res)(_subset(gv, res), z), 16 // res) for res in (4, 8)}
  d_out = {res: _compiled(1, res)(_subset(dv, res), pg.downscale(x, 16 // res)) for res in (4, 8)}
  stages = {level: (_compiled(0, 16, level), _compiled(1, 16, level)) for level in (3, 4)}
  tol = dict(rtol=1e-5, atol=1e-6)
  for level, lod, res in ((3, 2.0, 4), (3, 1.0, 8), (4, 1.0, 8)):
    np.testing.assert_allclose(stages[level][0](_at(gv, lod), z), g_out[res], **tol)
    np.testing.assert_allclose(stages[level][1](_at(dv, lod), x), d_out[res], **tol)
  assert not np.allclose(g_out[4], g_out[8], atol=1e-2) and not np.allclose(d_out[4], d_out[8], atol=1e-2)
  for alpha in (0.3, 0.8):
    np.testing.assert_allclose(stages[3][0](_at(gv, 2 - alpha), z), (1 - alpha) * g_out[4] + alpha * g_out[8],
                               rtol=1e-4, atol=1e-5)
  g16, d16 = stages[4]
  full_g, full_d = _compiled(0, 16)(_at(gv, 0.0), z), _compiled(1, 16)(_at(dv, 0.0), x)
  np.testing.assert_allclose(g16(_at(_perturb(gv, 6, "ToRGB_8x8", 10.0), 0.0), z), full_g, **tol)
  np.testing.assert_allclose(d16(_at(_perturb(dv, 7, "FromRGB_8x8", 10.0), 0.0), x), full_d, **tol)
  assert not np.allclose(g16(_at(_perturb(gv, 6, "ToRGB_8x8", 10.0), 0.5), z), g16(_at(gv, 0.5), z))


# --- growth schedule -------------------------------------------------------------------------

def _official_lod(nimg, top, start, train_kimg, trans_kimg):
  """train.TrainingSchedule's lod at cur_nimg (the official formula, in exact rational arithmetic so
  that image counts on a phase boundary do not depend on rounding)."""
  kimg, train_kimg, trans_kimg = Fraction(nimg, 1000), Fraction(train_kimg), Fraction(trans_kimg)
  dur = train_kimg + trans_kimg
  idx = math.floor(kimg / dur)
  phase_kimg = kimg - idx * dur
  lod = top - start - idx - (max(phase_kimg - train_kimg, 0) / trans_kimg if trans_kimg > 0 else 0)
  return max(lod, 0)


def test_growth_schedule_follows_the_official_image_count():
  """Batches 12 at 4x4, 8 at 8x8, 4 at 16x16 and 32x32 (L = 5), 0.1 kimg per phase: stepping
  through the official loop (cur_nimg += the batch of the resolution of the current lod) gives the
  lod and the resolution of every step."""
  top, start, tk, fk = 5, 2, "0.1", "0.1"
  batches = {2: 12, 3: 8, 4: 4, 5: 4}
  growth = ps.Growth.build(top, start, float(tk), float(fk), batches)
  nimg = 0
  lod_of = jax.jit(growth.lod)
  for step in range(400):
    lod = _official_lod(nimg, top, start, tk, fk)
    level = top - int(np.floor(lod))
    assert growth.level_at(step) == level and growth.images_before(step) == nimg, step
    assert growth.lod_at(step) == pytest.approx(float(lod), abs=1e-9), step
    assert float(lod_of(jnp.asarray(step))) == pytest.approx(float(lod), abs=1e-5), step
    nimg += batches[level]
  assert growth.level_at(399) == 5 and growth.lod_at(399) == 0.0
  # Phases: 4x4 stable while at most 100 images were shown: 9 steps (108 images); the fade-in to 8x8
  # while fewer than 200: 12 steps (204); 8x8 stable while at most 300: 13 steps (308).
  assert growth.first[:4] == (0, 9, 21, 34) and growth.fading[:4] == (False, True, False, True)
  assert growth.images[:4] == (0, 108, 204, 308)


def test_celebahq_experiment_schedule():
  from gan_jax import cli
  c = cli.load_experiment(experiment("progan_celebahq1024"))
  growth = ps.growth_of(c)
  # 1024x1024 fully faded in after 9.6M images, at batch 32 from 64x64 up.
  p = [i for i, (lv, fading) in enumerate(zip(growth.level, growth.fading)) if lv == 10 and not fading][0]
  assert 9_600_000 <= growth.images[p] < 9_600_000 + 32
  assert [growth.batch_of(lv) for lv in range(2, 11)] == [512, 256, 128, 64, 32, 32, 32, 32, 32]
  assert growth.images_before(c.total_steps) >= 12_000_000 > growth.images_before(c.total_steps - 1)
  assert (c.loss.name, c.reg.wgan_gp, c.reg.drift, c.ema.decay, c.n_critic) == ("wasserstein", 10.0, 0.001, 0.999, 1)
  assert (c.optim.g.lr, c.optim.g.b1, c.optim.g.b2, c.optim.d.eps) == (0.001, 0.0, 0.99, 1e-8)
  with pytest.raises(ConfigError, match="lrate"):
    cli.load_experiment(experiment("progan_celebahq1024") + ":lrate=fast")


def test_prepare_reals_fades_like_process_reals():
  rng = np.random.default_rng(1)
  x = rng.uniform(-1, 1, (2, 16, 16, 1)).astype(np.float32)
  at8 = x.reshape(2, 8, 2, 8, 2, 1).mean(axis=(2, 4))
  at4 = at8.reshape(2, 4, 2, 4, 2, 1).mean(axis=(2, 4))
  up = lambda a, f: np.repeat(np.repeat(a, f, 1), f, 2)  # noqa: E731
  # Level 3 (8x8) of a 16x16 network: stable (lod 1), alpha 0 (lod 2), halfway (lod 1.5).
  np.testing.assert_allclose(ps.prepare_reals(jnp.asarray(x), 1.0, 4, 3), up(at8, 2), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(ps.prepare_reals(jnp.asarray(x), 2.0, 4, 3), up(at4, 4), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ps.prepare_reals(jnp.asarray(x), 1.5, 4, 3), 0.5 * up(at8, 2) + 0.5 * up(at4, 4),
                             rtol=1e-5, atol=1e-6)


def test_bad_configs_are_one_line_errors(load_config):
  c = load_config("experiments/progan_celebahq1024.py:runlocal")
  spec = DataSpec("image", (16, 16, 1))
  for key, value, match in (("model.minibatch_dict", "4:64,12:8", "not a resolution"),
                            ("model.minibatch_dict", "4=64", "RES:VALUE"),
                            ("model.lod_initial_resolution", 6, "power of two"),
                            ("model.conditional", True, "unconditional")):
    bad = load_config("experiments/progan_celebahq1024.py:runlocal")
    bad.update_from_flattened_dict({key: value})
    with pytest.raises(ConfigError, match=match):
      build_trainer(bad, DataSpec("image", (16, 16, 1), 10))   # labelled, for the conditional case
  with pytest.raises(ConfigError, match="square"):
    build_trainer(c, DataSpec("image", (16, 8, 1)))
  with pytest.raises(ConfigError, match="divisible by the 3 devices"):
    build_trainer(c, spec).check_devices(3, 1)


# --- loss ------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["mean_square", "square_mean"])
def test_wgan_gp_with_drift_equals_a_hand_computation(form):
  """One D update (SGD, lr 1) of a linear critic D(x) = <w, x> + b under loss `wasserstein`,
  reg.wgan_gp = 10 and reg.drift = 0.001 moves (w, b) by minus the gradient of
  E D(fake) - E D(real) + 10 (|w| - 1)² + 0.001 E D(real)² (official D_wgangp_acgan; the penalty's
  gradient norm is |w| at every interpolate), or with reg.drift_form="square_mean" the last term
  0.001 (E D(real))² (TransGAN's wgangp-eps)."""
  import flax.linen as nn
  import optax

  class LinearD(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
      w = self.param("w", nn.initializers.normal(0.5), (x[0].size,))
      b = self.param("b", nn.initializers.constant(0.7), ())
      return x.reshape(x.shape[0], -1) @ w + b

  class TinyG(nn.Module):
    @nn.compact
    def __call__(self, z, train=True):
      return nn.Dense(12)(z).reshape(-1, 2, 2, 3)

  loss = make_loss(ConfigDict({"name": "wasserstein", "ls_a": 0.0, "ls_b": 1.0, "ls_c": 1.0}))
  gan = GAN(generator=TinyG(), discriminator=LinearD(), loss=loss,
            g_tx=optax.sgd(1.0), d_tx=optax.sgd(1.0), z_dim=4, z_dist="normal", batch_size=6,
            reg=Regularization(wgan_gp=10.0, drift=0.001, drift_form=form))
  state = init_state(jax.random.PRNGKey(0), gan.generator, gan.discriminator, (2, 2, 3), 4, gan.g_tx, gan.d_tx,
                     False)
  real = jax.random.normal(jax.random.PRNGKey(1), (6, 2, 2, 3))
  key = jax.random.PRNGKey(2)
  new, logs = jax.jit(lambda st, x, k: d_update(gan, st, x, k))(state, real, key)
  z = gan.latents(jax.random.split(key)[0], 6)
  fake = np.asarray(gan.generate(state.g_params, {}, z, None, jax.random.fold_in(key, 2))[0]).reshape(6, -1)
  w, b = np.asarray(state.d_params["w"], np.float64), float(state.d_params["b"])
  xr = np.asarray(real, np.float64).reshape(6, -1)
  r = xr @ w + b
  norm = np.linalg.norm(w)
  if form == "mean_square":
    drift_w, drift_b, drift = 2 * (r[:, None] * xr).mean(0), 2 * r.mean(), np.mean(r ** 2)
  else:
    drift_w, drift_b, drift = 2 * r.mean() * xr.mean(0), 2 * r.mean(), r.mean() ** 2
  grad_w = fake.mean(0) - xr.mean(0) + 10 * 2 * (norm - 1) * w / norm + 0.001 * drift_w
  grad_b = 0.001 * drift_b
  np.testing.assert_allclose(new.d_params["w"], w - grad_w, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(new.d_params["b"], b - grad_b, rtol=1e-5)
  np.testing.assert_allclose(logs["drift"], drift, rtol=1e-5)
  np.testing.assert_allclose(logs["wgan_gp"], (norm - 1) ** 2, rtol=1e-4)
  np.testing.assert_allclose(regs.drift(jnp.asarray([1.0, -2.0, 3.0])), 14 / 3, rtol=1e-6)
  np.testing.assert_allclose(regs.drift(jnp.asarray([1.0, -2.0, 3.0]), "square_mean"), 4 / 9, rtol=1e-6)


# --- the trainer -----------------------------------------------------------------------------

def _toy_config(load_config, **overrides):
  """8x8 digits (their own resolution), toy widths, batch 16 at 4x4 and 8 at 8x8, 32 images per phase."""
  c = load_config("experiments/progan_celebahq1024.py:runlocal")
  c.update_from_flattened_dict({
      "wandb.mode": "disabled", "data.resolution": 8, "model.fmap_base": 16, "model.fmap_max": 8,
      "model.z_dim": 8, "model.lod_training_kimg": 0.032, "model.lod_transition_kimg": 0.032,
      "model.minibatch_dict": "4:16", "batch_size": 8, "log_every": 1, "ckpt_every": 1000, "sample_every": 0,
      "eval.every": 0, **overrides})
  return c


@pytest.mark.slow
def test_resume_within_and_across_stages_equals_an_uninterrupted_run(load_config, tmp_path):
  """7 steps straight (4x4 for steps 1-3: at most 32 images shown before each; the fade-in at steps
  4-5; 8x8 stable from step 6; optimizers reset before steps 4 and 6) == 2 steps, stop mid-stage,
  then the other 5 (into the next stage, through the fade-in and its end): final states and every
  logged value equal."""
  loop.train(_toy_config(load_config, total_steps=7), str(tmp_path / "straight"))
  for n in (2, 7):
    loop.train(_toy_config(load_config, total_steps=n), str(tmp_path / "resumed"))
  *_, gan, _, a, step_a = loop.load_run(str(tmp_path / "straight"))
  *_, b, step_b = loop.load_run(str(tmp_path / "resumed"))
  assert step_a == step_b == 7 and isinstance(gan, ps.ProGAN)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  rows_a = read_jsonl(str(tmp_path / "straight" / "metrics.jsonl"))
  rows_b = read_jsonl(str(tmp_path / "resumed" / "metrics.jsonl"))
  assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] == list(range(1, 8))
  for ra, rb in zip(rows_a, rows_b):
    assert (ra["d_loss"], ra["g_loss"], ra["lod"]) == (rb["d_loss"], rb["g_loss"], rb["lod"])
  assert [r["lod"] for r in rows_a] == pytest.approx([1, 1, 1, 0.5, 0.25, 0, 0])
  assert float(a.g_vars["growth"]["lod"]) == 0.0 and int(a.g_opt.inner_state[0].count) == 2


# --- end to end on simulated devices and runlocal --------------------------------------------

def _train_script(workdir, *extra, devices=1):
  r = run_script("train.py", "--config", experiment("progan_celebahq1024") + ":runlocal", "--workdir", workdir,
                 "--config.ckpt_every=1000", *extra, devices=devices, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  return read_jsonl(os.path.join(workdir, "metrics.jsonl"))


@pytest.mark.slow
def test_four_devices_equal_one(tmp_path):
  """Steps 1-5 of the toy schedule (batch 16 at 4x4, then 8 in the fade-in: two compiled stages and
  two unit counts) on 1 and on 4 simulated devices: the same losses and penalties."""
  toy = ["--config.data.resolution=8", "--config.model.fmap_base=16", "--config.model.fmap_max=8",
         "--config.model.z_dim=8", "--config.model.lod_training_kimg=0.032", "--config.model.lod_transition_kimg=0.032",
         "--config.model.minibatch_dict=4:16", "--config.batch_size=8", "--config.total_steps=5",
         "--config.log_every=1", "--config.sample_every=0", "--config.eval.every=0"]
  runs = {n: _train_script(str(tmp_path / f"dev{n}"), *toy, devices=n) for n in (1, 4)}
  keys = ("d_loss", "g_loss", "wgan_gp", "drift", "lod")
  one = np.array([[r[k] for k in keys] for r in runs[1]])
  assert one.shape == (5, 5) and np.all(np.isfinite(one)) and list(one[:, 4]) == [1.0, 1.0, 1.0, 0.5, 0.25]
  np.testing.assert_allclose(np.array([[r[k] for k in keys] for r in runs[4]]), one, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_runlocal_learns_digits(tmp_path):
  """The first 200 of progan_celebahq1024:runlocal's 300 steps (16x16 digits, growing from 4x4; 16x16
  fully faded in at step 88): digit_fd well below its step-0 value (measured: 1596 at step 0, 1414
  at 100, 392 at 200, 278 at 300), and the sample grid of the last step written."""
  rows = _train_script(str(tmp_path / "run"), "--config.total_steps=200")
  fd = {r["step"]: r["digit_fd"] for r in rows if "digit_fd" in r}
  assert sorted(fd) == [0, 100, 200] and fd[200] < 0.5 * fd[0], fd
  assert os.path.exists(str(tmp_path / "run" / "samples" / "step_00000200.png"))
