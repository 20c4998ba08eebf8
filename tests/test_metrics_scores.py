"""FID statistics, KID, IS, precision/recall, density/coverage against hand computations,
closed forms and second methods (numpy only: no network)."""
import importlib
import importlib.util
import os
import warnings

import numpy as np
import pytest
from conftest import ROOT

from gan_jax.metrics.frechet import GaussianAccumulator, frechet_distance, gaussian_stats
from gan_jax.metrics.inception_score import inception_score
from gan_jax.metrics.kid import kernel_inception_distance, mmd2_unbiased
from gan_jax.metrics.prdc import density_coverage, kth_neighbour_radii, precision_recall


def test_streamed_statistics_equal_one_shot_in_float64():
  rng = np.random.default_rng(0)
  f = (rng.standard_normal((1003, 16)) * rng.uniform(0.1, 3, 16) + 1e3).astype(np.float32)  # large offset
  acc = GaussianAccumulator()
  for lo in range(0, len(f), 97):             # uneven batches, the last one short
    acc.update(f[lo:lo + 97])
  mu, sigma = acc.stats()
  mu_ref, sigma_ref = gaussian_stats(f)
  np.testing.assert_allclose(mu, mu_ref, rtol=1e-13)
  np.testing.assert_allclose(sigma, sigma_ref, rtol=1e-9, atol=1e-12)
  assert mu.dtype == sigma.dtype == np.float64 and acc.n == len(f)
  _, biased = acc.stats(ddof=0)                  # StyleGAN2-ADA's 1/N convention
  np.testing.assert_allclose(biased, sigma_ref * (len(f) - 1) / len(f), rtol=1e-9)
  with pytest.raises(ValueError, match="more than 1"):
    GaussianAccumulator().stats()


def test_frechet_sqrtm_and_eigenvalue_methods_agree():
  rng = np.random.default_rng(1)
  a, b = rng.standard_normal((400, 64)), rng.standard_normal((400, 64)) @ rng.standard_normal((64, 64)) * 0.3 + 0.2
  s1, s2 = gaussian_stats(a), gaussian_stats(b)
  d_sqrtm = frechet_distance(*s1, *s2)
  d_eig = frechet_distance(*s1, *s2, method="eigvals")
  assert d_sqrtm > 1.0
  np.testing.assert_allclose(d_eig, d_sqrtm, rtol=1e-9)
  # Closed form for commuting (diagonal) covariances, both methods.
  m1, m2, v1, v2 = rng.normal(size=5), rng.normal(size=5), rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
  ref = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
  for method in ("sqrtm", "eigvals"):
    np.testing.assert_allclose(frechet_distance(m1, np.diag(v1), m2, np.diag(v2), method=method), ref, rtol=1e-10)
  with pytest.raises(ValueError, match="method"):
    frechet_distance(m1, np.diag(v1), m2, np.diag(v2), method="svd")


def _kid_direct(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD² with k(a, b) = (a·b / d + 1)³ by explicit double loops over index pairs."""
  m, d = len(x), x.shape[1]
  k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return xx + yy - 2 * xy


def test_kid_matches_an_explicit_kernel_computation():
  rng = np.random.default_rng(2)
  x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.5
  np.testing.assert_allclose(mmd2_unbiased(x, y), _kid_direct(x, y), rtol=1e-12)
  # Subsets: m = min(n_gen, n_real, subset_size); every subset is one unbiased estimate.
  gen, real = rng.standard_normal((30, 5)) + 0.3, rng.standard_normal((25, 5))
  out = kernel_inception_distance(gen, real, num_subsets=7, subset_size=10, seed=3)
  sel = np.random.default_rng(3)
  vals = [_kid_direct(gen[sel.choice(30, 10, replace=False)], real[sel.choice(25, 10, replace=False)])
          for _ in range(7)]
  assert out["kid_subset_size"] == 10 and out["kid_subsets"] == 7
  np.testing.assert_allclose(out["kid"], np.mean(vals), rtol=1e-10)
  np.testing.assert_allclose(out["kid_std"], np.std(vals), rtol=1e-8)
  # Full subsets of the same set: the estimate is unbiased, so ~0 and possibly negative; shifted set: > 0.
  same = rng.standard_normal((400, 8))
  other = rng.standard_normal((400, 8))
  assert abs(kernel_inception_distance(same, other, num_subsets=5, subset_size=400)["kid"]) < 0.05
  assert kernel_inception_distance(same + 1.0, other, num_subsets=5, subset_size=400)["kid"] > 1.0


def test_inception_score_on_constructed_predictions():
  k = 10
  onehot = np.log(np.eye(k)[np.arange(100) % k] + 1e-30)   # every class equally often, fully confident
  assert inception_score(onehot)["is"] == pytest.approx(k, rel=1e-9)
  assert inception_score(np.zeros((50, k)))["is"] == pytest.approx(1.0, rel=1e-12)   # uniform p(y|x)
  const = np.log(np.tile([0.7, 0.2, 0.1], (40, 1)))      # the same prediction everywhere
  assert inception_score(const)["is"] == pytest.approx(1.0, rel=1e-12)
  # Two classes, p(y|x) alternating (a, 1-a) / (1-a, a): p(y) = 1/2 in every split of even size,
  # KL = a log 2a + (1-a) log 2(1-a).
  a = 0.9
  p = np.array([[a, 1 - a], [1 - a, a]] * 50)
  res = inception_score(np.log(p))
  assert res["is"] == pytest.approx(np.exp(a * np.log(2 * a) + (1 - a) * np.log(2 * (1 - a))), rel=1e-12)
  assert res["is_std"] == pytest.approx(0.0, abs=1e-12) and res["is_splits"] == 10
  # Splits are contiguous: split 0 all class 0, the rest mixed -> split 0 scores 1.
  q = np.log(np.eye(2)[np.r_[np.zeros(10, int), np.arange(90) % 2]] + 1e-30)
  per = inception_score(q)
  assert per["is"] == pytest.approx((1 + 9 * 2) / 10, rel=1e-9)
  with pytest.raises(ValueError, match="at least 10"):
    inception_score(np.zeros((5, 3)))


def test_knn_radii_exclude_the_point_itself():
  pts = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
  # Sorted distances from 0: 0 (self), 1, 3, 7 -> k=1: 1, k=2: 3 (squared: 1, 9).
  np.testing.assert_allclose(kth_neighbour_radii(pts, 1), [1, 1, 4, 16])
  np.testing.assert_allclose(kth_neighbour_radii(pts, 2), [9, 4, 9, 36])
  np.testing.assert_allclose(kth_neighbour_radii(pts, 1, block=3), [1, 1, 4, 16])   # blocked rows
  with pytest.raises(ValueError, match="more than 3"):
    kth_neighbour_radii(pts[:3], 3)


def test_precision_recall_density_coverage_by_hand():
  # Real points on a line 0..9 (k=3 radius of each: distance to its 3rd neighbour).
  real = np.arange(10, dtype=np.float32)[:, None]
  radii = np.sqrt(kth_neighbour_radii(real, 3))
  np.testing.assert_allclose(radii, [3, 2, 2, 2, 2, 2, 2, 2, 2, 3])
  # Generated: 0.5 (inside), 11.9 (inside ball of 9: r=3), 12.5 (outside), 40, 41, 42, 43 (outside).
  gen = np.array([0.5, 11.9, 12.5, 40, 41, 42, 43], np.float32)[:, None]
  pr = precision_recall(real, gen, k=3)
  assert pr["precision"] == pytest.approx(2 / 7)
  # Generated radii (k=3): 0.5 -> 40 (39.5), 11.9 -> 41 (29.1), 12.5 -> 41 (28.5), 40..43 -> 3, 2, 2, 3
  # (after 0.5, 11.9, 12.5 only 4 points left in the cluster). Real points within 39.5 of 0.5: all 10.
  assert pr["recall"] == pytest.approx(1.0)
  # Identical sets: precision = recall = 1; far-apart sets: 0 / 0.
  assert precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0, "pr_k": 3}
  far = precision_recall(real, real + 1000.0)
  assert far["precision"] == 0.0 and far["recall"] == 0.0
  # Density / coverage (k=5 radii, strict <): by brute force.
  dc = density_coverage(real, gen, k=5)
  r5 = np.sort(np.abs(real - real.T), axis=1)[:, 5]
  dist = np.abs(real - gen.T)                                        # [real, gen]
  assert dc["density"] == pytest.approx((dist < r5[:, None]).sum() / (5 * len(gen)))
  assert dc["coverage"] == pytest.approx(np.mean(dist.min(axis=1) < r5))
  assert density_coverage(real, real.copy(), k=5)["coverage"] == 1.0
  assert density_coverage(real, real + 1000.0, k=5) == {"density": 0.0, "coverage": 0.0, "dc_k": 5}
  # Blocked computation equals unblocked.
  rng = np.random.default_rng(4)
  a, b = rng.standard_normal((70, 6)), rng.standard_normal((50, 6)) + 0.3
  assert precision_recall(a, b, block=16) == precision_recall(a, b, block=1024)
  assert density_coverage(a, b, block=16) == pytest.approx(density_coverage(a, b, block=1024))


def test_frechet_distance_equals_pytorch_fid_and_kid_equals_the_stylegan2_ada_formula():
  pytest.importorskip("torch", reason="torch is not installed: the pytorch-fid comparison needs it")
  pytest.importorskip("pytorch_fid", reason="pytorch-fid is not installed (pip install pytorch-fid --no-deps)")
  spec = importlib.util.spec_from_file_location("torch_inception",
                                                os.path.join(ROOT, "benchmarks", "torch_inception.py"))
  ti = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(ti)
  ti.import_torchvision_models()       # pytorch_fid.fid_score imports its Inception module
  fid_score = importlib.import_module("pytorch_fid.fid_score")
  rng = np.random.default_rng(5)
  a = rng.standard_normal((300, 32)) * 2 + 1
  b = rng.standard_normal((300, 32)) @ rng.uniform(-0.5, 0.5, (32, 32)) + 1.3
  s1, s2 = gaussian_stats(a), gaussian_stats(b)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)     # pytorch-fid passes sqrtm's deprecated `disp`
    theirs = fid_score.calculate_frechet_distance(*s1, *s2)
  np.testing.assert_allclose(frechet_distance(*s1, *s2), theirs, rtol=1e-10)
  # KID as StyleGAN2-ADA's metrics/kernel_inception_distance.py computes one subset (its loop body).
  x, y = a[:50], b[:50]
  n, m = x.shape[1], 50
  t = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
  s = (x @ y.T / n + 1) ** 3
  ada = ((t.sum() - np.diag(t).sum()) / (m - 1) - s.sum() * 2 / m) / m
  np.testing.assert_allclose(mmd2_unbiased(x, y), ada, rtol=1e-12)
