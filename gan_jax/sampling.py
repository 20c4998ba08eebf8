"""Drawing samples from a generator: fixed-latent grids, evaluation sets, sample.py.

Samples are generated in chunks of a fixed size with the generator in training mode (as in the
DCGAN reference code): normalization layers use the statistics of the chunk itself, so a
chunk's output depends only on its latents and the weights, never on running averages that lag
the (EMA) weights.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import numpy as np

from gan_jax.parallel import replicated
from gan_jax.train.step import GAN


def make_sampler(gan: GAN, mesh: jax.sharding.Mesh, chunk: int) -> Callable[[Any, dict, jax.Array, int], np.ndarray]:
  """Returns sample(params, g_vars, key, n) -> np.ndarray [n, ...]; chunk i uses fold_in(key, i)."""

  @functools.partial(jax.jit, out_shardings=replicated(mesh))
  def one_chunk(params, g_vars, key, i):
    z = gan.latents(jax.random.fold_in(key, i), chunk)
    return gan.generate(params, g_vars, z, train=True)[0]

  def sample(params, g_vars, key, n: int) -> np.ndarray:
    parts = [np.asarray(one_chunk(params, g_vars, key, i)) for i in range(math.ceil(n / chunk))]
    return np.concatenate(parts)[:n]

  return sample


def generator_params(state) -> Any:
  """The weights samples are drawn from: the EMA generator where there is one."""
  return state.ema_params if state.ema_params is not None else state.g_params
