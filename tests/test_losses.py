"""Every loss against a hand computation, its gradient against finite differences, the
identities between losses, and the directions D and G push."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from gan_jax import losses
from gan_jax.errors import ConfigError

ALL = ["minimax", "nonsaturating", "hinge", "wasserstein", "least_squares",
       "rsgan", "rasgan", "ralsgan", "rahinge", "rpgan"]
RELATIVISTIC = {"rsgan", "rasgan", "ralsgan", "rahinge", "rpgan"}

R = np.array([2.0, -0.5, 0.3, 4.0])
F = np.array([-1.0, 0.7, -3.0, 0.1])


def _loss(name, **kw):
  return losses.make_loss(ConfigDict({"name": name, "ls_a": 0.0, "ls_b": 1.0, "ls_c": 1.0, **kw}))


def log_sigmoid(x):
  return -np.log1p(np.exp(-x))


# Independent numpy transcriptions of the papers' equations (log-probabilities, not softplus).
EXPECTED = {
    "minimax": (-np.mean(log_sigmoid(R)) - np.mean(log_sigmoid(-F)), np.mean(log_sigmoid(-F))),
    "nonsaturating": (-np.mean(log_sigmoid(R)) - np.mean(log_sigmoid(-F)), -np.mean(log_sigmoid(F))),
    "hinge": (np.mean(np.maximum(0, 1 - R)) + np.mean(np.maximum(0, 1 + F)), -np.mean(F)),
    "wasserstein": (np.mean(F) - np.mean(R), -np.mean(F)),
    "least_squares": (0.5 * np.mean((R - 1) ** 2) + 0.5 * np.mean(F ** 2), 0.5 * np.mean((F - 1) ** 2)),
    "rsgan": (-np.mean(log_sigmoid(R - F)), -np.mean(log_sigmoid(F - R))),
    "rpgan": (-np.mean(log_sigmoid(R - F)), -np.mean(log_sigmoid(F - R))),
    "rasgan": (-np.mean(log_sigmoid(R - F.mean())) - np.mean(log_sigmoid(-(F - R.mean()))),
               -np.mean(log_sigmoid(F - R.mean())) - np.mean(log_sigmoid(-(R - F.mean())))),
    "ralsgan": (np.mean((R - F.mean() - 1) ** 2) + np.mean((F - R.mean() + 1) ** 2),
                np.mean((F - R.mean() - 1) ** 2) + np.mean((R - F.mean() + 1) ** 2)),
    "rahinge": (np.mean(np.maximum(0, 1 - (R - F.mean()))) + np.mean(np.maximum(0, 1 + (F - R.mean()))),
                np.mean(np.maximum(0, 1 - (F - R.mean()))) + np.mean(np.maximum(0, 1 + (R - F.mean())))),
}


def test_registry_has_the_whole_family():
  assert set(ALL) <= set(losses.LOSSES.names())


@pytest.mark.parametrize("name", ALL)
def test_against_hand_computation(name):
  loss = _loss(name)
  d_expected, g_expected = EXPECTED[name]
  np.testing.assert_allclose(loss.d(jnp.asarray(R), jnp.asarray(F)), d_expected, rtol=1e-5)
  np.testing.assert_allclose(loss.g(jnp.asarray(R), jnp.asarray(F)), g_expected, rtol=1e-5)
  assert loss.g_uses_real == (name in RELATIVISTIC)


@pytest.mark.parametrize("name", ALL)
def test_gradients_match_finite_differences(name):
  loss = _loss(name)
  rng = np.random.default_rng(1)
  r = rng.uniform(-0.8, 0.8, 6)          # away from the hinge kinks at +-1
  f = rng.uniform(-0.8, 0.8, 6)
  for fn in (loss.d, loss.g):
    g_r, g_f = jax.grad(fn, argnums=(0, 1))(jnp.asarray(r, jnp.float32), jnp.asarray(f, jnp.float32))
    eps = 1e-3
    for which, grad in ((0, g_r), (1, g_f)):
      fd = np.zeros(6)
      for i in range(6):
        plus, minus = [r.copy(), f.copy()], [r.copy(), f.copy()]
        plus[which][i] += eps
        minus[which][i] -= eps
        fd[i] = (float(fn(*map(jnp.asarray, plus))) - float(fn(*map(jnp.asarray, minus)))) / (2 * eps)
      np.testing.assert_allclose(grad, fd, rtol=2e-2, atol=2e-4)


@pytest.mark.parametrize("name", ALL)
def test_directions(name):
  """D's loss falls as real logits rise and fake logits fall; G's falls as fake logits rise.

  Fake logits are drawn above least_squares' fake code a = 0, where its D pulls them down."""
  loss = _loss(name)
  r = jnp.asarray(np.random.default_rng(2).uniform(-0.5, 0.5, 8), jnp.float32)
  f = jnp.asarray(np.random.default_rng(3).uniform(0.05, 0.5, 8), jnp.float32)
  dr, df = jax.grad(loss.d, argnums=(0, 1))(r, f)
  assert float(jnp.sum(dr)) < 0 and float(jnp.sum(df)) > 0
  gf = jax.grad(loss.g, argnums=1)(r, f)
  assert float(jnp.sum(gf)) < 0


def test_rsgan_swapped_inputs_give_the_generator_loss():
  loss = _loss("rsgan")
  np.testing.assert_allclose(loss.d(F, R), loss.g(R, F), rtol=1e-6)


def test_rpgan_is_symmetric_in_its_pairing_and_shift_invariant():
  loss = _loss("rpgan")
  perm = np.array([2, 0, 3, 1])
  np.testing.assert_allclose(loss.d(R[perm], F[perm]), loss.d(R, F), rtol=1e-6)    # same pairs, other order
  np.testing.assert_allclose(loss.d(R + 5.0, F + 5.0), loss.d(R, F), rtol=1e-6)    # only differences count
  np.testing.assert_allclose(loss.g(R, F), loss.d(F, R), rtol=1e-6)
  # At equal logits both players see log 2 (D cannot tell the pair apart).
  np.testing.assert_allclose(loss.d(F, F), np.log(2), rtol=1e-6)


def test_hinge_zero_region():
  loss = _loss("hinge")
  r, f = jnp.array([1.5, 3.0]), jnp.array([-1.2, -4.0])
  assert float(loss.d(r, f)) == 0.0
  dr, df = jax.grad(loss.d, argnums=(0, 1))(r, f)
  assert not np.any(dr) and not np.any(df)


def test_minimax_and_nonsaturating_share_d_and_have_the_same_fixed_point_direction():
  mm, ns = _loss("minimax"), _loss("nonsaturating")
  np.testing.assert_allclose(mm.d(R, F), ns.d(R, F), rtol=1e-6)
  # The saturating G gradient vanishes where D confidently rejects fakes; the NS one does not.
  very_fake = jnp.array([-10.0])
  assert abs(float(jax.grad(mm.g, argnums=1)(R[:1], very_fake)[0])) < 1e-4
  assert abs(float(jax.grad(ns.g, argnums=1)(R[:1], very_fake)[0])) > 0.99


def test_least_squares_abc_coding():
  loss = _loss("least_squares", ls_a=-1.0, ls_b=1.0, ls_c=0.0)
  np.testing.assert_allclose(loss.d(R, F), 0.5 * np.mean((R - 1) ** 2) + 0.5 * np.mean((F + 1) ** 2), rtol=1e-6)
  np.testing.assert_allclose(loss.g(R, F), 0.5 * np.mean(F ** 2), rtol=1e-6)


def test_large_logits_are_stable():
  for name in ALL:
    loss = _loss(name)
    big = jnp.array([80.0, -80.0])
    assert np.isfinite(float(loss.d(big, -big))) and np.isfinite(float(loss.g(big, -big)))


def test_column_logits_and_bfloat16_give_float32_scalars():
  for name in ALL:
    out = _loss(name).d(jnp.asarray(R[:, None], jnp.bfloat16), jnp.asarray(F[:, None], jnp.bfloat16))
    assert out.shape == () and out.dtype == jnp.float32


def test_unknown_loss_lists_choices():
  with pytest.raises(ConfigError, match="valid choices: hinge, least_squares, minimax"):
    losses.LOSSES.get("nope")
