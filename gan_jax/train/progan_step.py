"""Progressive growing (Karras et al. 2018): the growth schedule and one train step per resolution.

The schedule is the official `train.TrainingSchedule` (tkarras/progressive_growing_of_gans): training
starts at `lod_initial_resolution`; each resolution is trained for `lod_training_kimg` thousand real
images, then the next one is faded in over `lod_transition_kimg` thousand images, up to the data's
resolution, which is kept until the end. Progress is counted in real images shown to D (the official
`cur_nimg`), and the global minibatch depends on the resolution being trained (`minibatch_dict`; a
fade-in uses the new resolution's), as do the learning rates (`lrate_dict`).

Here everything is a function of the step count: the table of phases (first step, batch, level,
fading) is computed once from the config by accumulating images exactly as the official loop does
(a phase ends at the first step whose image count reaches its boundary), so the lod of step s and
the number of images before it follow from s alone. The train state is the ordinary one
(gan_jax/train/state.py) holding the parameters of every resolution from the start; the lod lives
in G's and D's "growth" collection (see gan_jax/models/progan.py) and is set from the step inside
the step. A resumed run therefore continues exactly, mid-stage or across a stage boundary.

Each resolution level r has its own compiled step (`ProGAN.step_for(r)`): the networks pruned to the
blocks up to 2^r (`level=r`), the reals box-downsampled to 2^r and, during the fade-in, blended with
their 2x-downsampled copy by the same t as the networks (official `process_reals`: FadeLOD), then
nearest-upsampled to the data's resolution (the networks' interface is always full resolution). The
adversarial loss, penalties, EMA, n_critic, accumulation and nan_policy are the generic step's
(gan_jax/train/step.py); the paper's recipe is loss `wasserstein` + `reg.wgan_gp=10` + `reg.drift=0.001`,
Adam (0, 0.99, 1e-8) at 0.001, `ema.decay=0.999`. As `reset_opt_for_new_lod` in the official loop,
both Adam states are re-initialized when a fade-in or a stabilization phase begins.

Data: the pipeline reads "units" of the gcd of all the stage batches; a step of a stage with batch
b reads b / unit of them. The loop lays them out as [batches_per_step, units, unit, ...] with the
unit axis split over devices (each process holds its rows of every unit, as for any global batch),
and the step merges the two axes, so 1 and N devices, and 1 and N processes, see the same batch.

Not reproduced: the official loop re-reads the schedule every 4 minibatches (`minibatch_repeats`;
here at every step), and its G EMA is taken after the D update and before the G update (here after
both, as for every model of the trainer).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from functools import reduce
from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models.progan import blend, downscale, upscale
from gan_jax.optim import make_optimizer
from gan_jax.train.state import TrainState
from gan_jax.train.step import GAN, train_step

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


def with_lod(state: TrainState, lod: jax.Array) -> TrainState:
  """The state with G's and D's lod variable set (their "growth" collections)."""
  return state.replace(g_vars={**state.g_vars, "growth": {"lod": lod}},
                       d_vars={**state.d_vars, "growth": {"lod": lod}})


def prepare_reals(x: jax.Array, lod: jax.Array, top: int, level: int) -> jax.Array:
  """Reals [N, R, R, C] as the stage at 2^level sees them (official `process_reals`): the dataset's
  2^level copy (box filter), blended during a fade-in with its 2x-downsampled copy by
  t = lod - (top - level) (FadeLOD), nearest-upsampled back to R (UpscaleLOD)."""
  low = downscale(x, 2 ** (top - level))
  if level > 2:
    low = blend(low, upscale(downscale(low, 2), 2), jnp.clip(lod - (top - level), 0.0, 1.0))
  return upscale(low, 2 ** (top - level))


@dataclasses.dataclass(frozen=True)
class ProGAN(GAN):
  """A GAN whose networks grow (gan_jax/models/progan.py): the generic GAN's fields for the full
  network (sampling and evaluation use the lod kept in the state), plus the growth schedule and the
  per-level optimizers. The trainer's interface: `init`, `step_for(level)`, `level_at(done)`,
  `units(level)`, `units_before(done)`, `unit_batch`, `batch_sizes`."""
  growth: Growth | None = None
  txs: tuple = ()                # ((level, g_tx, d_tx), ...): each level's optimizers (lrate_dict)
  reset_opt: bool = True
  mirror: bool = False

  def init(self, key: jax.Array, data_shape: tuple) -> TrainState:
    state = super().init(key, data_shape)
    return with_lod(state, self.growth.lod(state.step))

  def images(self, step: jax.Array) -> jax.Array:
    return self.growth.images_traced(step)

  # ---- host side
  @property
  def batch_sizes(self) -> list[int]:
    return sorted({self.growth.batch_of(lv) for lv in self.growth.levels()})

  @property
  def unit_batch(self) -> int:
    return reduce(math.gcd, self.batch_sizes)

  def level_at(self, done: int) -> int:
    return self.growth.level_at(done)

  def units(self, level: int) -> int:
    return self.growth.batch_of(level) // self.unit_batch

  def units_before(self, done: int) -> int:
    """Unit batches read before `done` steps (per real-batch row of a step)."""
    return self.growth.images_before(done) // (self.unit_batch * self.growth.images_per_step_factor)

  # ---- the compiled step of one level
  def stage(self, level: int) -> GAN:
    """The generic GAN of the stage at 2^level: pruned networks, its batch and optimizers."""
    g_tx, d_tx = next((g, d) for lv, g, d in self.txs if lv == level)
    return dataclasses.replace(self, generator=self.generator.clone(level=level),
                               discriminator=self.discriminator.clone(level=level), g_tx=g_tx, d_tx=d_tx,
                               batch_size=self.growth.batch_of(level))

  def step_for(self, level: int):
    """The pure step `(state, batch, key) -> (state, metrics)` of the stage at 2^level; batch["x"]
    is [batches_per_step, units, unit, R, R, C] (see the module docstring)."""
    gan, top = self.stage(level), self.growth.top
    starts = self.growth.phase_starts(level)

    def step(state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, Any]:
      lod = self.growth.lod(state.step)
      state = with_lod(state, lod)
      if self.reset_opt:   # official reset_opt_for_new_lod: fresh Adam moments when a phase begins
        begins = jnp.any(jnp.asarray(starts, jnp.int32) == state.step)
        fresh = lambda tx, params, old: jax.tree.map(  # noqa: E731
            lambda a, b: jnp.where(begins, a, b), tx.init(params), old)
        state = state.replace(g_opt=fresh(gan.g_tx, state.g_params, state.g_opt),
                              d_opt=fresh(gan.d_tx, state.d_params, state.d_opt))
      batch = {k: v.reshape(v.shape[0], v.shape[1] * v.shape[2], *v.shape[3:]) for k, v in batch.items()}
      x = batch["x"]
      if self.mirror:   # official mirror_augment: each real flipped left-right with probability 1/2
        flip = jax.random.bernoulli(jax.random.fold_in(jax.random.fold_in(key, state.step), 77), 0.5, x.shape[:2])
        x = jnp.where(flip[:, :, None, None, None], x[:, :, :, ::-1], x)
      reals = prepare_reals(x.reshape(-1, *x.shape[2:]), lod, top, level).reshape(x.shape)
      state, metrics = train_step(gan, state, {**batch, "x": reals}, key)
      state = with_lod(state, self.growth.lod(state.step))
      return state, {**metrics, "lod": lod}

    return step


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


def build_progan(config: ConfigDict, gan: GAN) -> ProGAN:
  """The ProGAN of `config` around the generic GAN built from it (loss, penalties, EMA, ...)."""
  top = int(math.log2(gan.generator.resolution))
  start, batches, lrs = growth_settings(config, top)
  if config.get("grad_accum", 1) > 1 and any(b % config.grad_accum for b in batches.values()):
    raise ConfigError(f"every stage batch ({sorted(set(batches.values()))}) must be divisible by grad_accum")
  schedule_images = config.schedule.kimg * 1000.0
  txs = []
  for lv in range(start, top + 1):
    opts = []
    for who, images in (("g", batches[lv]), ("d", batches[lv] / config.n_critic)):
      c = ConfigDict(config.optim[who].to_dict())
      c.lr = lrs.get(2 ** lv, c.lr)
      opts.append(make_optimizer(c, images, schedule_images))
    txs.append((lv, *opts))
  fields = {f.name: getattr(gan, f.name) for f in dataclasses.fields(GAN)}
  # The full network's optimizers (those of the data's resolution) initialize the state.
  fields.update(g_tx=txs[-1][1], d_tx=txs[-1][2])
  return ProGAN(**fields, growth=growth_of(config, top), txs=tuple(txs), reset_opt=config.model.reset_opt_for_new_lod,
                mirror=config.model.mirror_augment)


def check_batches(gan: ProGAN, n_devices: int, n_processes: int) -> None:
  """Every stage's batch splits over the devices and the data unit over the processes."""
  for b in gan.batch_sizes:
    if b % n_devices:
      raise ConfigError(f"the stage batch {b} (batch_size / model.minibatch_dict) is not divisible by the "
                        f"{n_devices} devices; use multiples of {n_devices}")
  if gan.unit_batch % n_processes:
    raise ConfigError(f"the stage batches' greatest common divisor {gan.unit_batch} is not divisible by the "
                      f"{n_processes} processes")

