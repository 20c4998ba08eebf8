"""Differentiable augmentation of what the discriminator sees (`augment.*` in the config).

  augment.name      "none" (default), "diffaugment" (Zhao et al. 2020, gan_jax/augment/diffaugment.py)
                    or "ada" (Karras et al. 2020, gan_jax/augment/ada.py).
  augment.pipeline  ada: comma-separated groups or official spec strings, each with an optional
                    ":strength" (probability multiplier): blit, geom, color, filter, noise, cutout,
                    bg, bgc, bgcf, bgcfn, bgcfnc; "" = "bgc" (the paper's choice). R3GAN's is
                    "bgc:1,color:0.5,cutout" (a later item overrides an earlier one's strength).
                    diffaugment: policies color, translation, cutout; "" = all three.
  augment.p         the initial (adaptive), fixed, or base (scheduled) probability; unset =
                    0 for ada (ADA starts at 0), 1 for diffaugment (every image, as the paper).
  augment.p_final   set: p follows a cosine from p to p_final over schedule.kimg thousand images
                    and holds (R3GAN's augmentation schedule, gan_jax/schedules.cosine_ramp).
  augment.target    > 0 with ada and no p_final: adaptive p (ADA's heuristic): r_t = E[sign(D(real))]
                    over `interval` D steps, then p <- max(0, p + sign(r_t - target) · B·interval /
                    (kimg·1000)) (stylegan2-ada-pytorch training_loop.py; target 0.6, interval 4,
                    kimg 500 there). 0 or negative: p fixed or scheduled.

The discriminator sees aug(real) and aug(fake) in the D step, aug(fake) (and aug(real) for
relativistic losses) in the G step; gradient penalties differentiate D∘aug with respect to the
un-augmented input (R3GAN's training/loss.py applies the augmentation inside D's input path).
The adaptive p and its accumulators live in the train state's `reg_state` (checkpointed).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from ml_collections import config_dict

from gan_jax.augment import ada as ada_lib
from gan_jax.augment import diffaugment as diffaugment_lib
from gan_jax.blocks import BLOCKS, Block
from gan_jax.errors import ConfigError
from gan_jax.schedules import cosine_ramp

NAMES = ("none", "diffaugment", "ada")
DEFAULT_PIPELINE = {"ada": "bgc", "diffaugment": "color,translation,cutout"}
DEFAULT_P = {"none": 0.0, "ada": 0.0, "diffaugment": 1.0}


class AugmentConfigError(ConfigError):
  """A bad augment.* value: one line naming the valid choices, exit code 2."""


def parse_ada_pipeline(spec: str) -> tuple[tuple[str, float], ...]:
  """"bgc:1,color:0.5,cutout" -> ((transform, strength), ...) for every enabled transform."""
  valid = ", ".join([*ada_lib.GROUPS, *ada_lib.SPECS])
  strength: dict[str, float] = {}
  for item in spec.split(","):
    name, colon, raw = item.strip().partition(":")
    groups = ada_lib.SPECS.get(name, (name,) if name in ada_lib.GROUPS else None)
    if groups is None:
      raise AugmentConfigError(f"unknown augment.pipeline item {name!r} for ada; valid: {valid} (each with an "
                               "optional :strength)")
    try:
      value = float(raw) if colon else 1.0
    except ValueError:
      raise AugmentConfigError(f"augment.pipeline strength {raw!r} of {name!r} is not a number") from None
    if value < 0:
      raise AugmentConfigError(f"augment.pipeline strength of {name!r} must be >= 0, got {value}")
    for g in groups:
      strength.update({t: value for t in ada_lib.GROUPS[g]})
  return tuple((t, strength[t]) for t in ada_lib.TRANSFORMS if strength.get(t, 0) > 0)


def parse_diffaugment_policy(spec: str) -> tuple[str, ...]:
  names = tuple(s.strip() for s in spec.split(","))
  for n in names:
    if n not in diffaugment_lib.POLICIES:
      raise AugmentConfigError(f"unknown augment.pipeline policy {n!r} for diffaugment; valid: "
                               f"{', '.join(diffaugment_lib.POLICIES)}")
  return names


@dataclasses.dataclass(frozen=True)
class Augment:
  """The static augmentation settings of a run (hashable: part of the GAN the step closes over)."""
  name: str = "none"
  ada_strength: tuple[tuple[str, float], ...] = ()      # ada: (transform, strength)
  policy: tuple[str, ...] = ()                          # diffaugment
  p: float = 0.0
  p_final: float | None = None
  target: float = 0.0
  interval: int = 4
  kimg: float = 500.0

  @property
  def enabled(self) -> bool:
    return self.name != "none"

  @property
  def adaptive(self) -> bool:
    return self.name == "ada" and self.target > 0 and self.p_final is None

  def __call__(self, key: jax.Array, images: jax.Array, p: jax.Array | float) -> jax.Array:
    """Augmented images [B, H, W, C] (in [-1, 1]); each image draws its own parameters from `key`."""
    if self.enabled and images.ndim != 4:
      raise AugmentConfigError(f"augment.name={self.name!r} augments images [B, H, W, C], got shape "
                               f"{tuple(images.shape)}; valid: augment.name=none for this data")
    if self.name == "ada":
      return ada_lib.ada_augment(key, images, p, dict(self.ada_strength))
    if self.name == "diffaugment":
      return diffaugment_lib.diffaugment(key, images, p, self.policy)
    return images

  def init_state(self) -> dict:
    """The train-state entries of the adaptive p ({} otherwise, so such states are unchanged)."""
    if not self.adaptive:
      return {}
    return {"aug_p": jnp.asarray(self.p, jnp.float32), "aug_sign_sum": jnp.zeros((), jnp.float32),
            "aug_sign_count": jnp.zeros((), jnp.int32)}

  def probability(self, reg_state: dict, images_seen: jax.Array, schedule_images: float) -> jax.Array:
    """The current p: adaptive (from the state), else cosine_ramp(p, p_final) of the images seen."""
    if self.adaptive:
      return reg_state["aug_p"]
    return cosine_ramp(self.p, self.p_final, schedule_images)(images_seen)

  def update(self, reg_state: dict, real_logits: jax.Array, d_step: jax.Array | int, batch_size: int) -> dict:
    """ADA's heuristic after a D step: accumulate sign(D(real)); on every `interval`-th D step
    move p by sign(r_t - target)·batch·interval/(kimg·1000), floor at 0, and restart the sum."""
    if not self.adaptive:
      return reg_state
    signs = jnp.sign(jax.lax.stop_gradient(real_logits).astype(jnp.float32))
    total = reg_state["aug_sign_sum"] + jnp.sum(signs)
    count = reg_state["aug_sign_count"] + signs.size
    due = (jnp.asarray(d_step) + 1) % self.interval == 0
    r_t = total / jnp.maximum(count, 1).astype(jnp.float32)
    adjust = jnp.sign(r_t - self.target) * (batch_size * self.interval) / (self.kimg * 1000.0)
    p = jnp.where(due, jnp.maximum(reg_state["aug_p"] + adjust, 0.0), reg_state["aug_p"])
    return {**reg_state, "aug_p": p, "aug_sign_sum": jnp.where(due, 0.0, total),
            "aug_sign_count": jnp.where(due, 0, count)}


def make_augment(c, data_kind: str = "image") -> Augment:
  """Augment from the `augment` config block; AugmentConfigError names the valid choices.
  `data_kind`: the dataset's DataSpec.kind; augmentation needs images."""
  if c.name not in NAMES:
    raise AugmentConfigError(f"unknown augment.name {c.name!r}; valid choices: {', '.join(NAMES)}")
  if c.name != "none" and data_kind != "image":
    raise AugmentConfigError(f"augment.name={c.name!r} augments images; this dataset has {data_kind} data; "
                             "valid: augment.name=none")
  p = DEFAULT_P[c.name] if c.p is None else float(c.p)
  for key, value in (("p", p), ("p_final", c.p_final)):
    if value is not None and not 0.0 <= value <= 1.0:
      raise AugmentConfigError(f"augment.{key} must be in [0, 1], got {value}")
  if not (isinstance(c.interval, int) and c.interval >= 1):
    raise AugmentConfigError(f"augment.interval must be an integer >= 1, got {c.interval!r}")
  if not c.kimg > 0:
    raise AugmentConfigError(f"augment.kimg must be > 0, got {c.kimg}")
  if c.target >= 1:
    raise AugmentConfigError(f"augment.target must be < 1 (E[sign(D(real))] is at most 1), got {c.target}")
  if c.name == "ada" and c.target > 0 and c.p_final is not None:
    raise AugmentConfigError("augment.p_final (a scheduled p) and augment.target > 0 (an adaptive p) exclude each "
                             "other; set augment.target=0 to schedule p")
  if c.name == "none":
    return Augment()
  spec = c.pipeline or DEFAULT_PIPELINE[c.name]
  common = dict(name=c.name, p=p, p_final=c.p_final, target=float(c.target), interval=c.interval,
                kimg=float(c.kimg))
  if c.name == "ada":
    return Augment(ada_strength=parse_ada_pipeline(spec), **common)
  return Augment(policy=parse_diffaugment_policy(spec), **common)


def _augment_defaults() -> dict:
  """`augment.*`: name none | diffaugment | ada; pipeline (ada groups "bgc", "bgcfnc", "bgc,cutout:0.5";
  diffaugment "color,translation,cutout"); p (unset: 0 for ada, 1 for diffaugment); p_final: cosine
  schedule over schedule.kimg; target > 0 with ada: adaptive p (ADA), moved every `interval` D steps by
  batch·interval/(kimg·1000)."""
  unset = lambda: config_dict.placeholder(float)  # noqa: E731
  return {"name": "none", "pipeline": "", "p": unset(), "p_final": unset(), "target": 0.6, "interval": 4, "kimg": 500.0}


BLOCKS.register("augment")(Block("augment", _augment_defaults, lambda config: make_augment(config.augment)))
