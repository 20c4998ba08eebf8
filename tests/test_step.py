"""The pure train step: n_critic, EMA, keys, purity."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax.losses import LOSSES
from gan_jax.models.mlp import MaxoutDiscriminator, MLPGenerator
from gan_jax.train.kinds.gan import GAN, train_step


def _gan(**kw):
  args = dict(generator=MLPGenerator(out_dim=2, width=16, layers=2),
              discriminator=MaxoutDiscriminator(width=8, layers=2, pieces=2),
              loss=LOSSES.get("nonsaturating")(), g_tx=optax.adam(1e-3), d_tx=optax.adam(1e-3),
              z_dim=2, z_dist="normal", batch_size=8)
  args.update(kw)
  return GAN(**args)


def _state(gan):
  return gan.init(jax.random.PRNGKey(0), (2,))


def _batch(n_critic, seed=0):
  return {"x": jax.random.normal(jax.random.PRNGKey(seed), (n_critic, 8, 2))}


def _adam_count(opt_state):
  adam = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)]
  return int(adam[0].count)


@pytest.mark.parametrize("n_critic", [1, 3])
def test_n_critic_discriminator_updates_per_generator_update(n_critic):
  gan = _gan(n_critic=n_critic)
  step = jax.jit(functools.partial(train_step, gan))
  state = _state(gan)
  for _ in range(2):
    state, metrics = step(state, _batch(n_critic), jax.random.PRNGKey(1))
  assert int(state.step) == 2
  assert _adam_count(state.g_opt) == 2
  assert _adam_count(state.d_opt) == 2 * n_critic
  assert set(metrics) == {"d_loss", "d_real", "d_fake", "d_grad_norm", "g_loss", "g_grad_norm"}  # plain optax: no lr


def test_step_is_a_pure_function_of_state_batch_key():
  gan = _gan()
  step = jax.jit(functools.partial(train_step, gan))
  s0 = _state(gan)
  a, ma = step(s0, _batch(1), jax.random.PRNGKey(1))
  b, mb = step(s0, _batch(1), jax.random.PRNGKey(1))
  assert float(ma["g_loss"]) == float(mb["g_loss"])
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  c, mc = step(s0, _batch(1), jax.random.PRNGKey(2))
  assert float(mc["g_loss"]) != float(ma["g_loss"])


def test_keys_follow_the_step_counter():
  """The same base key at another step draws other latents (fold_in(key, step))."""
  gan = _gan()
  step = jax.jit(functools.partial(train_step, gan))
  s0 = _state(gan)
  _, m0 = step(s0, _batch(1), jax.random.PRNGKey(1))
  _, m5 = step(s0.replace(step=jnp.int32(5)), _batch(1), jax.random.PRNGKey(1))
  assert float(m0["d_loss"]) != float(m5["d_loss"])


def test_ema_update_by_hand():
  gan = _gan(ema_decay=0.9)
  s0 = _state(gan)
  s1, _ = jax.jit(functools.partial(train_step, gan))(s0, _batch(1), jax.random.PRNGKey(1))
  expected = jax.tree.map(lambda e, p: 0.9 * np.asarray(e) + 0.1 * np.asarray(p), s0.ema_params, s1.g_params)
  for x, y in zip(jax.tree.leaves(s1.ema_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(x, y, rtol=1e-6)


def test_ema_half_life_in_images():
  """StyleGAN2-ADA: beta = 0.5 ** (batch / (ema_kimg * 1000)): old weights halve every ema_kimg k images."""
  gan = _gan(batch_size=64, ema_halflife_kimg=6.4)
  beta = float(gan.ema_beta(jnp.int32(10_000)))
  np.testing.assert_allclose(beta ** 100, 0.5, rtol=1e-5)          # 100 steps x 64 = 6.4k images
  ramped = _gan(batch_size=64, ema_halflife_kimg=6.4, ema_rampup=0.05)
  # After 10 steps (640 images), the ramped half-life is 0.05 * 640 = 32 images.
  np.testing.assert_allclose(float(ramped.ema_beta(jnp.int32(10))), 0.5 ** (64 / 32), rtol=1e-6)
  assert _gan().use_ema is False and _state(_gan()).ema_params is None


def test_generator_step_leaves_discriminator_alone_and_vice_versa():
  from gan_jax.train.kinds.gan import d_update, g_update
  gan = _gan()
  s0 = _state(gan)
  real = _batch(1)["x"][0]
  s_d, _ = jax.jit(functools.partial(d_update, gan))(s0, real, jax.random.PRNGKey(3))
  for x, y in zip(jax.tree.leaves(s_d.g_params), jax.tree.leaves(s0.g_params)):
    np.testing.assert_array_equal(x, y)
  s_g, _ = jax.jit(functools.partial(g_update, gan))(s0, real, jax.random.PRNGKey(3))
  for x, y in zip(jax.tree.leaves(s_g.d_params), jax.tree.leaves(s0.d_params)):
    np.testing.assert_array_equal(x, y)


def test_output_bias_gradient_closed_form():
  """d/db of the non-saturating D loss = mean(-sigmoid(-r)) + mean(sigmoid(f)) for D's output bias b."""
  gan = _gan()
  s0 = _state(gan)
  real = _batch(1)["x"][0]
  fake = jnp.full((8, 2), 0.3)

  def loss(d_params):
    r, _ = gan.discriminate(d_params, {}, real)
    f, _ = gan.discriminate(d_params, {}, fake)
    return gan.loss.d(r, f), (r, f)

  grads, (r, f) = jax.jit(jax.grad(loss, has_aux=True))(s0.d_params)
  expected = np.mean(-jax.nn.sigmoid(-r)) + np.mean(jax.nn.sigmoid(f))
  np.testing.assert_allclose(grads["Dense_0"]["bias"][0], expected, rtol=1e-5)


def test_relativistic_generator_step_reads_a_fresh_real_batch():
  """With a loss whose G term uses reals, the step reads n_critic + 1 batches: the last for G."""
  gan = _gan(loss=LOSSES.get("rsgan")(None), n_critic=2)
  assert gan.batches_per_step == 3 and _gan().batches_per_step == 1
  step = jax.jit(functools.partial(train_step, gan))
  s0 = _state(gan)
  a, b = _batch(3, seed=1)["x"], _batch(3, seed=2)["x"]
  other_g_batch = a.at[2].set(b[2])
  s_a, _ = step(s0, {"x": a}, jax.random.PRNGKey(1))
  s_b, _ = step(s0, {"x": other_g_batch}, jax.random.PRNGKey(1))
  for x, y in zip(jax.tree.leaves(s_a.d_params), jax.tree.leaves(s_b.d_params)):
    np.testing.assert_array_equal(x, y)                      # D saw rows 0 and 1 only
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(s_a.g_params), jax.tree.leaves(s_b.g_params)))
  with pytest.raises(ValueError, match="reads 3"):
    step(s0, {"x": a[:2]}, jax.random.PRNGKey(1))


def test_ema_turns_on_with_a_half_life_ramp_from_zero():
  """R3GAN ramps the EMA half-life from 0; at step 0 the EMA equals the weights (beta = 0)."""
  gan = _gan(ema_halflife_final_kimg=500.0, schedule_images=1e6)
  assert gan.use_ema
  assert float(gan.ema_beta(jnp.int32(0))) == 0.0
  assert 0.0 < float(gan.ema_beta(jnp.int32(1000))) < 1.0
