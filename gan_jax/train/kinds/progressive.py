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
(gan_jax/train/kinds/gan.py); the paper's recipe is loss `wasserstein` + `reg.wgan_gp=10` + `reg.drift=0.001`,
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

import dataclasses
import math
from functools import reduce
from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec
from gan_jax.models.progan import blend, downscale, upscale
from gan_jax.optim import make_optimizer
from gan_jax.schedules import Growth, growth_of, growth_settings
from gan_jax.train.kinds import KINDS, Kind
from gan_jax.train.kinds import gan as gan_kind
from gan_jax.train.kinds.gan import GAN, train_step
from gan_jax.train.state import TrainState


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

  # ---- the trainer protocol (gan_jax/train/kinds): a phase is a resolution level, whose batch is
  # [batches_per_step, units, unit_batch, ...]
  def phase_at(self, done: int) -> int:
    return self.level_at(done)

  def batch_layout(self, level: int) -> tuple[int, ...]:
    return (self.batches_per_step, self.units(level))

  @property
  def data_batch(self) -> int:
    return self.unit_batch

  def data_position(self, done: int) -> int:
    return self.units_before(done) * self.batches_per_step

  def check_devices(self, n_devices: int, n_processes: int) -> None:
    """Every stage's batch splits over the devices and the data unit over the processes."""
    for b in self.batch_sizes:
      if b % n_devices:
        raise ConfigError(f"the stage batch {b} (batch_size / model.minibatch_dict) is not divisible by the "
                          f"{n_devices} devices; use multiples of {n_devices}")
    if self.unit_batch % n_processes:
      raise ConfigError(f"the stage batches' greatest common divisor {self.unit_batch} is not divisible by the "
                        f"{n_processes} processes")

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


def build(config: ConfigDict, spec: DataSpec) -> ProGAN:
  """The ProGAN of `config` around the generic GAN built from it (loss, penalties, EMA, ...)."""
  gan = gan_kind.build(config, spec)
  top = int(math.log2(gan.generator.resolution))
  start, batches, lrs = growth_settings(config, top)
  if config.grad_accum > 1 and any(b % config.grad_accum for b in batches.values()):
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


KINDS.register("progressive")(Kind(build=build, blocks=gan_kind.GAN_BLOCKS))
