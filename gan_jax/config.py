"""Configuration: the keys every experiment has, string-arg parsing and validation.

An experiment is `experiments/NAME.py` with `get_config(arg)` returning a locked
`ml_collections.ConfigDict` built on `base_config(model)`: the keys every run has, the model's own
(`model.*`, registered with the model) and the config blocks its training kind reads (gan_jax/blocks.py:
`reg.*`, `ema.*`, `augment.*`, ..., each registered with its defaults and checks by the module that
reads it). Everything is validated before anything is built or written: a wrong key, type or name,
or a non-default value of a key the run's kind does not read, raises `ConfigError`, which the
scripts turn into one line on stderr and exit code 2. A run's saved config is read back over the
current defaults (`from_saved`), so no default is written twice.
"""
from __future__ import annotations

import ast
from typing import Any

import ml_collections
from ml_collections import ConfigDict, config_dict

from gan_jax import blocks
from gan_jax.errors import ConfigError  # noqa: F401  (re-exported: gan_jax.config.ConfigError)

WANDB_MODES = ("auto", "online", "offline", "disabled")
NAN_POLICIES = ("stop", "skip")
POPULATION_IMPLS = ("vmap", "unroll")
PRECISIONS = ("float32", "bfloat16")
Z_DISTS = ("normal", "uniform")
FAKE_LABELS = ("uniform", "real")   # model.fake_labels (gan_jax/train/kinds/gan.py)
STATE_UPDATES = ("own", "all")      # model.state_updates (gan_jax/train/kinds/gan.py)



def base_config(model: str = "dcgan") -> ConfigDict:
  """The keys every run has (DESIGN.md contract), with neutral defaults, plus the config blocks
  (gan_jax/blocks.py) that the training kind of `model` reads: `reg.*`, `ema.*`, `augment.*`,
  `schedule.*` and `n_critic` for GANs, the two-domain data keys for image translation, ...

  `model` picks the architecture whose own keys (`model.*`) are filled in.
  """
  from gan_jax import data  # noqa: F401  (registers the data blocks)
  from gan_jax.models import MODELS, model_config
  from gan_jax.train.kinds import KINDS

  c = ConfigDict()
  c.seed = 0
  c.total_steps = 1000          # generator steps
  c.batch_size = 64             # global, per D step
  # Population mode: N members with seeds seed..seed+N-1 trained as one program on the
  # same data; metrics.jsonl then holds per-member lists.
  c.population = 1
  # How the members run inside that program: "vmap" (one batched computation, for accelerators) or
  # "unroll" (each member's own step, side by side: on CPU 2.3-3x faster for convolutional networks,
  # whose vmap-ed convolutions XLA:CPU runs as slow grouped ones; N times the compile time).
  c.population_impl = "vmap"
  c.log_every = 50
  c.ckpt_every = 500
  # A NaN or Inf in a loss, penalty, gradient or parameter: "stop" (exit 1 naming the step range
  # and the quantity; no checkpoint of the diverged state) or "skip" (the step's update is undone
  # inside the step and counted: nonfinite_skipped in metrics.jsonl).
  c.nan_policy = "stop"
  c.sample_every = 500
  # Gradient accumulation: each D and G update averages the gradients of `grad_accum` micro-batches
  # of batch_size / grad_accum (a paper's batch on fewer devices; see gan_jax/train/machinery.py).
  c.grad_accum = 1
  # Compute dtype of G and D: "bfloat16" runs the networks in bf16 with float32 parameters,
  # optimizer states, losses, penalties and normalization statistics (gan_jax/train/machinery.py).
  c.precision = "float32"
  # A profiler trace (TensorBoard/Perfetto, DIR/profile) of steps START:STOP, or N steps after the
  # first (compiling) one; "" = none.
  c.profile_steps = ""
  # Sharding of G, D, EMA and optimizer states over the 'data' mesh axis (batches always split on it):
  # `fsdp` splits every leaf of at least `min_size_mb` MB (as float32) along its largest dimension that
  # divides by the device count; `rules` ("REGEX=DIM,REGEX=none", first match on paths such as
  # g_params/Dense_0/kernel or d_opt/inner_state/0/mu/...) override it leaf by leaf. Checkpoints
  # restore onto any device count (Orbax reshards).
  c.sharding = ConfigDict({"fsdp": False, "min_size_mb": 4.0, "rules": ""})

  # ls_a, ls_b, ls_c: the a-b-c coding of least_squares (Mao et al. 2017): fake, real, G's target.
  c.loss = ConfigDict({"name": "nonsaturating", "ls_a": 0.0, "ls_b": 1.0, "ls_c": 1.0})

  c.model = model_config(model)

  c.data = ConfigDict()
  c.data.name = "digits"
  c.data.split = "train"
  c.data.tfds_name = ""         # any TFDS dataset, with data.name=tfds
  c.data.data_dir = ""          # TFDS data_dir ("" = $TFDS_DATA_DIR or ~/tensorflow_datasets)
  c.data.download = False       # let TFDS download and prepare a missing dataset
  c.data.path = ""              # image folder for data.name=folder
  c.data.resolution = 32
  c.data.channels = 0           # 0 = the dataset's own; 1 or 3 converts
  c.data.num_examples = 100_000  # 2-D mixtures: size of the sampled set; digits: the first N of the 1797
  c.data.seed = 0               # data order and synthetic data; independent of `seed`
  c.data.num_threads = 4        # grain read threads per process

  c.optim = ConfigDict()
  for who in ("g", "d"):
    c.optim[who] = ConfigDict({"name": "adam", "lr": 2e-4, "b1": 0.5, "b2": 0.999, "eps": 1e-8,
                               "lr_final": _maybe_float(), "b2_final": _maybe_float(),
                               "clip_norm": 0.0})   # > 0: clip gradients to this global norm

  c.ckpt = ConfigDict({"keep": 3})
  # Fixed latents shown in every grid (one row per class for conditional models); `truncation` < 1
  # applies the architecture's truncation trick (BigGAN: truncated z; StyleGAN: psi in W) to grids.
  c.sample = ConfigDict({"num": 64, "truncation": 1.0})
  # In-training evaluation every eval.every steps (0 = never) and at the end. The dataset's own
  # CPU-scale metrics on eval.num_samples samples (2-D mixtures: modes_covered,
  # high_quality_fraction, reverse_kl; stacked digits: modes_covered, reverse_kl; digits:
  # digit_fd); with `metrics` ("fid,kid,is,pr", see gan_jax/metrics/fid.py) the published-network
  # metrics on `num` images of the EMA generator against `ref` (scripts/ref_stats.py; "" = the
  # run's training data, first `num_ref` images, cached), each appended to DIR/eval.jsonl with
  # its protocol. `best` (e.g. "fid") keeps the checkpoint with the best value in DIR/best.
  c.eval = ConfigDict({"every": 0, "num_samples": 2500, "metrics": "", "num": 10_000, "ref": "",
                       "num_ref": 50_000, "batch_size": 50, "best": "", "inception": "", "vgg16": ""})
  c.wandb = ConfigDict({"mode": "auto", "project": "gan_jax", "entity": "", "name": ""})
  for name in KINDS.get(MODELS.get(model).kind).blocks:
    blocks.add_to(c, blocks.BLOCKS.get(name))
  return c


def _maybe_float():
  """A float key that may stay unset (None): overridable with --config.KEY=VALUE."""
  return config_dict.placeholder(float)


def parse_arg(arg: str | None, **defaults: Any) -> ConfigDict:
  """Parses `path.py:key=value,flag` experiment args; types come from the defaults.

  A bare key (`runlocal`) means True. Unknown keys and values of the wrong type raise
  ConfigError listing the valid keys.
  """
  out = ConfigDict(dict(defaults))
  if not arg:
    return out
  for item in arg.split(","):
    key, eq, raw = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ConfigError(f"unknown experiment arg {key!r}; valid args: {', '.join(sorted(defaults))}")
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ConfigError(f"experiment arg {key!r} needs a value ({key}=...)")
      out[key] = True
    elif isinstance(default, bool):
      if raw.lower() not in ("true", "false", "1", "0"):
        raise ConfigError(f"experiment arg {key!r} must be true or false, got {raw!r}")
      out[key] = raw.lower() in ("true", "1")
    elif isinstance(default, str):
      out[key] = raw
    else:
      try:
        out[key] = type(default)(ast.literal_eval(raw))
      except (ValueError, SyntaxError, TypeError):
        raise ConfigError(
            f"experiment arg {key!r} must be {type(default).__name__}, got {raw!r}") from None
  return out


def _get(config: ConfigDict, key: str):
  """config["a.b"] for a dotted key."""
  for part in key.split("."):
    config = config[part]
  return config


def _check(ok: bool, message: str) -> None:
  if not ok:
    raise ConfigError(message)


def validate(config: ConfigDict) -> None:
  """Checks names against the registries and values against their ranges."""
  # Imported here so that registering a new entry never needs this module to change.
  from gan_jax import losses, optim
  from gan_jax.data import DATASETS
  from gan_jax.models import MODELS
  from gan_jax.train.kinds import KINDS, check_honoured

  losses.LOSSES.get(config.loss.name)
  MODELS.get(config.model.name)
  DATASETS.get(config.data.name)
  for who in ("g", "d"):
    optim.OPTIMIZERS.get(config.optim[who].name)
    _check(config.optim[who].lr > 0, f"optim.{who}.lr must be > 0, got {config.optim[who].lr}")
    clip = config.optim[who].clip_norm
    _check(clip is not None and clip >= 0, f"optim.{who}.clip_norm must be >= 0 (0: no clipping), got {clip}")
  for key in ("total_steps", "batch_size", "log_every", "ckpt_every", "ckpt.keep",
              "sample.num", "eval.num_samples", "eval.batch_size"):
    value = _get(config, key)
    _check(isinstance(value, int) and value >= 1, f"{key} must be an integer >= 1, got {value!r}")
  resolution = _get(config, "data.resolution")
  _check(resolution is None or (isinstance(resolution, int) and resolution >= 1),
         f"data.resolution must be an integer >= 1, got {resolution!r}")
  for key in ("sample_every", "eval.every"):
    value = _get(config, key)
    _check(value >= 0, f"{key} must be >= 0 (0 = never), got {value}")
  if "z_dim" in config.model:   # translation models (cyclegan) have no latents
    _check(config.model.z_dist in Z_DISTS,
           f"unknown model.z_dist {config.model.z_dist!r}; valid choices: {', '.join(Z_DISTS)}")
    _check(config.model.z_dim >= 1, f"model.z_dim must be >= 1, got {config.model.z_dim}")
  if "fake_labels" in config.model:
    _check(config.model.fake_labels in FAKE_LABELS,
           f"unknown model.fake_labels {config.model.fake_labels!r}; valid choices: {', '.join(FAKE_LABELS)}")
  if "state_updates" in config.model:
    _check(config.model.state_updates in STATE_UPDATES,
           f"unknown model.state_updates {config.model.state_updates!r}; valid choices: {', '.join(STATE_UPDATES)}")
  _check(config.nan_policy in NAN_POLICIES,
         f"unknown nan_policy {config.nan_policy!r}; valid choices: {', '.join(NAN_POLICIES)}")
  _check(config.population_impl in POPULATION_IMPLS,
         f"unknown population_impl {config.population_impl!r}; valid choices: {', '.join(POPULATION_IMPLS)}")
  _check(config.precision in PRECISIONS,
         f"unknown precision {config.precision!r}; valid choices: {', '.join(PRECISIONS)}")
  accum = config.grad_accum
  _check(isinstance(accum, int) and accum >= 1, f"grad_accum must be an integer >= 1, got {accum!r}")
  _check(config.batch_size % accum == 0,
         f"batch_size={config.batch_size} is not divisible by grad_accum={accum}")
  parse_profile_steps(config.profile_steps)
  from gan_jax.parallel import parse_sharding_rules
  _check(config.sharding.min_size_mb >= 0, f"sharding.min_size_mb must be >= 0, got {config.sharding.min_size_mb}")
  try:
    parse_sharding_rules(config.sharding.rules)
  except ValueError as e:
    raise ConfigError(f"sharding.rules: {e}") from None
  _check(config.wandb.mode in WANDB_MODES,
         f"unknown wandb.mode {config.wandb.mode!r}; valid choices: {', '.join(WANDB_MODES)}")
  for who in ("g", "d"):
    o = config.optim[who]
    _check(0 <= o.b1 < 1 and 0 <= o.b2 < 1, f"optim.{who}.b1 and b2 must be in [0, 1), got {o.b1}, {o.b2}")
  _check(0 < config.sample.truncation <= 1, f"sample.truncation must be in (0, 1], got {config.sample.truncation}")
  if config.eval.metrics:
    from gan_jax.metrics.fid import parse_metrics
    parse_metrics(config.eval.metrics)
  for key in ("eval.num", "eval.num_ref"):
    _check(_get(config, key) >= 2, f"{key} must be >= 2, got {_get(config, key)}")
  if config.eval.best:
    from gan_jax.metrics.evaluation import BEST_MODES
    _check(config.eval.best in BEST_MODES,
           f"unknown eval.best {config.eval.best!r}; valid choices: {', '.join(sorted(BEST_MODES))}")
  _check(config.data.channels in (0, 1, 3), f"data.channels must be 0, 1 or 3, got {config.data.channels}")
  for name in KINDS.get(MODELS.get(config.model.name).kind).blocks:
    check = blocks.BLOCKS.get(name).check
    if check is not None:
      check(config)
  # Last: a non-default value of a key that the model's training kind does not read.
  check_honoured(config.model.name, flatten(config.to_dict()), flatten(base_config(config.model.name).to_dict()))


def parse_profile_steps(value: str, start: int = 0) -> tuple[int, int] | None:
  """`profile_steps`: "START:STOP" (steps START..STOP-1) or "N" (the N steps after the first step of
  this invocation, which compiles: start+2 .. start+N+1); "" = None."""
  value = str(value).strip()
  if not value:
    return None
  try:
    if ":" in value:
      a, b = (int(x) for x in value.split(":"))
    else:
      a = start + 2
      b = a + int(value)
  except ValueError:
    raise ConfigError(f"profile_steps must be N or START:STOP (integers), got {value!r}") from None
  if not 1 <= a < b:
    raise ConfigError(f"profile_steps {value!r}: need 1 <= START < STOP (N >= 1)")
  return a, b


def flatten(d: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}; lists become tuples (hashable, comparable)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
  return out


def from_saved(d: dict) -> ConfigDict:
  """The locked config of a run's `config.json`: its values over the current `base_config` of its
  model, so keys added since the run was made read their defaults (written once, in base_config)."""
  def merge(base: dict, saved: dict) -> dict:
    out = dict(base)
    for k, v in saved.items():
      out[k] = merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out
  return from_dict(merge(base_config(d["model"]["name"]).to_dict(), d))


def from_dict(d: dict) -> ConfigDict:
  """Rebuilds a locked config from `config.json` (lists come back as tuples)."""
  def fix(v):
    if isinstance(v, dict):
      return {k: fix(x) for k, x in v.items()}
    if isinstance(v, list):
      return tuple(fix(x) for x in v)
    return v
  c = ml_collections.ConfigDict(fix(d))
  c.lock()
  return c
