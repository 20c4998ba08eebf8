"""Optimizers by name (`optim.g.name`, `optim.d.name`), all from optax.

Hyperparameters are injected (`optax.inject_hyperparams`), so the learning rate and Adam's
beta2 can follow schedules of training progress (`optim.*.lr_final`, `optim.*.b2_final` with
`schedule.kimg`, as in R3GAN) and their current values live in the optimizer state.
`optim.*.clip_norm` > 0 clips each update's gradients to that global L2 norm first
(`optax.clip_by_global_norm`; PyTorch's `clip_grad_norm_`, as TransGAN's official recipe uses).
"""
from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from gan_jax.registry import Registry
from gan_jax.schedules import cosine_ramp

# name -> builder(config, lr schedule, b2 schedule); schedules take the update count.
OPTIMIZERS: Registry[Callable[..., optax.GradientTransformation]] = Registry("optimizer")


def _injected(factory, c: ConfigDict):
  """`optax.inject_hyperparams(factory)`, with the gradients clipped to `c.clip_norm` (global
  norm) before the update when it is set; the state keeps its `hyperparams` either way."""
  clip = c.clip_norm
  if clip <= 0:
    return optax.inject_hyperparams(factory)

  @functools.wraps(factory)   # inject_hyperparams reads the factory's signature
  def clipped(*args, **kwargs):
    return optax.chain(optax.clip_by_global_norm(clip), factory(*args, **kwargs))
  return optax.inject_hyperparams(clipped)


@OPTIMIZERS.register("adam")
def _adam(c: ConfigDict, lr, b2) -> optax.GradientTransformation:
  return _injected(optax.adam, c)(learning_rate=lr, b1=c.b1, b2=b2, eps=c.eps)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(c: ConfigDict, lr, b2) -> optax.GradientTransformation:
  # WGAN (Arjovsky et al. 2017) trains with RMSProp; b2 plays the role of the decay.
  return _injected(optax.rmsprop, c)(learning_rate=lr, decay=b2, eps=c.eps)


@OPTIMIZERS.register("sgd")
def _sgd(c: ConfigDict, lr, b2) -> optax.GradientTransformation:
  del b2
  return _injected(optax.sgd, c)(learning_rate=lr, momentum=c.b1 or None)


def make_optimizer(c: ConfigDict, images_per_update: float = 0.0,
                   schedule_images: float = 0.0) -> optax.GradientTransformation:
  """`images_per_update`: training images per update of this optimizer (to express its
  update count as progress in images); `schedule_images`: duration of the cosine ramps.

  The hyperparameters are always functions of the update count, so the values in the config
  win over those stored in a restored optimizer state (a constant injected value would be
  read back from the checkpoint, silently ignoring a changed `lr` on resume)."""
  lr_sched = cosine_ramp(c.lr, c.lr_final, schedule_images)
  b2_sched = cosine_ramp(c.b2, c.b2_final, schedule_images)
  progress = lambda count: jnp.asarray(count, jnp.float32) * images_per_update  # noqa: E731
  return OPTIMIZERS.get(c.name)(c, lambda n: lr_sched(progress(n)), lambda n: b2_sched(progress(n)))


def current_lr(opt_state) -> jnp.ndarray:
  """The learning rate used by the latest update of an injected-hyperparameter optimizer."""
  return opt_state.hyperparams["learning_rate"]
