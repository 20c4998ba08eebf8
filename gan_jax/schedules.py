"""Hyperparameter schedules as functions of training progress in images.

R3GAN (Huang et al. 2024) anneals the learning rate, Adam's beta2, the R1/R2 weight gamma,
the EMA half-life and the augmentation probability with a cosine from a base value to a final
value over `schedule.kimg` thousand images, then holds the final value.

ProGAN (Karras et al. 2018) grows its networks by a schedule of images shown: `Growth`, the
table of its phases (see gan_jax/train/kinds/progressive.py), which experiment files also use to
turn the paper's kimg into steps.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.blocks import BLOCKS, Block
from gan_jax.errors import ConfigError

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def _check_schedule(config: ConfigDict) -> None:
  if config.schedule.kimg < 0:
    raise ConfigError(f"schedule.kimg must be >= 0, got {config.schedule.kimg}")


# `schedule.kimg`: the duration of every cosine ramp (each `*_final` key moves its base value to
# the final one over this many thousand images, then holds; unset finals stay constant).
BLOCKS.register("schedule")(Block("schedule", lambda: {"kimg": 0.0}, _check_schedule))


def cosine_ramp(base: float, final: float | None, duration_images: float) -> Schedule:
  """value(t) = final + (base - final) · ½(1 + cos(π · min(t / duration, 1))); constant `base`
  when `final` is None or the duration is 0."""
  if final is None or duration_images <= 0:
    return lambda images: jnp.asarray(base, jnp.float32)

  def value(images):
    progress = jnp.clip(jnp.asarray(images, jnp.float32) / duration_images, 0.0, 1.0)
    return final + (base - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
  return value


# ------------------------------------------------------------------ ProGAN's growth schedule

_FOREVER = 2 ** 31 - 1


@dataclasses.dataclass(frozen=True)
class Growth:
  """The phase table of a run: phase p covers steps [first[p], first[p+1]) at resolution 2^level[p],
  fading it in when fading[p], with batch[p] real images per D step; images[p] were shown before
  it, and a fade-in's alpha is (images - fade_begin[p]) / transition_images. Phases of no steps
  (a boundary overshot by a large batch, or a zero-length fade-in) are left out."""
  top: int                       # log2 of the data's resolution
  first: tuple[int, ...]
  level: tuple[int, ...]
  fading: tuple[bool, ...]
  batch: tuple[int, ...]         # global batch of each phase (per D step)
  images: tuple[int, ...]        # real images shown before the phase (D steps · batch, summed)
  fade_begin: tuple[int, ...]    # image count where the phase's fade-in began (0 when not fading)
  transition_images: float
  images_per_step_factor: int = 1   # D steps per step (n_critic): each reads one batch

  @staticmethod
  def build(top: int, start: int, training_kimg: float, transition_kimg: float, batches: dict[int, int],
            n_critic: int = 1) -> Growth:
    """`batches`: level -> global batch. Simulates the official image count step by step."""
    train_img, trans_img = training_kimg * 1000.0, transition_kimg * 1000.0
    dur = train_img + trans_img
    rows, step, seen = [], 0, 0
    for level in range(start, top + 1):
      per_step = batches[level] * n_critic
      k = level - start
      spans = []
      if level > start:
        spans.append((True, (k - 1) * dur + train_img, k * dur))       # fade into 2^level
      spans.append((False, k * dur, k * dur + train_img if level < top else math.inf))
      for fading, begin, end in spans:
        # As the official lod formula: a fade-in lasts while fewer than `end` images were shown, a
        # stabilization while at most `end` were (at exactly `end` the lod is still the integer).
        if end == math.inf:
          n = _FOREVER
        elif fading:
          n = max(0, math.ceil((end - seen) / per_step))
        else:
          n = math.floor((end - seen) / per_step) + 1 if seen <= end else 0
        if n > 0:
          rows.append((step, level, fading, batches[level], seen, int(begin) if fading else 0))
          if n == _FOREVER:
            break
          step, seen = step + n, seen + n * per_step
    first, level, fading, batch, images, fade_begin = (tuple(col) for col in zip(*rows))
    return Growth(top, first, level, fading, batch, images, fade_begin, trans_img, n_critic)

  # ---- host side (Python ints): which compiled step runs, how much data it reads.
  def phase(self, done: int) -> int:
    """The phase of the step that follows `done` steps."""
    return bisect.bisect_right(self.first, done) - 1

  def level_at(self, done: int) -> int:
    return self.level[self.phase(done)]

  def images_before(self, done: int) -> int:
    p = self.phase(done)
    return self.images[p] + (done - self.first[p]) * self.batch[p] * self.images_per_step_factor

  def lod_at(self, done: int) -> float:
    p = self.phase(done)
    lod = float(self.top - self.level[p])
    if self.fading[p]:
      lod += 1.0 - (self.images_before(done) - self.fade_begin[p]) / self.transition_images
    return lod

  def levels(self) -> list[int]:
    return sorted(set(self.level))

  def batch_of(self, level: int) -> int:
    return self.batch[self.level.index(level)]

  def phase_starts(self, level: int) -> list[int]:
    """First steps of the phases at `level` (its fade-in and its stabilization)."""
    return [f for f, lv in zip(self.first, self.level) if lv == level]

  def steps_for_kimg(self, kimg: float) -> int:
    """Steps until `kimg` thousand real images have been shown (the official total_kimg)."""
    target = kimg * 1000.0
    p = max(0, bisect.bisect_right(self.images, target) - 1)
    per_step = self.batch[p] * self.images_per_step_factor
    return self.first[p] + max(0, math.ceil((target - self.images[p]) / per_step))

  # ---- device side (traced step counts).
  def _phase_values(self, step: jax.Array):
    p = jnp.sum(jnp.asarray(self.first, jnp.int32) <= step) - 1
    pick = lambda col, dtype=jnp.int32: jnp.asarray(col, dtype)[p]  # noqa: E731
    seen = pick(self.images) + (step - pick(self.first)) * pick(self.batch) * self.images_per_step_factor
    return p, pick, seen

  def images_traced(self, step: jax.Array) -> jax.Array:
    """Real images shown before `step` steps, as float32."""
    return self._phase_values(step)[2].astype(jnp.float32)

  def lod(self, step: jax.Array) -> jax.Array:
    """The level of detail (float32) of the step that follows `step` steps (= `lod_at`)."""
    p, pick, seen = self._phase_values(step)
    lod = (self.top - pick(self.level)).astype(jnp.float32)
    if self.transition_images > 0:
      frac = (seen - pick(self.fade_begin)).astype(jnp.float32) / self.transition_images
      lod = lod + jnp.where(pick(self.fading, jnp.bool_), 1.0 - frac, 0.0)
    return lod


def _resolution_dict(text: str, key: str, cast) -> dict[int, Any]:
  """"4:512,8:256" -> {4: 512, 8: 256}; ConfigError naming `key` otherwise."""
  out = {}
  for item in filter(None, (s.strip() for s in str(text).split(","))):
    res, sep, value = item.partition(":")
    try:
      out[int(res)] = cast(value)
    except ValueError:
      raise ConfigError(f"model.{key} must be RES:VALUE pairs separated by commas (e.g. 4:512,8:256), "
                        f"got {text!r}") from None
  return out


def growth_settings(config: ConfigDict, top: int) -> tuple[int, dict[int, int], dict[int, float]]:
  """(log2 of the first resolution, level -> global batch, resolution -> learning rate) of `config`
  for data of resolution 2^top; ConfigError for values out of range."""
  m = config.model
  start_res = m.lod_initial_resolution
  if start_res < 4 or start_res & (start_res - 1) or start_res > 2 ** top:
    raise ConfigError(f"model.lod_initial_resolution must be a power of two in 4..{2 ** top}, got {start_res}")
  if m.lod_training_kimg < 0 or m.lod_transition_kimg < 0:
    raise ConfigError("model.lod_training_kimg and model.lod_transition_kimg must be >= 0")
  sizes = _resolution_dict(m.minibatch_dict, "minibatch_dict", int)
  lrs = _resolution_dict(m.lrate_dict, "lrate_dict", float)
  for name, d in (("minibatch_dict", sizes), ("lrate_dict", lrs)):
    bad = [r for r in d if r not in [2 ** lv for lv in range(2, top + 1)]]
    if bad:
      raise ConfigError(f"model.{name}: {bad[0]} is not a resolution of this network "
                        f"({', '.join(str(2 ** lv) for lv in range(2, top + 1))})")
    if any(v <= 0 for v in d.values()):
      raise ConfigError(f"model.{name} values must be > 0")
  start = int(math.log2(start_res))
  return start, {lv: sizes.get(2 ** lv, config.batch_size) for lv in range(start, top + 1)}, lrs


def growth_of(config: ConfigDict, top: int | None = None) -> Growth:
  """The phase table of `config` (data of resolution 2^top, default data.resolution)."""
  top = int(math.log2(config.data.resolution)) if top is None else top
  start, batches, _ = growth_settings(config, top)
  m = config.model
  return Growth.build(top, start, m.lod_training_kimg, m.lod_transition_kimg, batches, config.n_critic)
