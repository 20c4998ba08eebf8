"""2-D Gaussian mixtures of the PacGAN protocol (Lin et al. 2018, sec. 5.1, after VEEGAN).

ring8:  8 modes at (cos 2πi/8, sin 2πi/8), std 0.01.
grid25: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.
The training set is `data.num_examples` samples (100k in the paper) drawn with `data.seed`.
"""
from __future__ import annotations

import functools

import numpy as np
from ml_collections import ConfigDict

from gan_jax.data import DATASETS, ArraySource, Dataset
from gan_jax.metrics.modes import mode_statistics
from gan_jax.models import DataSpec


def ring_modes(k: int = 8, radius: float = 1.0) -> np.ndarray:
  angles = 2 * np.pi * np.arange(k) / k  # endpoint excluded: k distinct modes
  return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_modes(side: int = 5, spacing: float = 2.0) -> np.ndarray:
  axis = spacing * (np.arange(side) - (side - 1) / 2)
  return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)


def sample_mixture(modes: np.ndarray, std: float, n: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  idx = rng.integers(len(modes), size=n)
  return (modes[idx] + std * rng.standard_normal((n, modes.shape[1]))).astype(np.float32)


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
