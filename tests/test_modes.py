import numpy as np

from gan_jax.data.toy2d import grid_modes, ring_modes
from gan_jax.metrics.modes import mode_statistics


def test_ring_and_grid_geometry():
  ring = ring_modes()
  assert ring.shape == (8, 2)
  np.testing.assert_allclose(np.linalg.norm(ring, axis=1), 1.0, atol=1e-12)
  assert len({tuple(np.round(m, 6)) for m in ring}) == 8          # no repeated endpoint
  grid = grid_modes()
  assert grid.shape == (25, 2)
  assert sorted(set(grid[:, 0])) == [-4, -2, 0, 2, 4]


def test_samples_on_six_of_eight_modes():
  modes = ring_modes()
  rng = np.random.default_rng(0)
  samples = np.repeat(modes[:6], 100, axis=0) + 0.01 * rng.standard_normal((600, 2)) * 0.5
  out = mode_statistics(samples, modes, std=0.01)
  assert out["modes_covered"] == 6
  assert out["high_quality_fraction"] == 1.0
  # Uniform over 6 of 8 modes: KL(p || U_8) = log(8/6).
  np.testing.assert_allclose(out["reverse_kl"], np.log(8 / 6), rtol=1e-2)


def test_three_std_rule_boundary():
  modes = np.array([[0.0, 0.0], [10.0, 0.0]])
  samples = np.array([[0.029, 0.0], [0.031, 0.0], [5.0, 0.0]])
  out = mode_statistics(samples, modes, std=0.01)
  assert out["modes_covered"] == 1
  np.testing.assert_allclose(out["high_quality_fraction"], 1 / 3)


def test_no_high_quality_samples():
  out = mode_statistics(np.full((10, 2), 0.5), ring_modes(), std=0.01)
  assert out == {"modes_covered": 0, "high_quality_fraction": 0.0}


def test_true_mixture_scores_full_coverage():
  from gan_jax.data.toy2d import sample_mixture
  modes = grid_modes()
  out = mode_statistics(sample_mixture(modes, 0.05, 2500, seed=1), modes, 0.05)
  assert out["modes_covered"] == 25
  assert out["high_quality_fraction"] > 0.98          # P(|N(0, I_2)| < 3) = 1 - e^{-4.5} = 0.989
  assert out["reverse_kl"] < 0.02
