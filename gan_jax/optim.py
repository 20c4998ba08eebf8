"""Optimizers by name (`optim.g.name`, `optim.d.name`), all from optax.

Hyperparameters are injected (`optax.inject_hyperparams`), so the learning rate and Adam's
beta2 can follow schedules of training progress (`optim.*.lr_final`, `optim.*.b2_final` with
`schedule.kimg`, as in R3GAN) and their current values live in the optimizer state.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from gan_jax.registry import Registry
from gan_jax.schedules import cosine_ramp

# name -> builder(config, lr schedule, b2 schedule); schedules take the update count.
OPTIMIZERS: Registry[Callable[..., optax.GradientTransformation]] = Registry("optimizer")


@OPTIMIZERS.register("adam")
def _adam(c: ConfigDict, lr, b2) -> optax.GradientTransformation:
  return optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=c.b1, b2=b2, eps=c.eps)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(c: ConfigDict, lr, b2) -> optax.GradientTransformation:
  # WGAN (Arjovsky et al. 2017) trains with RMSProp; b2 plays the role of the decay.
  return optax.inject_hyperparams(optax.rmsprop)(learning_rate=lr, decay=b2, eps=c.eps)


@OPTIMIZERS.register("sgd")
def _sgd(c: ConfigDict, lr, b2) -> optax.GradientTransformation:
  del b2
  return optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=c.b1 or None)


def make_optimizer(c: ConfigDict, images_per_update: float = 0.0,
                   schedule_images: float = 0.0) -> optax.GradientTransformation:
  """`images_per_update`: training images per update of this optimizer (to express its
  update count as progress in images); `schedule_images`: duration of the cosine ramps.

  The hyperparameters are always functions of the update count, so the values in the config
  win over those stored in a restored optimizer state (a constant injected value would be
  read back from the checkpoint, silently ignoring a changed `lr` on resume)."""
  lr_sched = cosine_ramp(c.lr, c.get("lr_final"), schedule_images)
  b2_sched = cosine_ramp(c.b2, c.get("b2_final"), schedule_images)
  progress = lambda count: jnp.asarray(count, jnp.float32) * images_per_update  # noqa: E731
  return OPTIMIZERS.get(c.name)(c, lambda n: lr_sched(progress(n)), lambda n: b2_sched(progress(n)))


def current_lr(opt_state) -> jnp.ndarray:
  """The learning rate used by the latest update of an injected-hyperparameter optimizer."""
  return opt_state.hyperparams["learning_rate"]
