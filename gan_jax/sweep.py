"""Sweeps: an experiment's `get_sweeps()` expanded into trials, one train workdir each.

An experiment file may define

    def get_sweeps():
      return {"losses": {"loss.name": ["nonsaturating", "rpgan"], "seed": [0, 1, 2]}}

A sweep is the Cartesian product of its value lists, in key order (the last key varies
fastest). Each point is a trial: overrides of the experiment's config, a directory
`ROOT/<key>-<value>__<key>-<value>` and a `scripts/train.py` command. Every override is
checked against the config before any trial runs.

An axis may also be named presets, when one choice sets several keys together: its name is
not a config key and its value maps labels to overrides,

    "penalty": {"none": {"reg.r1": 0.0, "reg.r2": 0.0}, "R1": {"reg.r1": 0.1, "reg.r2": 0.0}}

so trials are named by the label (`loss.name-hinge__penalty-R1`), their commands set the keys,
and `scripts/compare.py` groups and labels the runs by the axis (sweep.json records the labels).

A trial is finished when its workdir holds the checkpoint of its last step (Orbax commits step
folders atomically), so rerunning a sweep skips finished trials and resumes the others from their
own checkpoints.

`ROOT/sweep.json` records the definition and the trials, for `scripts/compare.py` and for
launchers that run the trials elsewhere (`scripts/sweep.py --dry_run` prints the commands).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Sequence

from absl import flags
from ml_collections import ConfigDict
from ml_collections.config_flags import tuple_parser

from gan_jax import cli
from gan_jax import config as config_lib
from gan_jax.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(REPO, "scripts", "train.py")
SWEEP_FILE = "sweep.json"

# The parsers scripts/train.py applies to `--config.KEY=VALUE` (ml_collections config_flags),
# so a value that validates here parses to the same value in the trial.
_PARSERS = {float: flags.FloatParser(), int: flags.IntegerParser(), bool: flags.BooleanParser(),
            str: flags.ArgumentParser(), tuple: tuple_parser.TupleParser()}


@dataclasses.dataclass(frozen=True)
class Trial:
  name: str                  # directory name under the sweep root
  overrides: dict[str, Any]  # the swept config keys' values at this point (presets resolved)
  workdir: str
  command: list[str]
  total_steps: int           # of the trial's resolved config: its last checkpoint
  point: dict[str, Any] = dataclasses.field(default_factory=dict)  # axis -> value or preset label

  def finished(self) -> bool:
    return os.path.isdir(os.path.join(self.workdir, "checkpoints", str(self.total_steps)))


@dataclasses.dataclass(frozen=True)
class Sweep:
  experiment: str            # experiments/NAME.py[:ARGS] as given
  name: str
  keys: list[str]            # axes (swept config keys or preset names), in expansion order
  fixed: dict[str, str]      # overrides applied to every trial (--set)
  root: str
  trials: list[Trial]
  presets: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)  # axis -> label -> keys

  def to_json(self) -> dict:
    """The definition and the trials; `axes` lists each axis's values (preset labels) in sweep order,
    `presets` the keys each label sets, each trial's `point` its axes' values."""
    axes = {k: list(dict.fromkeys(format_value(t.point[k]) for t in self.trials)) for k in self.keys}
    return {"experiment": self.experiment, "sweep": self.name, "keys": self.keys, "fixed": self.fixed,
            "axes": axes, "presets": self.presets,
            "trials": [{"name": t.name, "dir": t.name, "point": t.point, "overrides": t.overrides,
                        "command": t.command} for t in self.trials]}

  def write(self) -> None:
    """Writes ROOT/sweep.json; refuses a root that holds another sweep's trials."""
    path = os.path.join(self.root, SWEEP_FILE)
    if os.path.exists(path):
      with open(path) as f:
        old = json.load(f)
      if (_spec_key(old.get("experiment", "")), old.get("sweep"), old.get("keys")) != (
          _spec_key(self.experiment), self.name, self.keys):
        raise ConfigError(f"{path} belongs to sweep {old.get('sweep')!r} of {old.get('experiment')!r} "
                          f"over {old.get('keys')}; use another --root")
    os.makedirs(self.root, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(self.to_json(), f, indent=2)
    os.replace(tmp, path)


def _spec_key(spec: str) -> tuple[str, str]:
  path, _, arg = spec.partition(":")
  return os.path.abspath(path), arg


def format_value(value: Any) -> str:
  """A sweep value as it appears on the command line and in directory names."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def expand(sweeps: dict[str, dict[str, Sequence[Any] | dict]], name: str) -> list[dict[str, Any]]:
  """The Cartesian product of sweep `name`'s value lists, in key order (last key fastest); a
  preset axis contributes its labels."""
  if name not in sweeps:
    raise ConfigError(f"unknown sweep {name!r}; valid sweeps: {', '.join(sorted(sweeps))}")
  axes = sweeps[name]
  for key, values in axes.items():
    if isinstance(values, dict):
      bad = [label for label, keys in values.items() if not isinstance(keys, dict) or not isinstance(label, str)]
      if not values or bad:
        raise ConfigError(f"sweep {name!r}: preset axis {key} needs a non-empty {{label: {{config_key: value}}}} "
                          f"dict, got {values!r}")
    elif not isinstance(values, (list, tuple)) or not values:
      raise ConfigError(f"sweep {name!r}: {key} needs a non-empty list of values, got {values!r}")
  return [dict(zip(axes, point)) for point in itertools.product(*(list(v) for v in axes.values()))]


# The standard and relativistic losses of the loss x penalty comparison (R3GAN's question: does
# RpGAN need R1 and R2?), two of each: the logistic pair first (the paired comparison of R3GAN),
# then the hinge forms.
PENALTY_LOSSES = ("nonsaturating", "rpgan", "hinge", "rahinge")


def penalty_presets(gamma: float) -> dict[str, dict[str, float]]:
  """The `penalty` preset axis: no gradient penalty, R1 alone, and R1 + R2 with the same weight
  (R3GAN's regularization), all at `gamma` (reg.r1, reg.r2: gamma/2 · E ||∇D||²)."""
  return {"none": {"reg.r1": 0.0, "reg.r2": 0.0}, "R1": {"reg.r1": gamma, "reg.r2": 0.0},
          "R1+R2": {"reg.r1": gamma, "reg.r2": gamma}}


def presets_of(sweeps: dict[str, dict[str, Sequence[Any] | dict]], name: str) -> dict[str, dict[str, dict]]:
  """Sweep `name`'s preset axes: {axis: {label: {config_key: value}}}."""
  return {k: v for k, v in sweeps[name].items() if isinstance(v, dict)}


def resolve(point: dict[str, Any], presets: dict[str, dict[str, dict]]) -> dict[str, Any]:
  """A point's config overrides: plain axes as they are, preset axes replaced by their keys (in
  axis order). A key set twice (by two axes) raises ConfigError."""
  out: dict[str, Any] = {}
  for axis, value in point.items():
    keys = presets[axis][value] if axis in presets else {axis: value}
    for key, v in keys.items():
      if key in out:
        raise ConfigError(f"sweep point {point}: {key} is set by two axes")
      out[key] = v
  return out


def trial_name(overrides: dict[str, Any]) -> str:
  """`{"loss.name": "rpgan", "seed": 3}` -> `loss.name-rpgan__seed-3` (filesystem-safe, deterministic).

  Characters other than letters, digits and `._+-` become `_`; a name that had any (or is
  too long for a file name) ends in a hash of the exact values, so distinct trials never share
  a directory."""
  raw = "__".join(f"{k}-{format_value(v)}" for k, v in overrides.items())
  safe = re.sub(r"[^A-Za-z0-9._+-]", "_", raw)
  if safe != raw or len(safe) > 200:
    safe = f"{safe[:180]}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
  return safe


def parse_sets(items: Sequence[str]) -> dict[str, str]:
  """`["total_steps=100", ...]` (the --set flag) -> {"total_steps": "100", ...}."""
  out = {}
  for item in items:
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
      raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
    out[key.strip()] = value
  return out


def apply_overrides(config: ConfigDict, overrides: dict[str, str]) -> ConfigDict:
  """A locked copy of `config` with `{"a.b": "value"}` applied as `--config.a.b=value` would be."""
  config = copy.deepcopy(config)
  config.lock()
  for key, raw in overrides.items():
    parent, node, parts = None, config, key.split(".")
    for part in parts:
      if not isinstance(node, ConfigDict) or part not in node:
        raise ConfigError(cli._unknown_key_message(config, [key], "config"))
      parent, node = node, node[part]
    field_type = parent.get_type(parts[-1])
    if field_type not in _PARSERS:
      raise ConfigError(f"config key {key!r} ({field_type.__name__}) cannot be overridden; override its fields")
    try:
      parent[parts[-1]] = _PARSERS[field_type].parse(raw)
    except (ValueError, TypeError):
      raise ConfigError(f"bad value for config key {key!r}: {raw!r} (expected {field_type.__name__})") from None
  return config


def load_sweep(spec: str, name: str, root: str, fixed: dict[str, str] | None = None) -> Sweep:
  """Sweep `name` of the experiment `spec` (`path.py[:args]`), every trial's config validated."""
  fixed = dict(fixed or {})
  path, _, arg = spec.partition(":")
  module = cli.load_experiment_module(path)
  if not hasattr(module, "get_sweeps"):
    raise ConfigError(f"config file {path!r} defines no sweeps (add get_sweeps() returning "
                      "{name: {config_key: [values, ...]}})")
  sweeps = module.get_sweeps()
  points = expand(sweeps, name)
  presets = presets_of(sweeps, name)
  keys = list(points[0])
  swept_keys = set(keys) - set(presets) | {k for p in presets.values() for keys_ in p.values() for k in keys_}
  if clash := sorted(set(fixed) & swept_keys):
    raise ConfigError(f"--set {', '.join(clash)}: swept by sweep {name!r}; drop it or sweep another key")
  base = apply_overrides(cli.load_experiment(spec), fixed)
  spec_abs = os.path.abspath(path) + (f":{arg}" if arg else "")
  root = os.path.abspath(root)
  trials = []
  for point in points:
    tname = trial_name(point)
    try:
      overrides = resolve(point, presets)
      swept = {k: format_value(v) for k, v in overrides.items()}
      config = apply_overrides(base, swept)
      config_lib.validate(config)
    except ConfigError as e:
      raise ConfigError(f"sweep {name!r}, trial {tname}: {e}") from None
    workdir = os.path.join(root, tname)
    command = [sys.executable, TRAIN_SCRIPT, "--config", spec_abs, "--workdir", workdir,
               *[f"--config.{k}={v}" for k, v in {**fixed, **swept}.items()]]
    trials.append(Trial(tname, overrides, workdir, command, config.total_steps, point))
  if len({t.name for t in trials}) < len(trials):
    raise ConfigError(f"sweep {name!r} repeats a point: {[t.name for t in trials]}")
  return Sweep(spec, name, keys, fixed, root, trials, presets)


LAUNCH_SCRIPT = os.path.join(REPO, "scripts", "launch.py")


def with_launcher(sweep: Sweep, backend: str, launch_args: Sequence[str] = ()) -> Sweep:
  """The sweep with every trial started through scripts/launch.py's `backend` (one trial per
  allocation or slice; `launch_args` such as `--nodes=2` go to the launcher)."""
  from gan_jax import launch
  if backend not in launch.BACKENDS:
    raise ConfigError(f"unknown --backend {backend!r}; valid choices: process, {', '.join(launch.BACKENDS)}")
  trials = []
  for t in sweep.trials:
    logs = ["--log_dir", os.path.join(t.workdir, "launch_logs")] if backend == "local" else []
    command = [sys.executable, LAUNCH_SCRIPT, "--backend", backend, *launch_args, *logs, "--", *t.command[1:]]
    trials.append(dataclasses.replace(t, command=command))
  return dataclasses.replace(sweep, trials=trials)


def wandb_sweep_config(sweep: Sweep) -> dict:
  """A `wandb sweep` configuration (grid) of the same trials: parameters are the swept config
  keys, the command is train.py's with a workdir per agent run under the sweep root."""
  if sweep.presets:
    raise ConfigError(f"sweep {sweep.name!r} has preset axes ({', '.join(sweep.presets)}), which a wandb grid "
                      "cannot express (it would cross their keys); run it with scripts/sweep.py")
  spec_path, _, arg = sweep.experiment.partition(":")
  spec = os.path.abspath(spec_path) + (f":{arg}" if arg else "")
  parameters = {f"config.{k}": {"values": list(dict.fromkeys(format_value(t.overrides[k]) for t in sweep.trials))}
                for k in sweep.keys}
  parameters.update({f"config.{k}": {"value": v} for k, v in sweep.fixed.items()})
  return {"name": f"{os.path.basename(spec_path)}:{sweep.name}", "program": TRAIN_SCRIPT, "method": "grid",
          "parameters": parameters,
          "command": ["${env}", "${interpreter}", "${program}", "--config", spec, "--workdir",
                      os.path.join(sweep.root, "{wandb_run_id}"), "${args}"]}


def shell_command(trial: Trial) -> str:
  return shlex.join(trial.command)


def run(sweep: Sweep, parallel: int = 1, report: Callable[[str], None] = print) -> int:
  """Runs the unfinished trials as subprocesses, `parallel` at a time; returns how many failed.

  Reports one line per trial: skipped (finished before), ok, failed (exit code), or stopped.
  Each trial's stdout and stderr go to its workdir's train.log (appended: a resumed trial
  keeps the log of its earlier attempts). SIGTERM or Ctrl-C starts no new trial and passes
  SIGTERM to the running ones, which save a checkpoint and exit; rerunning resumes them.
  """
  pending = deque()
  for trial in sweep.trials:
    if trial.finished():
      report(f"skipped {trial.name} (finished: checkpoints/{trial.total_steps})")
    else:
      pending.append(trial)
  running: dict[subprocess.Popen, tuple[Trial, Any, float]] = {}
  stop = []

  def on_signal(signum, frame):
    del frame
    stop.append(signum)
    for p in running:
      p.send_signal(signal.SIGTERM)

  in_main = threading.current_thread() is threading.main_thread()  # only it may set handlers
  previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
  failed = 0
  try:
    while pending or running:
      while pending and len(running) < parallel and not stop:
        trial = pending.popleft()
        os.makedirs(trial.workdir, exist_ok=True)
        log = open(os.path.join(trial.workdir, "train.log"), "a")  # closed when the trial exits
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {shell_command(trial)}\n")
        log.flush()
        # A session of its own: a terminal's Ctrl-C reaches the sweep only, which forwards SIGTERM.
        p = subprocess.Popen(trial.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        running[p] = (trial, log, time.perf_counter())
      for p in [p for p in running if p.poll() is not None]:
        trial, log, t0 = running.pop(p)
        log.close()
        seconds = time.perf_counter() - t0
        if p.returncode == 0 and trial.finished():
          report(f"ok {trial.name} ({seconds:.1f} s)")
        else:
          failed += 1
          why = f"exit {p.returncode}" if p.returncode else "stopped before its last step"
          report(f"failed {trial.name} ({why}; log: {os.path.join(trial.workdir, 'train.log')})")
      if stop and pending:
        for trial in pending:
          report(f"failed {trial.name} (not started: sweep interrupted)")
        failed += len(pending)
        pending.clear()
      time.sleep(0.2)
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
  return failed
