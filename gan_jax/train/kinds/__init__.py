"""Training kinds: what a train step is, behind one small protocol the trainer talks to.

A kind is one module of this package (every module here is imported, so adding a kind is adding a
file) that registers a `Kind` in `KINDS` under the name its models give as `ModelEntry.kind`
(gan_jax/models). Kinds today: "gan" (G(z) against D, gan.py), "progressive" (ProGAN's growing
networks, progressive.py), "translation" (CycleGAN's two domains, translation.py) and "text2image"
(StackGAN's conditioning augmentation and stages, text2image.py).

`Kind.build(config, spec)` returns the run's trainer: a frozen dataclass (hashable: jit closes over
it) deriving from `Trainer`, whose defaults describe a kind with one phase. What the loop, the
samplers, the benchmark and the scripts use of it:

  init(key, data_shape) -> state     a fresh train state: a flax struct with step, g_params, g_vars,
                                      d_params, d_vars, g_opt, d_opt, reg_state (and more of its own)
  num_classes, batches_per_step       labels the samplers cycle through (0: none); real batches a step reads
  phase_at(done) -> phase             the phase of the step after `done` steps (ProGAN: the resolution
                                      level; 0 otherwise); each phase is compiled once
  step_for(phase)                     the pure step (state, batch, key) -> (state, metrics) of a phase
  batch_layout(phase), data_batch     a phase's batch is [*batch_layout, data_batch, ...] examples of the
                                      pipeline, split over devices along the data_batch axis
  data_position(done)                 pipeline batches read before `done` steps (resuming on another
                                      number of processes)
  check_devices(n_devices, n_processes)   ConfigError when the batches do not split
  warm_start(state, load)             a fresh run's start from another run (StackGAN's Stage II from its
                                      Stage I): `load(workdir)` is the loop's, returning that run's newest
                                      state; no kind reads a workdir itself
  sampler(mesh, chunk, truncation)    sample(params, g_vars, key, n, labels) -> np.ndarray, or None for
                                      kinds that do not generate from latents
  grid(mesh, ds, n, truncation)       grid(state, key) -> (images, columns) for DIR/samples, or None
  generator_params(state)             the weights samples come from (the EMA generator where there is one)

`Kind.blocks` names the config blocks (gan_jax/blocks.py: "reg", "ema", "augment", ...) that its
configs carry beside the keys every run has (gan_jax/config.py `base_config`); `Kind.honours` lists
which of those base keys it reads beyond `CORE`, as dotted names or fnmatch patterns. `validate`
refuses a non-default value of any other base key with exit 2, naming the key and the kind, and an
override of a block's key that the kind has not says the same: a setting is never silently ignored. The shared step
machinery (optimizer updates, accumulation, EMA, NaN skip, bf16, the FSDP gather) is
gan_jax/train/machinery.py.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import math
import pkgutil
from typing import Any, Callable

import numpy as np
from ml_collections import ConfigDict

from gan_jax.blocks import BLOCKS, owner
from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec
from gan_jax.registry import Registry
from gan_jax.sampling import class_grid, make_sampler

# Keys every kind honours: the run's bookkeeping, data, model, optimizers and sharding.
CORE = ("seed", "total_steps", "batch_size", "log_every", "ckpt_every", "ckpt.*", "sample_every", "sample.num",
        "profile_steps", "sharding.*", "data.*", "model.*", "loss.name", "eval.every", "eval.num_samples",
        "eval.batch_size", "eval.best", "wandb.*",
        *(f"optim.{w}.{k}" for w in ("g", "d") for k in ("name", "lr", "b1", "b2", "eps", "clip_norm")))


@dataclasses.dataclass(frozen=True)
class Kind:
  build: Callable[[ConfigDict, DataSpec], Any]   # (config, spec) -> the run's Trainer
  blocks: tuple[str, ...] = ()                    # the config blocks (gan_jax/blocks.py) its configs have
  honours: tuple[str, ...] = ("*",)               # keys of the base config beyond CORE that it reads


KINDS: Registry[Kind] = Registry("training kind")


class Trainer:
  """The defaults of the protocol (see the module docstring): one phase whose batch is
  [batches_per_step, batch_size, ...]; samples drawn from latents by `latents` and `generate`."""

  batches_per_step: int = 1
  num_classes: int = 0

  def phase_at(self, done: int) -> int:
    del done
    return 0

  def step_for(self, phase: int) -> Callable:
    del phase
    return self.step

  def batch_layout(self, phase: int) -> tuple[int, ...]:
    del phase
    return (self.batches_per_step,)

  @property
  def data_batch(self) -> int:
    return self.batch_size

  def data_position(self, done: int) -> int:
    return done * math.prod(self.batch_layout(self.phase_at(0)))

  def images_per_step(self, phase: int) -> int:
    return self.data_batch * math.prod(self.batch_layout(phase))

  def check_devices(self, n_devices: int, n_processes: int) -> None:
    check_split(self.data_batch, n_devices, n_processes)

  def warm_start(self, state: Any, load: Callable[[str], Any]) -> Any:
    del load
    return state

  def generator_params(self, state: Any) -> Any:
    ema = getattr(state, "ema_params", None)
    return ema if ema is not None else state.g_params

  def sampler(self, mesh, chunk: int, truncation: float = 1.0) -> Callable[..., np.ndarray] | None:
    return make_sampler(self, mesh, chunk, truncation)

  def grid(self, mesh, ds, n: int, truncation: float = 1.0) -> Callable[[Any, Any], tuple[np.ndarray, int]] | None:
    """Fixed latents (one row per class for conditional models) from the generator's weights."""
    sample = self.sampler(mesh, n, truncation)
    labels, ncol = class_grid(n, self.num_classes) if self.num_classes else (None, None)
    count = n if labels is None else len(labels)
    return lambda state, key: (sample(self.generator_params(state), state.g_vars, key, count, labels), ncol)


def check_split(batch: int, n_devices: int, n_processes: int, accum: int = 1) -> None:
  """ConfigError unless `batch` (and its micro-batches of batch/accum) splits over the devices and processes."""
  if batch % n_devices:
    raise ConfigError(f"batch_size={batch} is not divisible by the {n_devices} devices; use a multiple of {n_devices}")
  if batch % n_processes:
    raise ConfigError(f"batch_size={batch} is not divisible by the {n_processes} processes")
  if (batch // accum) % n_devices:
    raise ConfigError(f"the micro-batch batch_size/grad_accum={batch // accum} is not divisible by "
                      f"the {n_devices} devices; use a batch_size that is a multiple of grad_accum·{n_devices}")


def check_honoured(model: str, flat: dict, flat_defaults: dict) -> None:
  """ConfigError for the first key of the flattened config `flat` that the kind of `model` does not
  read: a key of its base config (`flat_defaults`, the base config of the same model) with another
  value, unless the kind honours it; a key of a block its configs do not have; any other unknown key."""
  name = MODELS.get(model).kind
  kind = KINDS.get(name)
  patterns = CORE + kind.honours + tuple(k for b in kind.blocks for k in BLOCKS.get(b).keys())
  for key, value in flat.items():
    if key not in flat_defaults:
      if owner(key) is not None:
        raise ConfigError(f"{key}={value!r} is not used by training kind {name!r} (model {model!r}): its config "
                          f"has no {owner(key)!r} block")
      raise ConfigError(f"unknown config key {key!r} (model {model!r}); see gan_jax/config.py base_config and "
                        "the model's keys")
    if value != flat_defaults[key] and not any(fnmatch.fnmatchcase(key, p) for p in patterns):
      raise ConfigError(f"{key}={value!r} is not used by training kind {name!r} (model {model!r}); "
                        f"leave it at {flat_defaults[key]!r}")


def build_trainer(config: ConfigDict, spec: DataSpec) -> Trainer:
  """The trainer of `config` for data of `spec`, built by its model's kind."""
  return KINDS.get(MODELS.get(config.model.name).kind).build(config, spec)


def _import_kinds() -> None:
  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_"):
      importlib.import_module(f"{__name__}.{info.name}")


_import_kinds()
