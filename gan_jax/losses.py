"""Adversarial losses, found by name (`loss.name`).

Each loss is a pair of pure functions of discriminator logits:

  d(real_logits, fake_logits) -> scalar   the discriminator's loss
  g(real_logits, fake_logits) -> scalar   the generator's loss

`real_logits`, `fake_logits`: [B] or [B, 1] raw D outputs (no sigmoid). Losses whose G term
does not use real data say so (`g_uses_real=False`) so the G step skips D(real).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class AdversarialLoss:
  d: LossFn
  g: LossFn
  g_uses_real: bool


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _f32(x: jax.Array) -> jax.Array:
  # Losses are computed in float32 whatever the network's compute dtype.
  return jnp.asarray(x, jnp.float32)


def nonsaturating_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Goodfellow et al. 2014, eq. 1: -log D(x) - log(1 - D(G(z))) = softplus(-r) + softplus(f)."""
  return jnp.mean(jax.nn.softplus(-_f32(real_logits))) + jnp.mean(jax.nn.softplus(_f32(fake_logits)))


def nonsaturating_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Goodfellow et al. 2014, sec. 3 (the -log D(G(z)) trick): softplus(-f)."""
  del real_logits
  return jnp.mean(jax.nn.softplus(-_f32(fake_logits)))


def hinge_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Lim & Ye 2017; Miyato et al. 2018, eq. 16: E[relu(1 - r)] + E[relu(1 + f)]."""
  return jnp.mean(jax.nn.relu(1.0 - _f32(real_logits))) + jnp.mean(jax.nn.relu(1.0 + _f32(fake_logits)))


def hinge_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Lim & Ye 2017; Miyato et al. 2018, eq. 17: -E[f]."""
  del real_logits
  return -jnp.mean(_f32(fake_logits))


LOSSES.register("nonsaturating")(AdversarialLoss(nonsaturating_d, nonsaturating_g, g_uses_real=False))
LOSSES.register("hinge")(AdversarialLoss(hinge_d, hinge_g, g_uses_real=False))
