"""Optimizers by name (`optim.g.name`, `optim.d.name`), all from optax."""
from __future__ import annotations

from typing import Callable

import optax
from ml_collections import ConfigDict

from gan_jax.registry import Registry

OPTIMIZERS: Registry[Callable[[ConfigDict], optax.GradientTransformation]] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def _adam(c: ConfigDict) -> optax.GradientTransformation:
  return optax.adam(c.lr, b1=c.b1, b2=c.b2, eps=c.eps)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(c: ConfigDict) -> optax.GradientTransformation:
  # WGAN (Arjovsky et al. 2017) trains with RMSProp; b2 plays the role of the decay.
  return optax.rmsprop(c.lr, decay=c.b2, eps=c.eps)


@OPTIMIZERS.register("sgd")
def _sgd(c: ConfigDict) -> optax.GradientTransformation:
  return optax.sgd(c.lr, momentum=c.b1 or None)


def make_optimizer(c: ConfigDict) -> optax.GradientTransformation:
  return OPTIMIZERS.get(c.name)(c)
