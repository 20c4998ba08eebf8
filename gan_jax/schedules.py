"""Hyperparameter schedules as functions of training progress in images.

R3GAN (Huang et al. 2024) anneals the learning rate, Adam's beta2, the R1/R2 weight gamma,
the EMA half-life and the augmentation probability with a cosine from a base value to a final
value over `schedule.kimg` thousand images, then holds the final value.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def cosine_ramp(base: float, final: float | None, duration_images: float) -> Schedule:
  """value(t) = final + (base - final) · ½(1 + cos(π · min(t / duration, 1))); constant `base`
  when `final` is None or the duration is 0."""
  if final is None or duration_images <= 0:
    return lambda images: jnp.asarray(base, jnp.float32)

  def value(images):
    progress = jnp.clip(jnp.asarray(images, jnp.float32) / duration_images, 0.0, 1.0)
    return final + (base - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
  return value
