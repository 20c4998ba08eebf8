"""Mode coverage on Gaussian mixtures: the VEEGAN/PacGAN protocol (Srivastava et al. 2017,
sec. 5.1; Lin et al. 2018, sec. 5.1).

A sample is high quality when its distance to the nearest mode is below 3 standard deviations;
a mode is covered when it is the nearest mode of at least one high-quality sample. The papers
draw 2500 samples. `reverse_kl` is KL(p_gen || uniform) of the mode histogram of the
high-quality samples (PacGAN Table 1), reported only when there is at least one.
"""
from __future__ import annotations

import numpy as np


def mode_statistics(samples: np.ndarray, modes: np.ndarray, std: float,
                    threshold: float = 3.0) -> dict[str, float]:
  """samples: [N, D]; modes: [K, D]; std: per-mode standard deviation."""
  samples = np.asarray(samples, np.float64)
  modes = np.asarray(modes, np.float64)
  dist = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=-1)   # [N, K]
  nearest = np.argmin(dist, axis=1)
  high_quality = dist[np.arange(len(samples)), nearest] < threshold * std
  counts = np.bincount(nearest[high_quality], minlength=len(modes))
  out = {"modes_covered": int(np.count_nonzero(counts)),
         "high_quality_fraction": float(np.mean(high_quality))}
  if counts.sum() > 0:
    p = counts[counts > 0] / counts.sum()
    out["reverse_kl"] = float(np.sum(p * np.log(p * len(modes))))
  return out
