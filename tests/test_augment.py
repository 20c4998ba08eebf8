"""Differentiable augmentation (gan_jax/augment): identity at p = 0, gradients, inverses, colour
invariants, the adaptive p, device invariance, the train-step wiring and a limited-data check."""
import dataclasses
import functools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import experiment, read_jsonl, run_main, run_script
from jax.test_util import check_grads

from gan_jax import config as config_lib
from gan_jax.augment import Augment, ada, diffaugment, make_augment, parse_ada_pipeline
from gan_jax.errors import ConfigError
from gan_jax.losses import LOSSES
from gan_jax.train.kinds.gan import GAN, d_update, train_step


def _images(n=8, h=8, w=8, c=3, seed=0):
  return jax.random.uniform(jax.random.PRNGKey(seed), (n, h, w, c), minval=-1.0, maxval=1.0)


def _smooth(n=4, h=24, w=24, c=3):
  """Low-frequency images: bilinear interpolation of them is accurate."""
  yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
  base = [np.sin(2.0 * xx + k) * np.cos(1.5 * yy - k) for k in range(n * c)]
  return jnp.asarray(np.stack(base).reshape(n, c, h, w).transpose(0, 2, 3, 1), jnp.float32)


# ---------------------------------------------------------------- identity, gradients, inverses

@pytest.mark.parametrize("channels", [1, 3])
def test_p_zero_is_the_identity_exactly(channels):
  x = _images(c=channels)
  key = jax.random.PRNGKey(3)
  full = dict(parse_ada_pipeline("bgcfnc"))
  f = jax.jit(lambda x, p: ada.ada_augment(key, x, p, full))
  np.testing.assert_array_equal(f(x, 0.0), x)
  np.testing.assert_array_equal(jax.jit(lambda x: diffaugment.diffaugment(key, x, 0.0))(x), x)
  # ... and p = 1 changes every image.
  y = f(x, 1.0)
  assert np.all(np.abs(np.asarray(y) - np.asarray(x)).reshape(len(x), -1).max(1) > 1e-3)


@pytest.mark.parametrize("transform", ada.TRANSFORMS)
def test_gradients_flow_through_every_ada_transform(transform):
  """Finite differences vs reverse-mode gradients, each transform alone at p = 1."""
  x = _images(n=4, h=6, w=6, seed=1)
  key = jax.random.PRNGKey(7)
  f = jax.jit(lambda x: ada.ada_augment(key, x, 1.0, {transform: 1.0}))
  assert not np.array_equal(np.asarray(f(x)), np.asarray(x)), "the transform did nothing to these images"
  check_grads(f, (x,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)
  g = jax.grad(lambda x: jnp.sum(f(x) ** 2))(x)
  assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


@pytest.mark.parametrize("policy", diffaugment.POLICIES)
def test_gradients_flow_through_every_diffaugment_policy(policy):
  x = _images(n=4, h=6, w=6, seed=2)
  key = jax.random.PRNGKey(5)
  f = jax.jit(lambda x: diffaugment.diffaugment(key, x, 1.0, (policy,)))
  assert not np.array_equal(np.asarray(f(x)), np.asarray(x))
  check_grads(f, (x,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2, eps=1e-2)


def test_blit_matrices_are_the_exact_pixel_permutations():
  x = _images(n=1, h=6, w=6)
  one = lambda m: np.asarray(m, np.float32)[None]  # noqa: E731
  flip, rot, shift = map(np.asarray, jax.jit(lambda x: [ada.resample(x, one(m)) for m in (
      [[-1, 0, 0], [0, 1, 0], [0, 0, 1]],
      [[0, -1, 0], [1, 0, 0], [0, 0, 1]],       # rotate2d_inv(-90°): source = R(90°)·out
      [[1, 0, 2], [0, 1, -1], [0, 0, 1]])])(x))   # source = out + (2, -1)
  x = np.asarray(x)
  np.testing.assert_array_equal(flip, x[:, :, ::-1])
  np.testing.assert_array_equal(rot, np.rot90(x, k=1, axes=(1, 2)))
  np.testing.assert_array_equal(shift[:, 1:, :4], x[:, :-1, 2:])
  # Outside, reflection without repeating the edge (F.pad(mode="reflect")): column 6 -> 4, 7 -> 3.
  np.testing.assert_array_equal(shift[:, 1:, 4], x[:, :-1, 4])
  np.testing.assert_array_equal(shift[:, 1:, 5], x[:, :-1, 3])


def test_geometric_transforms_compose_with_their_inverses():
  """aug then the inverse matrix: the identity within bilinear interpolation error (inside the
  region that stays inside the image); blit-only transforms exactly."""
  x = _smooth()
  n = x.shape[0]
  geom, blit = dict(parse_ada_pipeline("geom")), dict(parse_ada_pipeline("blit"))

  @jax.jit
  def run(x):
    g_inv, on = ada.geometric_matrix(jax.random.PRNGKey(11), n, jnp.float32(1.0), geom, 24, 24)
    there = ada.resample(x, g_inv)
    back = ada.resample(there, jnp.linalg.inv(g_inv))
    g_inv, _ = ada.geometric_matrix(jax.random.PRNGKey(12), n, jnp.float32(1.0), {**blit, "xint": 0.0}, 24, 24)
    return on, there, back, ada.resample(ada.resample(x, g_inv), jnp.round(jnp.linalg.inv(g_inv)))

  on, there, back, blit_back = map(np.asarray, run(x))
  x = np.asarray(x)
  assert bool(on.all())
  c = slice(9, 15)   # central 6x6: with these draws (scale, aniso <= 2^0.6), never leaves the image
  err = np.abs(back - x)[:, c, c]
  assert err.max() < 0.05, err.max()
  assert np.abs(there - x)[:, c, c].max() > 0.2        # the transform did move things
  np.testing.assert_array_equal(blit_back, x)


# ---------------------------------------------------------------- colour

@functools.partial(jax.jit, static_argnames=("name", "key"))
def _color_only(name, x, key=0):
  return ada.ada_augment(jax.random.PRNGKey(key), x, 1.0, {name: 1.0})


def test_hue_and_saturation_keep_each_pixels_luma():
  x = _images(n=16)
  for name in ("hue", "saturation"):
    y = np.asarray(_color_only(name, x))
    np.testing.assert_allclose(y.mean(-1), np.asarray(x).mean(-1), atol=1e-5)
    assert np.abs(y - np.asarray(x)).max() > 0.1


def test_brightness_contrast_lumaflip_closed_forms():
  x = _images(n=64)
  d = np.asarray(_color_only("brightness", x)) - np.asarray(x)     # a constant shift per image
  np.testing.assert_allclose(d, np.broadcast_to(d[:, :1, :1, :1], d.shape), atol=1e-6)
  assert 0.1 < d[:, 0, 0, 0].std() < 0.3                           # N(0, 0.2²)
  y = np.asarray(_color_only("contrast", x))
  ratio = y / np.asarray(x)                                         # a scale about 0 per image
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1, :1, :1], ratio.shape), rtol=1e-4)
  y = np.asarray(_color_only("lumaflip", x))
  flipped = np.abs(y - np.asarray(x)).reshape(64, -1).max(1) > 1e-6
  assert 16 < flipped.sum() < 48                                    # i ~ {0, 1}
  np.testing.assert_allclose(y.mean(-1)[flipped], -np.asarray(x).mean(-1)[flipped], atol=1e-5)
  chroma = lambda a: a - a.mean(-1, keepdims=True)  # noqa: E731
  np.testing.assert_allclose(chroma(y), chroma(np.asarray(x)), atol=1e-5)


def test_one_channel_color_is_the_mean_of_the_rgb_rows():
  """The official 1-channel rule: a grey image gives the channel mean of its RGB copy's result."""
  grey = _images(n=8, c=1)
  st = dict(parse_ada_pipeline("color"))
  key = jax.random.PRNGKey(4)
  y1, y3 = map(np.asarray, jax.jit(lambda grey: (ada.ada_augment(key, grey, 1.0, st),
                                                ada.ada_augment(key, jnp.repeat(grey, 3, -1), 1.0, st)))(grey))
  np.testing.assert_allclose(y1[..., 0], y3.mean(-1), atol=1e-5)


def test_diffaugment_color_keeps_the_means_it_should():
  x = _images(n=16)
  key = jax.random.PRNGKey(1)
  y = np.asarray(jax.jit(diffaugment.color)(key, x, 1.0))
  k = jax.random.split(key, 6)
  u = [np.asarray(jax.random.uniform(k[i], (16, 1, 1, 1))) for i in range(3)]
  b = np.asarray(x) + (u[0] - 0.5)                                  # brightness by hand
  s = (b - b.mean(-1, keepdims=True)) * (2 * u[1]) + b.mean(-1, keepdims=True)
  np.testing.assert_allclose(s.mean(-1), b.mean(-1), atol=1e-5)    # saturation keeps the pixel mean
  expected = (s - s.mean((1, 2, 3), keepdims=True)) * (u[2] + 0.5) + s.mean((1, 2, 3), keepdims=True)
  np.testing.assert_allclose(y, expected, atol=1e-5)
  np.testing.assert_allclose(y.mean((1, 2, 3)), s.mean((1, 2, 3)), atol=1e-5)   # contrast keeps the image mean


def test_filter_bank_is_a_partition_of_unity():
  bank = ada.filter_bank()
  impulse = np.zeros(bank.shape[1])
  impulse[bank.shape[1] // 2] = 1
  np.testing.assert_allclose(bank.sum(0), impulse, atol=1e-12)
  # Band 0 low-pass (DC gain 1), the others band-pass (DC gain 0).
  np.testing.assert_allclose(bank.sum(1), [1, 0, 0, 0], atol=1e-12)


def test_each_transform_fires_with_probability_p():
  x = jnp.ones((4000, 4, 4, 1))
  cutout = jax.jit(lambda x, p: ada.ada_augment(jax.random.PRNGKey(2), x, p, {"cutout": 1.0}))
  for p in (0.25, 0.7):
    y = cutout(x, p)
    frac = float(np.mean(np.asarray(y).reshape(4000, -1).min(1) == 0))
    assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / 4000), (p, frac)
  # strength multiplies p (R3GAN's colour at 0.5).
  y = jax.jit(lambda x: ada.ada_augment(jax.random.PRNGKey(2), x, 0.7, {"cutout": 0.5}))(x)
  assert abs(float(np.mean(np.asarray(y).reshape(4000, -1).min(1) == 0)) - 0.35) < 0.04


# ---------------------------------------------------------------- config and p

def test_pipeline_strings_and_validation():
  st = dict(parse_ada_pipeline("bgc:1,color:0.5,cutout"))
  assert st["xflip"] == st["xfrac"] == 1.0 and st["hue"] == 0.5 and st["cutout"] == 1.0 and "noise" not in st
  assert set(dict(parse_ada_pipeline("bgcfnc"))) == set(ada.TRANSFORMS)
  c = config_lib.base_config()
  config_lib.validate(c)
  c.augment.name = "ada"
  with pytest.raises(ConfigError, match="this dataset has vector data; valid: augment.name=none"):
    make_augment(c.augment, "vector")
  with pytest.raises(ConfigError, match=r"augments images \[B, H, W, C\], got shape \(4, 2\)"):
    make_augment(c.augment)(jax.random.PRNGKey(0), jnp.zeros((4, 2)), 0.5)
  for changes, message in [({"augment.name": "adda"}, "valid choices: none, diffaugment, ada"),
                           ({"augment.name": "ada", "augment.pipeline": "bgx"}, "valid: blit, geom"),
                           ({"augment.name": "diffaugment", "augment.pipeline": "color,flip"},
                            "valid: color, translation, cutout"),
                           ({"augment.name": "ada", "augment.p": 1.5}, r"augment.p must be in \[0, 1\]"),
                           ({"augment.name": "ada", "augment.p_final": 0.5}, "set augment.target=0"),
                           ({"augment.interval": 0}, "augment.interval must be an integer >= 1")]:
    bad = config_lib.base_config()
    bad.update_from_flattened_dict(changes)
    with pytest.raises(ConfigError, match=message):
      config_lib.validate(bad)


def test_scheduled_p_is_the_cosine_ramp():
  c = config_lib.base_config()
  c.augment.update(name="ada", p=0.0, p_final=0.55, target=0.0)
  aug = make_augment(c.augment)
  assert not aug.adaptive and aug.init_state() == {}
  for images, expected in ((0, 0.0), (500, 0.275), (1000, 0.55), (5000, 0.55)):
    np.testing.assert_allclose(aug.probability({}, jnp.float32(images), 1000.0), expected, atol=1e-6)


def test_r3gan_presets_carry_their_augmentation(load_config):
  from gan_jax.models import r3gan
  c = load_config("experiments/r3gan_cifar10.py")
  aug = make_augment(c.augment)
  assert aug.name == "ada" and not aug.adaptive and aug.p == 0.0 and aug.p_final == r3gan.PRESETS["CIFAR10"].aug_p[1]
  st = dict(aug.ada_strength)
  assert st["rotate90"] == 1.0 and st["saturation"] == 0.5 and st["cutout"] == 1.0 and "noise" not in st


@pytest.mark.parametrize("r_t, direction", [(0.9, 1), (0.2, -1)])
def test_adaptive_p_moves_at_the_papers_rate(r_t, direction):
  """Feed E[sign(D(real))] = r_t: p moves by sign(r_t - 0.6)·B·interval/(kimg·1000) every
  `interval` D steps (B = 50 here), not in between, and stays >= 0."""
  c = config_lib.base_config()
  c.augment.update(name="ada", p=0.5, target=0.6, interval=4, kimg=10.0)
  aug = make_augment(c.augment)
  state = aug.init_state()
  n_pos = int(round((1 + r_t) / 2 * 50))
  logits = jnp.concatenate([jnp.ones(n_pos), -jnp.ones(50 - n_pos)]) * 3.0
  ps = []
  update = jax.jit(aug.update, static_argnums=3)
  for d_step in range(12):
    state = update(state, logits, d_step, 50)
    ps.append(float(state["aug_p"]))
  step = 50 * 4 / (10.0 * 1000)
  expected = [0.5 + direction * step * ((i + 1) // 4) for i in range(12)]
  np.testing.assert_allclose(ps, expected, atol=1e-6)
  # Floors at 0 (the official max(0, ·)).
  low = {**aug.init_state(), "aug_p": jnp.float32(0.01)}
  for d_step in range(4):
    low = update(low, -jnp.ones(50), d_step, 50)
  assert float(low["aug_p"]) == 0.0


# ---------------------------------------------------------------- the train step

class _Gen(nn.Module):
  @nn.compact
  def __call__(self, z, train=True):
    del train
    return jnp.tanh(nn.Dense(4 * 4)(z)).reshape(-1, 4, 4, 1)


class _LinearD(nn.Module):
  @nn.compact
  def __call__(self, x, train=True):
    del train
    w = self.param("w", nn.initializers.ones, (4 * 4,))
    return x.reshape(x.shape[0], -1) @ w


def _image_gan(**kw):
  args = dict(generator=_Gen(), discriminator=_LinearD(), loss=LOSSES.get("nonsaturating")(),
              g_tx=optax.adam(1e-3), d_tx=optax.adam(1e-3), z_dim=3, z_dist="normal", batch_size=16)
  args.update(kw)
  return GAN(**args)


_jit_init = jax.jit(lambda gan, key: gan.init(key, (4, 4, 1)), static_argnums=0)


def _init(gan, seed=0):
  """gan.init(PRNGKey(seed), (4, 4, 1)) in one jitted program (one per GAN, a static argument)."""
  return _jit_init(gan, jax.random.PRNGKey(seed))


def test_gradient_penalty_is_taken_at_the_unaugmented_input():
  """D(x) = Σ x: without augmentation R1 = H·W per image; with cutout at p = 1 inside D's input
  path, ∇ₓ D(aug(x)) is the cutout mask, so R1 = E[number of kept pixels] for this step's draws."""
  from gan_jax.regularizers import Regularization
  real = jax.random.uniform(jax.random.PRNGKey(0), (16, 4, 4, 1), minval=-1, maxval=1)
  key = jax.random.PRNGKey(9)
  plain = _image_gan(reg=Regularization(r1=1.0))
  cfg = config_lib.base_config().augment
  cfg.update(name="ada", pipeline="cutout", p=1.0, target=0.0)
  gan = dataclasses.replace(plain, augment=make_augment(cfg))

  @jax.jit
  def run(real, key):
    mask = gan.augment(jax.random.fold_in(key, 5), jnp.ones_like(real), 1.0)   # the reals' draws
    return [d_update(g, g.init(key, (4, 4, 1)), real, key)[1] for g in (plain, gan)], mask

  (plain_logs, logs), mask = run(real, key)
  np.testing.assert_allclose(plain_logs["r1"], 16.0, rtol=1e-6)
  mask = np.asarray(mask)
  np.testing.assert_allclose(logs["r1"], float(np.mean(np.sum(mask ** 2, axis=(1, 2, 3)))), rtol=1e-6)
  assert float(logs["r1"]) < 16.0
  np.testing.assert_allclose(logs["aug_p"], 1.0)


def test_train_step_adapts_p_from_the_logged_rt():
  """4 steps (interval 4, n_critic 1): p moves once, in the direction of mean(aug_rt) - target."""
  cfg = config_lib.base_config().augment
  cfg.update(name="ada", pipeline="cutout", p=0.3, target=0.6, interval=4, kimg=1.0)
  gan = _image_gan(augment=make_augment(cfg))
  state = _init(gan)
  assert float(state.reg_state["aug_p"]) == pytest.approx(0.3)
  step = jax.jit(lambda s, b, k: train_step(gan, s, b, k))
  rts, ps = [], []
  for i in range(4):
    batch = {"x": jax.random.uniform(jax.random.PRNGKey(i), (1, 16, 4, 4, 1), minval=-1, maxval=1)}
    state, m = step(state, batch, jax.random.PRNGKey(1))
    rts.append(float(m["aug_rt"]))
    ps.append(float(m["aug_p"]))
  assert ps == pytest.approx([0.3] * 4)                 # p used by those steps
  expected = 0.3 + np.sign(np.mean(rts) - 0.6) * 16 * 4 / 1000.0
  assert float(state.reg_state["aug_p"]) == pytest.approx(max(expected, 0.0), abs=1e-6)
  # Population mode: vmapped members keep their own p.
  states = jax.tree.map(lambda a, b: np.stack([a, b]), _init(gan, 0), _init(gan, 1))
  keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
  out, m = jax.jit(jax.vmap(lambda s, k: train_step(gan, s, batch, k), in_axes=(0, 0)))(states, keys)
  assert out.reg_state["aug_p"].shape == (2,) and m["aug_rt"].shape == (2,)


def test_augment_none_leaves_the_state_and_metrics_unchanged():
  gan = _image_gan()
  assert gan.augment == Augment() and not gan.augment.enabled
  state = jax.eval_shape(lambda key: gan.init(key, (4, 4, 1)), jax.random.PRNGKey(0))   # abstract: keys are read
  assert state.reg_state == {}
  batch = {"x": jax.random.uniform(jax.random.PRNGKey(0), (1, 16, 4, 4, 1))}
  _, m = jax.eval_shape(lambda s, b, k: train_step(gan, s, b, k), state, batch, jax.random.PRNGKey(1))
  assert not any(k.startswith("aug") for k in m)


# ---------------------------------------------------------------- devices

def test_one_device_and_four_draw_the_same_augmentations():
  """The same program on a 1-device and a 4-device mesh (of this interpreter's CPU devices), the batch
  split over the devices: the same draws."""
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

  from gan_jax.augment import ada, diffaugment, parse_ada_pipeline
  out = {}
  st = dict(parse_ada_pipeline("bgcfnc"))
  for devices in (1, 4):
    mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
    x = jax.device_put(jax.random.uniform(jax.random.PRNGKey(0), (16, 8, 8, 3), minval=-1, maxval=1),
                       NamedSharding(mesh, P("data")))
    f = jax.jit(lambda k, x: (ada.ada_augment(k, x, 0.6, st), diffaugment.diffaugment(k, x, 0.6)),
                out_shardings=NamedSharding(mesh, P("data")))
    a, d = f(jax.random.PRNGKey(42), x)
    assert len(a.sharding.device_set) == devices
    out[devices] = {"ada": np.asarray(a), "diffaugment": np.asarray(d)}
  for name in ("ada", "diffaugment"):
    # The same draws: another draw moves pixels by O(1); the quick tier's compile flags may move the last
    # bits between a sharded and an unsharded program (tests/conftest.py).
    np.testing.assert_allclose(out[4][name], out[1][name], rtol=0, atol=1e-5)
    assert not np.array_equal(out[1][name][0], out[1][name][1])   # each image its own draw


# ---------------------------------------------------------------- the trainer

def test_adaptive_p_is_checkpointed_and_old_states_still_fit(tmp_path):
  """The ADA state (p, sign sum, count) rides in reg_state through an Orbax save and restore; a
  run without augmentation has exactly the leaves it had before augmentation existed."""
  from gan_jax.checkpoint import Checkpointer, abstract_like
  cfg = config_lib.base_config().augment
  cfg.update(name="ada", pipeline="cutout", p=0.0, target=0.6)
  gan = _image_gan(augment=make_augment(cfg))
  state = _init(gan)
  state = state.replace(reg_state={**state.reg_state, "aug_p": jnp.float32(0.375),
                                   "aug_sign_sum": jnp.float32(-7.0), "aug_sign_count": jnp.int32(48)})
  ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=1, async_save=False)
  ckpt.save_only(3, state)
  assert ckpt.fits(3, abstract_like(state))
  restored = ckpt.restore(3, abstract_like(state))
  ckpt.close()
  assert {k: float(v) for k, v in restored.reg_state.items()} == {"aug_p": 0.375, "aug_sign_sum": -7.0,
                                                                 "aug_sign_count": 48.0}
  plain = _image_gan()
  shapes = lambda gan: jax.eval_shape(lambda key: gan.init(key, (4, 4, 1)), jax.random.PRNGKey(0))  # noqa: E731
  with_ada, without = shapes(gan), shapes(plain)
  assert len(jax.tree.leaves(with_ada)) == len(jax.tree.leaves(without)) + 3
  assert jax.tree.structure(without) == jax.tree.structure(shapes(dataclasses.replace(plain, augment=Augment())))


@pytest.mark.slow
def test_ada_beats_no_augmentation_on_a_few_digits(tmp_path):
  """Limited data: limited_digits:runlocal (DCGAN widths 16, batch 32) on the first 25 digits for
  300 steps (384 epochs), seeds 0, 1, 2 as one population; digit_fd (1000 samples, against all 1797
  digits) at the end is lower with ADA (bgc, target 0.6, interval 4, kimg 2, p from 0) for the
  seed mean and for at least 2 of the 3 seeds. Measured: none 3309, 3628, 3355; ADA 2666, 2759,
  2649 (p ended at 3.0, 1.7, 1.1: D overfits 25 images at once). The README's study is the
  full-size version."""
  final = {}
  for aug in ("none", "ada"):
    wd = str(tmp_path / aug)
    r = run_script("train.py", "--config",
                   experiment("limited_digits") + f":augment={aug},num=25,steps=300,population=3,ada_kimg=2.0,"
                   "runlocal", "--workdir", wd)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_jsonl(os.path.join(wd, "metrics.jsonl"))
    final[aug] = np.asarray([row for row in rows if "digit_fd" in row][-1]["digit_fd"])
    with open(os.path.join(wd, "config.json")) as f:
      assert json.load(f)["augment"]["name"] == aug
  # The ADA run logs p (rising from 0: D overfits) and r_t per member.
  p = np.asarray([row["aug_p"] for row in rows if "aug_p" in row])
  rt = np.asarray([row["aug_rt"] for row in rows if "aug_rt" in row])
  assert p.shape == rt.shape == (12, 3) and np.all(p[-1] > 0.2) and np.all(np.abs(rt) <= 1)
  assert final["ada"].mean() < final["none"].mean(), final
  assert (final["ada"] < final["none"]).sum() >= 2, final


def test_augmenting_vector_data_stops_before_anything_is_written(tmp_path):
  wd = tmp_path / "ring"
  r = run_main("train.py", "--config", experiment("ring8") + ":runlocal", "--workdir", str(wd),
               "--config.augment.name=ada")
  assert r.returncode == 2 and "augment.name='ada' augments images; this dataset has vector data" in r.stderr
  assert not wd.exists()
