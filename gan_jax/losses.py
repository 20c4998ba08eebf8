"""Adversarial losses, found by name (`loss.name`).

Each loss is a pair of pure functions of discriminator logits (raw outputs, no sigmoid):

  d(real_logits, fake_logits) -> scalar   the discriminator's loss (minimized)
  g(real_logits, fake_logits) -> scalar   the generator's loss (minimized)

`real_logits`, `fake_logits`: [B] (or [B, 1]). Relativistic losses compare them: the pairing
ones (rsgan, rpgan) element-wise, so real i is paired with fake i; the average ones (ra*)
against the other batch's mean. Losses whose G term ignores the real logits say so
(`g_uses_real=False`) and the G step skips D(real). Everything is computed in float32.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.registry import Registry

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class AdversarialLoss:
  d: LossFn
  g: LossFn
  g_uses_real: bool


# name -> builder(loss config) -> AdversarialLoss
LOSSES: Registry[Callable[[ConfigDict], AdversarialLoss]] = Registry("loss")


def make_loss(loss_cfg: ConfigDict) -> AdversarialLoss:
  return LOSSES.get(loss_cfg.name)(loss_cfg)


def _f32(x: jax.Array) -> jax.Array:
  return jnp.reshape(jnp.asarray(x, jnp.float32), (-1,))


def _mean(x: jax.Array) -> jax.Array:
  return jnp.mean(x)


def _fixed(d: LossFn, g: LossFn, g_uses_real: bool):
  """Registers a loss without parameters."""
  def build(cfg: ConfigDict | None = None) -> AdversarialLoss:
    del cfg
    return AdversarialLoss(d, g, g_uses_real)
  return build


# ---------------------------------------------------------------------------- standard losses

def nonsaturating_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Goodfellow et al. 2014, eq. 1: -E log D(x) - E log(1 - D(G(z))) = E softplus(-r) + E softplus(f)."""
  return _mean(jax.nn.softplus(-_f32(real_logits))) + _mean(jax.nn.softplus(_f32(fake_logits)))


def nonsaturating_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Goodfellow et al. 2014, sec. 3: G maximizes log D(G(z)), i.e. minimizes E softplus(-f)."""
  del real_logits
  return _mean(jax.nn.softplus(-_f32(fake_logits)))


def minimax_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Goodfellow et al. 2014, eq. 1 (saturating): G minimizes E log(1 - D(G(z))) = -E softplus(f)."""
  del real_logits
  return -_mean(jax.nn.softplus(_f32(fake_logits)))


def hinge_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Lim & Ye 2017; Miyato et al. 2018, eq. 16: E relu(1 - r) + E relu(1 + f)."""
  return _mean(jax.nn.relu(1.0 - _f32(real_logits))) + _mean(jax.nn.relu(1.0 + _f32(fake_logits)))


def hinge_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Lim & Ye 2017; Miyato et al. 2018, eq. 17: -E f."""
  del real_logits
  return -_mean(_f32(fake_logits))


def wasserstein_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Arjovsky et al. 2017, eq. 3 (critic maximizes E r - E f): E f - E r. Needs a Lipschitz
  constraint: reg.clip (the paper's weight clipping) or reg.wgan_gp."""
  return _mean(_f32(fake_logits)) - _mean(_f32(real_logits))


def wasserstein_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """Arjovsky et al. 2017, Algorithm 1: -E f."""
  del real_logits
  return -_mean(_f32(fake_logits))


def least_squares_d(real_logits: jax.Array, fake_logits: jax.Array, a: float = 0.0, b: float = 1.0) -> jax.Array:
  """Mao et al. 2017, eq. 2: ½ E (r - b)² + ½ E (f - a)² (a: fake code, b: real code)."""
  return 0.5 * _mean((_f32(real_logits) - b) ** 2) + 0.5 * _mean((_f32(fake_logits) - a) ** 2)


def least_squares_g(real_logits: jax.Array, fake_logits: jax.Array, c: float = 1.0) -> jax.Array:
  """Mao et al. 2017, eq. 2: ½ E (f - c)² (c: the value G wants D to believe for fakes)."""
  del real_logits
  return 0.5 * _mean((_f32(fake_logits) - c) ** 2)


# ---------------------------------------------------------------------- relativistic losses
# Jolicoeur-Martineau 2018, "The relativistic discriminator: a key element missing from
# standard GAN". D(x) = sigmoid(C(x)) becomes sigmoid(C(x_r) - C(x_f)) (pairing) or
# sigmoid(C(x_r) - E C(x_f)) (average); equations as in the paper (its code halves the
# average losses, which changes only the scale).

def rsgan_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RSGAN, eq. 11: -E log sigmoid(C(x_r) - C(x_f)) = E softplus(-(r - f)), real i paired with fake i."""
  return _mean(jax.nn.softplus(-(_f32(real_logits) - _f32(fake_logits))))


def rsgan_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RSGAN, eq. 12: -E log sigmoid(C(x_f) - C(x_r)) = E softplus(-(f - r))."""
  return _mean(jax.nn.softplus(-(_f32(fake_logits) - _f32(real_logits))))


def rasgan_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RaSGAN, eq. 14: E softplus(-(r - E f)) + E softplus(f - E r)."""
  r, f = _f32(real_logits), _f32(fake_logits)
  return _mean(jax.nn.softplus(-(r - _mean(f)))) + _mean(jax.nn.softplus(f - _mean(r)))


def rasgan_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RaSGAN, eq. 15: E softplus(-(f - E r)) + E softplus(r - E f)."""
  r, f = _f32(real_logits), _f32(fake_logits)
  return _mean(jax.nn.softplus(-(f - _mean(r)))) + _mean(jax.nn.softplus(r - _mean(f)))


def ralsgan_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RaLSGAN, eq. 19: E (r - E f - 1)² + E (f - E r + 1)²."""
  r, f = _f32(real_logits), _f32(fake_logits)
  return _mean((r - _mean(f) - 1.0) ** 2) + _mean((f - _mean(r) + 1.0) ** 2)


def ralsgan_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RaLSGAN, eq. 20: E (f - E r - 1)² + E (r - E f + 1)²."""
  r, f = _f32(real_logits), _f32(fake_logits)
  return _mean((f - _mean(r) - 1.0) ** 2) + _mean((r - _mean(f) + 1.0) ** 2)


def rahinge_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RaHingeGAN, eq. 21: E relu(1 - (r - E f)) + E relu(1 + (f - E r))."""
  r, f = _f32(real_logits), _f32(fake_logits)
  return _mean(jax.nn.relu(1.0 - (r - _mean(f)))) + _mean(jax.nn.relu(1.0 + (f - _mean(r))))


def rahinge_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RaHingeGAN, eq. 22: E relu(1 - (f - E r)) + E relu(1 + (r - E f))."""
  r, f = _f32(real_logits), _f32(fake_logits)
  return _mean(jax.nn.relu(1.0 - (f - _mean(r)))) + _mean(jax.nn.relu(1.0 + (r - _mean(f))))


def rpgan_d(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RpGAN (Huang et al. 2024, R3GAN, eq. 2 with f = softplus(-t)): E softplus(-(r - f)).

  Relativistic pairing with the logistic f is RSGAN's loss; R3GAN pairs reals and fakes
  element-wise within the batch and adds R1 + R2 (reg.r1, reg.r2) to it."""
  return rsgan_d(real_logits, fake_logits)


def rpgan_g(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """RpGAN generator loss: E softplus(-(f - r)) (the same pairing, roles swapped)."""
  return rsgan_g(real_logits, fake_logits)


def _least_squares(cfg: ConfigDict) -> AdversarialLoss:
  a, b, c = cfg.ls_a, cfg.ls_b, cfg.ls_c
  return AdversarialLoss(functools.partial(least_squares_d, a=a, b=b),
                         functools.partial(least_squares_g, c=c), g_uses_real=False)


LOSSES.register("minimax")(_fixed(nonsaturating_d, minimax_g, False))
LOSSES.register("nonsaturating")(_fixed(nonsaturating_d, nonsaturating_g, False))
LOSSES.register("hinge")(_fixed(hinge_d, hinge_g, False))
LOSSES.register("wasserstein")(_fixed(wasserstein_d, wasserstein_g, False))
LOSSES.register("least_squares")(_least_squares)
LOSSES.register("rsgan")(_fixed(rsgan_d, rsgan_g, True))
LOSSES.register("rasgan")(_fixed(rasgan_d, rasgan_g, True))
LOSSES.register("ralsgan")(_fixed(ralsgan_d, ralsgan_g, True))
LOSSES.register("rahinge")(_fixed(rahinge_d, rahinge_g, True))
LOSSES.register("rpgan")(_fixed(rpgan_d, rpgan_g, True))
