"""k-NN precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

Each set's manifold is the union of balls around its points, the radius of a point being the
distance to its k-th nearest neighbour in the same set *excluding itself*: the official code
partitions each row of squared distances (which contains the 0 self-distance) at index k
(kynkaat/improved-precision-and-recall-metric `precision_recall.py`, `ManifoldEstimator`;
StyleGAN2-ADA `kthvalue(k + 1)`), and so does this module.
  precision = fraction of generated points inside the real manifold (distance <= radius),
  recall    = fraction of real points inside the generated manifold; k = 3 (the paper's).
Density and coverage (clovaai/generative-evaluation-prdc `prdc.py`, Naeem et al. sec. 3; k = 5,
the paper's recommendation) use the real manifold only, with strict comparisons:
  density  = (1 / kM) Σ_j Σ_i 1[|Y_j - X_i| < r_i]   (generated Y_j, real X_i with radius r_i),
  coverage = (1 / N) Σ_i 1[min_j |Y_j - X_i| < r_i].
Distances are squared Euclidean from norms and one matmul, clamped at 0, in float32 as the
official code (ordering equals the Euclidean one), computed in row blocks so an N x M distance
matrix never exists at once (memory O(block · M)).
"""
from __future__ import annotations

import numpy as np


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pairwise squared Euclidean distances [len(a), len(b)], clamped at 0."""
  na = (a * a).sum(axis=1)[:, None]
  nb = (b * b).sum(axis=1)[None, :]
  return np.maximum(na - 2.0 * (a @ b.T) + nb, 0.0)


def kth_neighbour_radii(features: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
  """Squared distance of each row to its k-th nearest neighbour in `features`, itself excluded."""
  f = np.asarray(features, np.float32)
  if len(f) <= k:
    raise ValueError(f"k-NN radii with k={k} need more than {k} points, got {len(f)}")
  return np.concatenate([np.partition(sq_distances(f[i:i + block], f), k, axis=1)[:, k]
                         for i in range(0, len(f), block)])


def _fraction_inside(probes: np.ndarray, manifold: np.ndarray, radii: np.ndarray, block: int) -> float:
  inside = [(sq_distances(probes[i:i + block], manifold) <= radii[None, :]).any(axis=1)
            for i in range(0, len(probes), block)]
  return float(np.concatenate(inside).mean())


def precision_recall(real: np.ndarray, gen: np.ndarray, k: int = 3, block: int = 1024) -> dict:
  """{"precision", "recall", "pr_k"} of generated features against real features [n, d]."""
  real, gen = np.asarray(real, np.float32), np.asarray(gen, np.float32)
  precision = _fraction_inside(gen, real, kth_neighbour_radii(real, k, block), block)
  recall = _fraction_inside(real, gen, kth_neighbour_radii(gen, k, block), block)
  return {"precision": precision, "recall": recall, "pr_k": k}


def density_coverage(real: np.ndarray, gen: np.ndarray, k: int = 5, block: int = 1024) -> dict:
  """{"density", "coverage", "dc_k"} of generated features against real features [n, d]."""
  real, gen = np.asarray(real, np.float32), np.asarray(gen, np.float32)
  radii = kth_neighbour_radii(real, k, block)
  count = np.zeros(len(gen))
  covered = []
  for i in range(0, len(real), block):
    inside = sq_distances(real[i:i + block], gen) < radii[i:i + block, None]   # [real block, gen]
    count += inside.sum(axis=0)
    covered.append(inside.any(axis=1))
  return {"density": float(count.mean() / k), "coverage": float(np.concatenate(covered).mean()), "dc_k": k}
