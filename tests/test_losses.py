import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


REAL = np.array([2.0, -0.5, 0.3, 4.0], np.float32)
FAKE = np.array([-1.0, 0.7, -3.0, 0.1], np.float32)


def test_nonsaturating_matches_cross_entropy():
  # Goodfellow 2014: D maximises log D(x) + log(1 - D(G(z))); G maximises log D(G(z)).
  d_expected = -np.mean(np.log(_sigmoid(REAL))) - np.mean(np.log(1 - _sigmoid(FAKE)))
  g_expected = -np.mean(np.log(_sigmoid(FAKE)))
  loss = losses.LOSSES.get("nonsaturating")
  np.testing.assert_allclose(loss.d(REAL, FAKE), d_expected, rtol=1e-6)
  np.testing.assert_allclose(loss.g(REAL, FAKE), g_expected, rtol=1e-6)
  assert not loss.g_uses_real


def test_nonsaturating_at_zero_logits_is_log2():
  loss = losses.LOSSES.get("nonsaturating")
  z = jnp.zeros(3)
  np.testing.assert_allclose(loss.d(z, z), 2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(loss.g(z, z), np.log(2), rtol=1e-6)


def test_nonsaturating_is_stable_for_large_logits():
  loss = losses.LOSSES.get("nonsaturating")
  d = loss.d(jnp.array([100.0]), jnp.array([-100.0]))
  assert np.isfinite(d) and d < 1e-30
  np.testing.assert_allclose(loss.g(None, jnp.array([-100.0])), 100.0, rtol=1e-6)


def test_hinge_by_hand():
  loss = losses.LOSSES.get("hinge")
  # relu(1 - r): [0, 1.5, 0.7, 0] -> 0.55; relu(1 + f): [0, 1.7, 0, 1.1] -> 0.7
  np.testing.assert_allclose(loss.d(REAL, FAKE), 0.55 + 0.7, rtol=1e-6)
  np.testing.assert_allclose(loss.g(REAL, FAKE), -np.mean(FAKE), rtol=1e-6)


def test_losses_accept_column_logits_and_return_float32_scalars():
  for name in losses.LOSSES:
    loss = losses.LOSSES.get(name)
    out = loss.d(jnp.asarray(REAL[:, None], jnp.bfloat16), jnp.asarray(FAKE[:, None], jnp.bfloat16))
    assert out.shape == () and out.dtype == jnp.float32


def test_unknown_loss_lists_choices():
  from gan_jax.config import ConfigError
  with pytest.raises(ConfigError, match="valid choices: hinge, nonsaturating"):
    losses.LOSSES.get("nope")
