"""Mode coverage on Gaussian mixtures: the VEEGAN/PacGAN protocol (Srivastava et al. 2017,
sec. 5.1; Lin et al. 2018, sec. 5.1).

A sample is high quality when its distance to the nearest mode is below 3 standard deviations;
a mode is covered when it is the nearest mode of at least one high-quality sample. The papers
draw 2500 samples. `reverse_kl` is KL(p_gen || uniform) of the mode histogram of the
high-quality samples (PacGAN Table 1), reported only when there is at least one.

`collapse_statistics` asks the question of Sun et al. 2020 (mode collapse as a bad basin of the
loss): does the generator put a real share of its mass on every mode? A mode covered by a few
stray samples is still collapsed in their sense, so it counts the high-quality samples per mode.
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


# A mode holding less than this fraction of its equal share of the samples is missed (for 5 modes
# and 2500 samples: fewer than 50 of the 500 a perfect generator puts there).
COLLAPSE_SHARE = 0.1


def collapse_statistics(samples: np.ndarray, modes: np.ndarray, std: float, threshold: float = 3.0,
                        share: float = COLLAPSE_SHARE) -> dict[str, float]:
  """`min_mode_fraction`: the smallest share of the samples within `threshold` std of a mode,
  over modes, relative to the equal share 1/K (1 for a perfect generator, 0 when a mode is empty);
  `mode_collapse`: 1.0 when that is below `share` (some mode gets under a tenth of its share),
  else 0.0, so its mean over seeds is the collapse rate."""
  samples = np.asarray(samples, np.float64)
  modes = np.asarray(modes, np.float64)
  dist = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=-1)   # [N, K]
  near = dist < threshold * std
  fraction = float(near.sum(axis=0).min() / len(samples) * len(modes))
  return {"min_mode_fraction": fraction, "mode_collapse": float(fraction < share)}
