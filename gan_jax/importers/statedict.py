"""Mapping an official PyTorch state dict onto our variable trees, strictly: every official tensor
is used once, every one of our leaves is filled, shapes agree; otherwise one ConfigError line names
the keys. The layout conversions (OIHW -> HWIO, Linear (out, in) -> (in, out)) live here."""
from __future__ import annotations

import functools
import json
import os
import re

import jax
import numpy as np
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.importers import torchfile
from gan_jax.models import DataSpec

_MAX_NAMES = 8


def names(keys, limit: int = _MAX_NAMES) -> str:
  keys = sorted(keys)
  more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
  return ", ".join(keys[:limit]) + more


def conv(w: np.ndarray) -> np.ndarray:
  """Conv2d weight [out, in, kh, kw] -> HWIO."""
  return np.transpose(w, (2, 3, 1, 0))


def conv_transpose(w: np.ndarray) -> np.ndarray:
  """ConvTranspose2d weight [in, out, kh, kw] -> our HWIO kernel of lax.conv_transpose (no flip): the
  PyTorch kernel flipped in H and W."""
  return np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1))[::-1, ::-1])


def linear(w: np.ndarray) -> np.ndarray:
  """Linear weight [out, in] -> Dense kernel [in, out]."""
  return np.transpose(w)


class Mapping:
  """Official tensors of one file being consumed into our flat {path: array}.

  `take(key)` returns the tensor and marks it used (missing keys are collected, not raised at once);
  `put(path, key, value)` places a converted tensor at our path; `tree(abstract)` checks everything and
  returns the nested tree shaped as `abstract` (a jax.eval_shape of our init)."""

  def __init__(self, state: dict, source: str, ignore=lambda key: False):
    self.state, self.source = state, source
    self.used: set[str] = {k for k in state if ignore(k)}
    self.missing: list[str] = []
    self.flat: dict[tuple, tuple[str, np.ndarray]] = {}

  def take(self, key: str) -> np.ndarray | None:
    if key not in self.state:
      self.missing.append(key)
      return None
    self.used.add(key)
    return np.asarray(self.state[key], np.float32)

  def put(self, path: str | tuple, key: str, fn=lambda x: x, value: np.ndarray | None = None) -> None:
    """Our leaf `path` ("a/b/kernel", or a tuple of keys where a key holds a "/") := fn(official tensor
    `key`) (or `value`, already converted)."""
    x = self.take(key) if value is None else value
    if x is not None:
      self.flat[tuple(path.split("/")) if isinstance(path, str) else path] = (key, np.asarray(fn(x), np.float32))

  def put_sn(self, prefix: str, layer: str, param: str, key: str) -> None:
    """The power-iteration vector `key`.u0 [1, out] and the logged sigma `key`.sv0 [1] of a spectrally
    normalized layer into flax's SpectralNorm variables (batch_stats .../SpectralNorm_0/"layer/param/u")."""
    base = (*prefix.split("/"), "SpectralNorm_0")
    self.put((*base, f"{layer}/{param}/u"), f"{key}.u0")
    self.put((*base, f"{layer}/{param}/sigma"), f"{key}.sv0", lambda x: x.reshape(()))

  def has(self, key: str) -> bool:
    return key in self.state

  def check_keys(self) -> None:
    if self.missing:
      raise ConfigError(f"{self.source}: missing tensors {names(self.missing)}")
    extra = set(self.state) - self.used
    if extra:
      raise ConfigError(f"{self.source}: unexpected tensors {names(extra)} (not part of the architecture "
                        "the file's shapes describe)")

  def tree(self, abstract=None, collection: str = "") -> dict:
    """Nested dict in the layout of `abstract`, every leaf filled once with its official shape checked.
    Without `abstract` (an importer's read, which traces no network): the official keys are checked here
    and the layout when the trees are fitted to the train state (`workdir.fit`, on import)."""
    self.check_keys()
    if abstract is None:
      return self._nested()
    leaves = {tuple(getattr(k, "key", str(k)) for k in path): leaf
              for path, leaf in jax.tree_util.tree_leaves_with_path(abstract)}
    bad = [f"{key} {tuple(x.shape)} -> {collection}{'/'.join(p)} {tuple(leaves[p].shape)}"
           for p, (key, x) in self.flat.items() if p in leaves and tuple(x.shape) != tuple(leaves[p].shape)]
    if bad:
      raise ConfigError(f"{self.source}: shape mismatch: {'; '.join(bad[:4])}")
    unfilled = [collection + "/".join(p) for p in leaves if p not in self.flat]
    unknown = [f"{self.flat[p][0]} -> {collection}{'/'.join(p)}" for p in self.flat if p not in leaves]
    if unfilled or unknown:
      raise ConfigError(f"{self.source}: the official tensors do not fill our model: "
                        + "; ".join(s for s in (f"no official tensor for {names(unfilled)}" if unfilled else "",
                                                f"no place for {names(unknown)}" if unknown else "") if s))
    return self._nested()

  def _nested(self) -> dict:
    out: dict = {}
    for path, (_, x) in self.flat.items():
      node = out
      for part in path[:-1]:
        node = node.setdefault(part, {})
      node[path[-1]] = x
    return out


def field(tree, name: str):
  """`name` of a train state (dataclass) or of a plain dict of its fields."""
  return tree[name] if isinstance(tree, dict) else getattr(tree, name)


def check_config(config: ConfigDict | None, inferred: dict, source: str) -> None:
  """One line naming every config key ("model.g_width") whose value disagrees with the file's."""
  if config is None:
    return
  bad = []
  for key, v in inferred.items():
    node = config
    for part in key.split("."):
      node = node[part] if isinstance(node, ConfigDict) and part in node else None
    if node is not None and node != v:
      bad.append(f"{key}={node!r} but the file has {v!r}")
  if bad:
    raise ConfigError(f"{source}: the config disagrees with the checkpoint: {'; '.join(bad)}")


def network_files(path: str, in_directory, name_pattern: str, what: str, expected: str) -> dict[str, str]:
  """{official network name: file}: `in_directory(path)` for a directory (ConfigError naming `what` when it
  finds none), or the one file `path` whose name matches `name_pattern` (group 1: the network's name)."""
  if os.path.isdir(path):
    found = in_directory(path)
    if not found:
      raise ConfigError(f"{path}: no {what} in this directory")
    return found
  m = re.search(name_pattern, os.path.basename(path))
  if not m:
    raise ConfigError(f"{path}: not a {what} file ({expected})")
  return {m.group(1): path}


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """A torch.save'd state dict (read without torch) as {key: float32 or integer array}."""
  sd = torchfile.load(path)
  if not isinstance(sd, dict) or not all(isinstance(v, np.ndarray) for v in sd.values()):
    raise ConfigError(f"{path}: not a state dict (a dict of tensors); got {type(sd).__name__}")
  return {k: np.asarray(v) for k, v in sd.items()}


def settings_config(experiment: str, settings: dict) -> ConfigDict:
  """The experiment's config with the file's model.* settings on it."""
  from gan_jax.cli import load_experiment

  config = load_experiment(experiment)
  for key, value in settings.items():
    section, _, name = key.partition(".")
    if section == "model":
      config.model[name] = value
  return config


def abstract_state(experiment: str, settings: dict, spec: DataSpec, fresh: bool = False):
  """Shapes of our train state for the file's settings, to check converted trees against (the importers'
  reads leave that to the import's `workdir.fit` and trace nothing); `fresh`: the initialized state
  itself, seed 0, for a file that holds only some of the networks. The shapes are kept per (experiment,
  settings, spec) for the process."""
  from gan_jax.train.kinds import build_trainer as build_gan

  key = (experiment, json.dumps(settings, sort_keys=True, default=str), spec)
  if fresh or key not in _ABSTRACT:
    gan = build_gan(settings_config(experiment, settings), spec)
    init = functools.partial(gan.init, data_shape=spec.shape)
    if fresh:
      return jax.jit(init)(jax.random.PRNGKey(0))
    _ABSTRACT[key] = jax.eval_shape(init, jax.random.PRNGKey(0))
  return _ABSTRACT[key]


_ABSTRACT: dict = {}
