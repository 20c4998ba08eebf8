"""Gradient penalties against closed forms and finite differences; LeCam, clipping, lazy
regularization and schedules."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import regularizers as regs
from gan_jax.losses import LOSSES
from gan_jax.models.mlp import MaxoutDiscriminator, MLPGenerator
from gan_jax.optim import current_lr, make_optimizer
from gan_jax.schedules import cosine_ramp
from gan_jax.train.kinds.gan import GAN, d_update, train_step

X = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3, 2, 1)), jnp.float32)


def quadratic_d(x):
  """D(x) = Σ w ⊙ x² + a·x, so ∇ₓD = 2 w ⊙ x + a exactly."""
  w = jnp.arange(6.0).reshape(3, 2, 1) / 10
  a = jnp.ones((3, 2, 1)) * 0.3
  return jnp.sum(w * x ** 2 + a * x, axis=(1, 2, 3))


def test_r1_closed_form():
  w = np.arange(6.0).reshape(3, 2, 1) / 10
  grads = 2 * w * np.asarray(X) + 0.3
  expected = np.mean(np.sum(grads.reshape(5, -1) ** 2, axis=1))
  np.testing.assert_allclose(regs.zero_centred_penalty(quadratic_d, X), expected, rtol=1e-5)


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = jnp.tanh(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    return nn.Dense(1)(h)[:, 0]


def test_r1_against_finite_differences():
  jax.config.update("jax_enable_x64", True)
  try:
    model = _MLP()
    x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)), jnp.float64)
    params = jax.tree.map(lambda p: p.astype(jnp.float64), model.init(jax.random.PRNGKey(0), x))
    d_fn = lambda inp: model.apply(params, inp)  # noqa: E731
    got = np.asarray(regs.per_example_grad_sq_norm(d_fn, x))
    eps = 1e-6
    fd = np.zeros((4, 3))
    for i in range(4):
      for j in range(3):
        e = np.zeros((4, 3))
        e[i, j] = eps
        fd[i, j] = (float(d_fn(x + e)[i]) - float(d_fn(x - e)[i])) / (2 * eps)
    np.testing.assert_allclose(got, np.sum(fd ** 2, axis=1), rtol=1e-4)
  finally:
    jax.config.update("jax_enable_x64", False)


def test_wgan_gp_explicit():
  real, fake = X, X[::-1] * 2.0
  key = jax.random.PRNGKey(7)
  eps = np.asarray(jax.random.uniform(key, (5, 1, 1, 1)))
  x_hat = eps * np.asarray(real) + (1 - eps) * np.asarray(fake)
  w = np.arange(6.0).reshape(3, 2, 1) / 10
  norms = np.sqrt(np.sum((2 * w * x_hat + 0.3).reshape(5, -1) ** 2, axis=1))
  np.testing.assert_allclose(regs.wgan_gp(quadratic_d, real, fake, key), np.mean((norms - 1) ** 2), rtol=1e-4)


@pytest.mark.parametrize("penalty", ["wgan_gp", "dragan"])
def test_one_centred_penalties_of_a_linear_critic(penalty):
  """For D(x) = a·x the gradient is a everywhere: the penalty is (||a|| - 1)² exactly."""
  a = jnp.full((3, 2, 1), 0.7)
  d_fn = lambda x: jnp.sum(a * x, axis=(1, 2, 3))  # noqa: E731
  key = jax.random.PRNGKey(3)
  value = regs.wgan_gp(d_fn, X, -X, key) if penalty == "wgan_gp" else regs.dragan(d_fn, X, key)
  np.testing.assert_allclose(value, (np.sqrt(6 * 0.49) - 1) ** 2, rtol=1e-5)


def test_dragan_perturbs_around_the_reals_only():
  x_hat = np.asarray(regs.dragan_points(X, jax.random.PRNGKey(0)))
  delta = x_hat - np.asarray(X)
  assert np.all(delta >= 0) and np.all(delta <= 0.5 * np.std(np.asarray(X)) + 1e-6)
  assert np.std(delta) > 0


def test_lecam_by_hand_and_debiased_anchors():
  state = regs.lecam_init()
  r, f = jnp.array([1.0, 3.0]), jnp.array([-2.0, 0.5])
  state, a_r, a_f = regs.lecam_anchors(state, r, f, decay=0.99)
  # After one update the zero-debiased EMA equals the batch means.
  np.testing.assert_allclose([a_r, a_f], [2.0, -0.75], rtol=1e-5)
  expected = (np.mean(np.maximum(0, np.array([1.0, 3.0]) + 0.75) ** 2)
              + np.mean(np.maximum(0, 2.0 - np.array([-2.0, 0.5])) ** 2))
  np.testing.assert_allclose(regs.lecam(r, f, a_r, a_f), expected, rtol=1e-6)
  state, a_r2, _ = regs.lecam_anchors(state, jnp.array([0.0]), f, decay=0.99)
  np.testing.assert_allclose(a_r2, (0.99 * 0.01 * 2.0 + 0.01 * 0.0) / (1 - 0.99 ** 2), rtol=1e-5)


def _gan(**kw):
  args = dict(generator=MLPGenerator(out_dim=2, width=16, layers=2),
              discriminator=MaxoutDiscriminator(width=8, layers=2, pieces=2),
              loss=LOSSES.get("rpgan")(None), g_tx=optax.adam(1e-3), d_tx=optax.adam(1e-3),
              z_dim=2, z_dist="normal", batch_size=8)
  args.update(kw)
  return GAN(**args)


REAL = jax.random.normal(jax.random.PRNGKey(5), (8, 2))


def test_logits_and_grad_sq_norm_from_one_pass_equal_the_separate_ones():
  model = _MLP()
  x = jax.random.normal(jax.random.PRNGKey(2), (6, 3))
  params = model.init(jax.random.PRNGKey(0), x)
  d_fn = lambda inp: model.apply(params, inp)  # noqa: E731
  logits, sq = regs.logits_and_grad_sq_norm(d_fn, x)
  np.testing.assert_allclose(logits, d_fn(x), rtol=1e-6)
  np.testing.assert_allclose(sq, regs.per_example_grad_sq_norm(d_fn, x), rtol=1e-6)


def test_fused_r1_r2_update_equals_the_penalties_differentiated_apart():
  """The D step takes R1 and R2 from its adversarial forward passes; its gradient must equal that of
  adversarial loss + gamma/2 (R1 + R2) with every term differentiated on its own."""
  gan = _gan(reg=regs.Regularization(r1=0.7, r2=0.3), d_tx=optax.sgd(1.0))
  s0 = gan.init(jax.random.PRNGKey(0), (2,))
  key = jax.random.PRNGKey(4)
  s1, metrics = d_update(gan, s0, REAL, key)
  # The fakes of that update (its key derivation: z from the first split, G's key folded with 2).
  z = gan.latents(jax.random.split(key)[0], REAL.shape[0])
  fake = gan.generate(s0.g_params, s0.g_vars, z, None, jax.random.fold_in(key, 2))[0]

  def loss(p):
    d = lambda x: gan.discriminate(p, s0.d_vars, x)[0]  # noqa: E731
    return (gan.loss.d(d(REAL), d(fake)) + 0.35 * regs.zero_centred_penalty(d, REAL)
            + 0.15 * regs.zero_centred_penalty(d, fake))

  grads = jax.grad(loss)(s0.d_params)
  np.testing.assert_allclose(metrics["r1"], regs.zero_centred_penalty(
      lambda x: gan.discriminate(s0.d_params, s0.d_vars, x)[0], REAL), rtol=1e-5)
  for g, before, after in zip(*map(jax.tree.leaves, (grads, s0.d_params, s1.d_params))):
    np.testing.assert_allclose(before - after, g, rtol=1e-4, atol=1e-7)


def test_lazy_regularization_every_k_steps_scaled_by_k():
  lazy = _gan(reg=regs.Regularization(r1=1.0, lazy_every=4))
  eager = _gan(reg=regs.Regularization(r1=1.0))
  s0 = lazy.init(jax.random.PRNGKey(0), (2,))
  key = jax.random.PRNGKey(9)
  _, m_on = d_update(lazy, s0, REAL, key, d_step=8)
  _, m_off = d_update(lazy, s0, REAL, key, d_step=9)
  _, m_eager = d_update(eager, s0, REAL, key, d_step=9)
  np.testing.assert_allclose(m_on["r1"], m_eager["r1"], rtol=1e-6)
  assert float(m_off["r1"]) == 0.0
  # The gradient of a lazy step = adversarial gradient + k x the eager penalty gradient.
  def d_grad(gan, step):
    s, _ = d_update(gan, s0.replace(d_opt=optax.sgd(1.0).init(s0.d_params)), REAL, key, d_step=step)
    return s
  sgd = dict(d_tx=optax.sgd(1.0))
  p_plain = d_grad(_gan(**sgd), 0).d_params
  p_eager = d_grad(_gan(reg=regs.Regularization(r1=1.0), **sgd), 0).d_params
  p_lazy = d_grad(_gan(reg=regs.Regularization(r1=1.0, lazy_every=4), **sgd), 0).d_params
  p_skip = d_grad(_gan(reg=regs.Regularization(r1=1.0, lazy_every=4), **sgd), 1).d_params
  for pl, pe, pz, ps in zip(*map(jax.tree.leaves, (p_plain, p_eager, p_lazy, p_skip))):
    np.testing.assert_allclose(pz - pl, 4 * (pe - pl), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ps, pl, rtol=1e-6)


def test_weight_clipping_bounds_every_parameter():
  gan = _gan(reg=regs.Regularization(clip=0.01), d_tx=optax.sgd(10.0))
  s0 = gan.init(jax.random.PRNGKey(0), (2,))
  s1, _ = d_update(gan, s0, REAL, jax.random.PRNGKey(1))
  leaves = jax.tree.leaves(s1.d_params)
  assert max(float(jnp.max(jnp.abs(p))) for p in leaves) <= 0.01 + 1e-9
  assert any(float(jnp.max(jnp.abs(p))) == pytest.approx(0.01) for p in leaves)


def test_lecam_state_is_carried_in_the_train_state():
  gan = _gan(reg=regs.Regularization(lecam=0.3))
  step = jax.jit(functools.partial(train_step, gan))
  s = gan.init(jax.random.PRNGKey(0), (2,))
  for _ in range(3):
    s, m = step(s, {"x": jnp.stack([REAL, REAL])}, jax.random.PRNGKey(1))   # rpgan: D batch, G batch
  assert int(s.reg_state["count"]) == 3 and "lecam" in m


def test_cosine_ramp():
  ramp = cosine_ramp(2e-4, 5e-5, 1000.0)
  np.testing.assert_allclose([ramp(0.0), ramp(500.0), ramp(1000.0), ramp(5000.0)],
                             [2e-4, 1.25e-4, 5e-5, 5e-5], rtol=1e-5)
  up = cosine_ramp(0.0, 500.0, 100.0)             # R3GAN's EMA half-life goes up from 0
  np.testing.assert_allclose(up(25.0), 500 * (1 - np.cos(np.pi / 4)) / 2, rtol=1e-5)
  assert float(cosine_ramp(3.0, None, 100.0)(50.0)) == 3.0


def test_learning_rate_and_beta2_schedules_in_the_optimizer():
  from ml_collections import ConfigDict
  c = ConfigDict({"name": "adam", "lr": 2e-4, "b1": 0.0, "b2": 0.9, "eps": 1e-8, "lr_final": 5e-5, "b2_final": 0.99,
                  "clip_norm": 0.0})
  tx = make_optimizer(c, images_per_update=10.0, schedule_images=1000.0)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  for _ in range(51):          # the 51st update uses count 50 = 500 images: half way
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
  np.testing.assert_allclose(current_lr(state), 1.25e-4, rtol=1e-4)
  np.testing.assert_allclose(state.hyperparams["b2"], 0.945, rtol=1e-5)


def test_gradient_clipping_to_a_global_norm_by_hand():
  """optim.*.clip_norm: gradients of global norm 10 (two leaves: 6 and 8) clipped to 5 are halved
  before SGD's step; gradients under the norm pass unchanged; the learning rate stays readable."""
  from ml_collections import ConfigDict
  c = ConfigDict({"name": "sgd", "lr": 0.1, "b1": 0.0, "b2": 0.9, "eps": 1e-8, "clip_norm": 5.0,
                  "lr_final": None, "b2_final": None})
  tx = make_optimizer(c)
  params = {"a": jnp.zeros(1), "b": jnp.zeros(1)}
  state = tx.init(params)
  updates, state = tx.update({"a": jnp.array([6.0]), "b": jnp.array([8.0])}, state, params)
  np.testing.assert_allclose([updates["a"][0], updates["b"][0]], [-0.1 * 3.0, -0.1 * 4.0], rtol=1e-6)
  updates, state = tx.update({"a": jnp.array([0.6]), "b": jnp.array([0.8])}, state, params)
  np.testing.assert_allclose([updates["a"][0], updates["b"][0]], [-0.06, -0.08], rtol=1e-6)
  np.testing.assert_allclose(current_lr(state), 0.1, rtol=1e-6)
  c.clip_norm = 0.0   # off: the plain optimizer
  plain = make_optimizer(c)
  updates, _ = plain.update({"a": jnp.array([6.0]), "b": jnp.array([8.0])}, plain.init(params), params)
  np.testing.assert_allclose([updates["a"][0], updates["b"][0]], [-0.6, -0.8], rtol=1e-6)


def _param_distance(a, b):
  return sum(float(jnp.sum(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_gamma_schedule_reaches_the_penalty():
  """gamma ramps from 1 at step 0 to 0 after 80 images (10 steps of 8): the R1 term then vanishes."""
  sgd = optax.sgd(1.0)
  scheduled = _gan(reg=regs.Regularization(r1=1.0), gamma_final=0.0, schedule_images=80.0, d_tx=sgd)
  plain = _gan(d_tx=sgd)
  s0 = scheduled.init(jax.random.PRNGKey(0), (2,))
  key = jax.random.PRNGKey(2)
  base, _ = d_update(plain, s0, REAL, key)
  start, _ = d_update(scheduled, s0, REAL, key)
  end, _ = d_update(scheduled, s0.replace(step=jnp.int32(10)), REAL, key)
  assert _param_distance(start.d_params, base.d_params) > 1e-4
  assert _param_distance(end.d_params, base.d_params) < 1e-7
