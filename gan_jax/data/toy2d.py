"""2-D Gaussian mixtures: the PacGAN protocol's (Lin et al. 2018, sec. 5.1, after VEEGAN) and the
loss-landscape toys of Sun et al. 2020 ("Towards a Better Global Loss Landscape of GANs").

ring8:       8 modes at (cos 2πi/8, sin 2πi/8), std 0.01.
grid25:      25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.
gauss5:      5 modes at (cos 2πi/5, sin 2πi/5) (the first at (1, 0)), variance 0.002 per axis
             (std 0.0447), equal weights: Sun et al.'s 5-Gaussian toy (their datasets.py, 5 modes).
two_cluster: 2 modes at (1, 0) and (-1, 0), the same variance, equal weights: the same code's
             2-Gaussian case, which their 5-Gaussian script trains when asked for 2 modes.
The training set is `data.num_examples` samples (100k in PacGAN; 10k in Sun et al.) drawn with
`data.seed`: a random mode per sample for PacGAN's mixtures, exactly num_examples / K per mode
(shuffled) for Sun et al.'s, as their loader builds it.

The metrics are the PacGAN ones (gan_jax/metrics/modes.py, 3-std rule on 2500 samples); the Sun et
al. toys add `mode_collapse` (gan_jax/metrics/modes.py: `collapse_statistics`).
"""
from __future__ import annotations

import functools

import numpy as np
from ml_collections import ConfigDict

from gan_jax.data import DATASETS, ArraySource, Dataset
from gan_jax.metrics.modes import collapse_statistics, mode_statistics
from gan_jax.models import DataSpec


def ring_modes(k: int = 8, radius: float = 1.0) -> np.ndarray:
  angles = 2 * np.pi * np.arange(k) / k  # endpoint excluded: k distinct modes
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes(side: int = 5, spacing: float = 2.0) -> np.ndarray:
  axis = spacing * (np.arange(side) - (side - 1) / 2)
  return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)


def sample_mixture(modes: np.ndarray, std: float, n: int, seed: int, balanced: bool = False) -> np.ndarray:
  """n samples of the equal-weight mixture; `balanced`: exactly n // K per mode (n rounded down to a
  multiple of K), in shuffled order, instead of a random mode per sample."""
  rng = np.random.default_rng(seed)
  if balanced:
    idx = rng.permutation(np.repeat(np.arange(len(modes)), n // len(modes)))
  else:
    idx = rng.integers(len(modes), size=n)
  return (modes[idx] + std * rng.standard_normal((len(idx), modes.shape[1]))).astype(np.float32)


def _mixture(modes: np.ndarray, std: float, c: ConfigDict) -> Dataset:
  x = sample_mixture(modes, std, c.num_examples, c.seed)
  return Dataset(ArraySource(x=x), transform=dict, spec=DataSpec("vector", (2,)), modes=modes,
                 mode_std=std, evaluate=functools.partial(mode_statistics, modes=modes, std=std),
                 eval_metrics=("modes_covered", "high_quality_fraction", "reverse_kl"))


@DATASETS.register("ring8")
def ring8(c: ConfigDict) -> Dataset:
  return _mixture(ring_modes(), 0.01, c)


@DATASETS.register("grid25")
def grid25(c: ConfigDict) -> Dataset:
  return _mixture(grid_modes(), 0.05, c)


# Sun et al.'s toys: np.random.multivariate_normal(mode, 0.002 I) per point.
SUN_STD = float(np.sqrt(0.002))


def _sun_mixture(modes: np.ndarray, c: ConfigDict) -> Dataset:
  x = sample_mixture(modes, SUN_STD, c.num_examples, c.seed, balanced=True)

  def evaluate(samples: np.ndarray) -> dict:
    return {**mode_statistics(samples, modes, SUN_STD), **collapse_statistics(samples, modes, SUN_STD)}

  return Dataset(ArraySource(x=x), transform=dict, spec=DataSpec("vector", (2,)), modes=modes, mode_std=SUN_STD,
                 evaluate=evaluate, eval_metrics=("modes_covered", "high_quality_fraction", "reverse_kl",
                                                  "mode_collapse", "min_mode_fraction"))


@DATASETS.register("gauss5")
def gauss5(c: ConfigDict) -> Dataset:
  return _sun_mixture(ring_modes(5), c)


@DATASETS.register("two_cluster")
def two_cluster(c: ConfigDict) -> Dataset:
  return _sun_mixture(ring_modes(2), c)
