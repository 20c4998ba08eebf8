"""Drawing samples from a generator: fixed-latent grids, evaluation sets, sample.py.

Samples are generated in chunks of a fixed size. Generators with BatchNorm run in training mode
(as in the DCGAN reference code): normalization layers use the statistics of the chunk itself,
so a chunk's output depends only on its latents and the weights, never on running averages that
lag the (EMA) weights; their state updates (statistics, spectral-norm vectors) are dropped.
Generators without BatchNorm statistics run in inference mode.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import numpy as np

from gan_jax.parallel import replicated


def make_sampler(gan: Any, mesh: jax.sharding.Mesh, chunk: int, truncation: float = 1.0
                 ) -> Callable[..., np.ndarray]:
  """`gan`: a trainer with `latents`, `generate` and `num_classes` (gan_jax/train/kinds).
  Returns sample(params, g_vars, key, n, labels=None) -> np.ndarray [n, ...]; chunk i uses
  fold_in(key, i). Conditional models draw labels [n] (default: classes in turn, 0, 1, 2, ...).
  `truncation` < 1 applies the architecture's truncation trick."""

  @functools.partial(jax.jit, out_shardings=replicated(mesh))
  def one_chunk(params, g_vars, key, i, y):
    # Weights stored split (sharding.fsdp) are gathered whole, as in the train step.
    params, g_vars = jax.lax.with_sharding_constraint((params, g_vars), replicated(mesh))
    k = jax.random.fold_in(key, i)
    z = gan.latents(k, chunk, truncation)
    # Train mode only for generators with normalization statistics (see the module docstring);
    # others (StyleGAN2, R3GAN) sample in inference mode: no style mixing, no state updates.
    train = "batch_stats" in g_vars
    return gan.generate(params, g_vars, z, y, jax.random.fold_in(k, 1), train=train, truncation=truncation)[0]

  def sample(params, g_vars, key, n: int, labels: np.ndarray | None = None) -> np.ndarray:
    n_chunks = math.ceil(n / chunk)
    if gan.num_classes:
      labels = np.arange(n) % gan.num_classes if labels is None else np.asarray(labels)
      labels = np.resize(labels.astype(np.int32), n_chunks * chunk)   # pad the last chunk by repeating
    part = lambda i: None if labels is None else labels[i * chunk:(i + 1) * chunk]  # noqa: E731
    parts = [np.asarray(one_chunk(params, g_vars, key, i, part(i))) for i in range(n_chunks)]
    return np.concatenate(parts)[:n]

  return sample


def class_grid(n: int, num_classes: int, max_rows: int = 16) -> tuple[np.ndarray, int]:
  """Labels for a grid of about n samples with one row per class (the first `max_rows` classes
  when there are more): returns (labels [rows · per_row], per_row)."""
  rows = min(num_classes, max_rows, n)
  per_row = max(1, n // rows)
  return np.repeat(np.arange(rows, dtype=np.int32), per_row), per_row
