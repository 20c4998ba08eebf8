"""An imported checkpoint -> a normal workdir: config.json, data_spec.json and checkpoints/0.

The config comes from an experiment file: the user's `--config` (then every architecture setting the
file records must agree with it: a mismatch is one error line naming each key) or the format's
default experiment with the file's settings written into it. The train state is our own fresh
state for that config (so optimizer states, EMA and regularizer state have their normal layout),
with G, D and EMA parameters and their collections replaced by the file's, shape-checked leaf by
leaf. It is saved at step 0 without a data-iterator item: train.py then starts reading the data
from the beginning (gan_jax/train/loop.py, `restore_data` False) and fine-tunes from the imported
weights; sample.py and evaluate.py read it as any run's checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from typing import Any, Callable

import jax
import numpy as np
from ml_collections import ConfigDict

from gan_jax import config as config_lib
from gan_jax.errors import ConfigError

STATE_FIELDS = ("g_params", "d_params", "ema_params", "g_vars", "d_vars")
_LIST = 6


def load_config(spec: str, overrides: dict[str, Any] | None = None) -> ConfigDict:
  """experiments/NAME.py[:ARGS] with flat `KEY: value` overrides (as --config.KEY=VALUE sets them)."""
  from gan_jax import cli
  config = cli.load_experiment(spec)
  for key, value in (overrides or {}).items():
    set_key(config, key, value)
  return config


def set_key(config: ConfigDict, key: str, value: Any) -> None:
  node, parts = config, key.split(".")
  for part in parts[:-1]:
    node = node[part]
  try:
    node[parts[-1]] = value
  except (AttributeError, KeyError, TypeError) as e:
    raise ConfigError(f"cannot set config key {key} to {value!r}: {e}") from None


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, bool) or isinstance(b, bool):
    return bool(a) == bool(b)
  if isinstance(a, (int, float)) and isinstance(b, (int, float)):
    return math.isclose(float(a), float(b), rel_tol=1e-9)
  return a == b


def _get(config: ConfigDict, key: str) -> Any:
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def nest(flat: dict[str, Any]) -> dict:
  """{"a/b/c": x} -> {"a": {"b": {"c": x}}}."""
  tree: dict = {}
  for path, x in flat.items():
    node = tree
    *heads, last = path.split("/")
    for h in heads:
      node = node.setdefault(h, {})
    node[last] = x
  return tree


def reconcile(imported, config: ConfigDict | None, path: str) -> ConfigDict:
  """The run's config: `config` checked against the file's settings (ConfigError naming every key
  that differs; data.channels 0, the dataset's own count, becomes the file's), or the format's
  experiment with the file's settings written in."""
  if config is None:
    config = load_config(imported.experiment)
    config.model.name = imported.model
    for key, value in imported.settings.items():
      set_key(config, key, value)
  else:
    if config.model.name != imported.model:
      raise ConfigError(f"{path} holds a {imported.model} network, but the config's model.name is "
                        f"{config.model.name!r} (another architecture)")
    bad = []
    for key, value in imported.settings.items():
      have = _get(config, key)
      if key == "data.channels" and have == 0:   # the dataset's own channel count: the file's
        set_key(config, key, value)
        continue
      if key.endswith("conv_clamp"):
        have, value = have or 0, value or 0
      if not _same(have, value):
        bad.append(f"{key}={have!r} (the file has {value!r})")
    if bad:
      raise ConfigError(f"the config disagrees with {path}: {'; '.join(bad)}")
  if imported.spec.num_classes and not config.model.conditional:
    raise ConfigError(f"{path} holds a conditional network ({imported.spec.num_classes} classes); "
                      "set model.conditional=True")
  config_lib.validate(config)
  return config


def trainer_state(config: ConfigDict, spec, fill: Callable[[Any], dict[str, Any]] | None = None):
  """The one place that calls into the trainer (gan_jax/train/loop.py, step.py).

  Without `fill`: the shapes of our fresh train state for (config, spec). With `fill` (the state's
  shapes -> {state field: the file's tree fitted to them}): the train state holding those trees,
  placed in the state's shardings, and the writer of data_spec.json. The fields not imported (optimizer
  states among them) are our initializer's, computed without running the networks (only
  the fields not imported are asked of the jitted initializer, so XLA drops the networks' forward
  passes: compiling the whole initializer costs tens of seconds on a CPU)."""
  from gan_jax.train import loop
  if config.population != 1:
    raise ConfigError("importing a checkpoint makes one run: set population=1")
  _, mesh, init, init_key, _, _ = loop.setup(config, spec)
  abstract = jax.eval_shape(init, init_key)
  if fill is None:
    return abstract, None
  fields = dict(fill(abstract))
  if fields.get("ema_params") is None and getattr(abstract, "ema_params", None) is not None and "g_params" in fields:
    fields["ema_params"] = fields["g_params"]
  # Optimizer states come from our initializer like the other fields: a fresh optimizer's state depends
  # on the shapes of what it trains (which the kind decides: StackGAN's Stage II trains part of G), not
  # on the values.
  rest = [f.name for f in dataclasses.fields(abstract) if f.name not in fields]
  # The initializer's jaxpr, traced once above (eval_shape), replayed for the missing fields: tracing the
  # networks' modules again costs seconds (BigGAN's toy: 1.7 s), replaying primitives a fraction.
  traced = init.trace(init_key)

  def missing(k):
    flat = jax.core.eval_jaxpr(traced.jaxpr.jaxpr, traced.jaxpr.consts, *jax.tree.leaves(k))
    state = jax.tree.unflatten(traced.out_tree, flat)
    return {f: getattr(state, f) for f in rest}
  fields.update(jax.jit(missing)(init_key))
  state = jax.device_put(type(abstract)(**fields), loop.state_shardings(config, mesh, abstract))
  write_spec = lambda path: loop.write_data_spec(types.SimpleNamespace(spec=spec, modes=None), path)  # noqa: E731
  return state, write_spec


def _names(paths: list[str]) -> str:
  more = f" and {len(paths) - _LIST} more" if len(paths) > _LIST else ""
  return ", ".join(paths[:_LIST]) + more


def fit(abstract: Any, tree: Any, what: str, source: str) -> Any:
  """`tree` (nested dicts of arrays) in the structure of `abstract`, every leaf present with its
  shape; otherwise one ConfigError naming the missing, extra and mis-shaped leaves."""
  want = {jax.tree_util.keystr(k, simple=True, separator="/"): v
          for k, v in jax.tree_util.tree_leaves_with_path(abstract)}
  have = {jax.tree_util.keystr(k, simple=True, separator="/"): v
          for k, v in jax.tree_util.tree_leaves_with_path(tree)}
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  shapes = sorted(f"{p} {tuple(np.shape(have[p]))} vs ours {tuple(want[p].shape)}" for p in set(want) & set(have)
                  if tuple(np.shape(have[p])) != tuple(want[p].shape))
  problems = [f"missing {_names(missing)}" if missing else "", f"extra {_names(extra)}" if extra else "",
              f"shapes differ: {_names(shapes)}" if shapes else ""]
  if any(problems):
    raise ConfigError(f"{source}: the {what} tensors do not fit our model: " + "; ".join(p for p in problems if p))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(abstract),
                                      [np.asarray(have[p], want[p].dtype) for p in want])


def imported_trees(abstract, imported, source: str) -> dict[str, Any]:
  """{state field: the file's tree fitted to our state's}, for the fields the file provides; a
  collection the file lacks keeps our initial values."""
  out = {}
  for field in STATE_FIELDS:
    tree, ours = getattr(imported, field), getattr(abstract, field, None)   # train states of other kinds
    # (translation, text-to-image) have no EMA field
    if tree is None or ours is None:
      continue
    if field.endswith("_vars"):
      missing = sorted(set(ours) - set(tree))
      if missing:
        continue   # partially provided collections: leave the whole field to our initializer
    out[field] = fit(ours, tree, field, source)
  return out


def write(workdir: str, config: ConfigDict, imported, source: str) -> None:
  """Writes config.json, data_spec.json and checkpoints/0 (refuses a workdir that has checkpoints)."""
  from gan_jax.checkpoint import Checkpointer
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise ConfigError(f"{workdir} already holds checkpoints; import into a new --workdir")
  state, write_spec = trainer_state(config, imported.spec, lambda abstract: imported_trees(abstract, imported, source))
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True)
  write_spec(os.path.join(workdir, "data_spec.json"))
  ckpt = Checkpointer(ckpt_dir, keep=config.ckpt.keep)
  try:
    ckpt.save(imported.step, state, None)
  finally:
    ckpt.close()
