"""Kernel Inception Distance (Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs").

KID is the squared MMD between the Inception pool3 features of generated and real images under
the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³ (MMD-GAN `compute_scores.py`: degree 3,
gamma 1/d, coef0 1), estimated without bias on subsets: for m rows drawn without replacement
from each set,
  MMD²_u = [Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)] / (m(m-1)) - 2 Σ_{i,j} k(x_i, y_j) / m²,
averaged over 100 subsets of m = min(1000, n_gen, n_real) (StyleGAN2-ADA `metrics/kernel_inception_distance.py`,
torch-fidelity and clean-fid defaults). It can be negative when the distributions are close.
Computed in float64.
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  d = x.shape[1]
  return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """The unbiased MMD² estimate between two equal-size sets [m, d] under the cubic kernel."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  m = len(x)
  kxx, kyy = polynomial_kernel(x, x), polynomial_kernel(y, y)
  within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
  return float(within - 2.0 * polynomial_kernel(x, y).sum() / (m * m))


def kernel_inception_distance(gen: np.ndarray, real: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> dict:
  """{"kid": mean over subsets, "kid_std": their standard deviation, "kid_subsets", "kid_subset_size"}."""
  gen, real = np.asarray(gen, np.float64), np.asarray(real, np.float64)
  if gen.ndim != 2 or real.ndim != 2 or gen.shape[1] != real.shape[1]:
    raise ValueError(f"features must be [n, d] with the same d, got {gen.shape} and {real.shape}")
  m = min(len(gen), len(real), subset_size)
  if m < 2:
    raise ValueError(f"KID needs at least 2 rows in each set, got {len(gen)} and {len(real)}")
  rng = np.random.default_rng(seed)
  values = np.array([mmd2_unbiased(gen[rng.choice(len(gen), m, replace=False)],
                                   real[rng.choice(len(real), m, replace=False)]) for _ in range(num_subsets)])
  return {"kid": float(values.mean()), "kid_std": float(values.std()), "kid_subsets": num_subsets,
          "kid_subset_size": m}
