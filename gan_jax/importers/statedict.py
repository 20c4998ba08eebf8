"""Mapping an official PyTorch state dict onto our variable trees, strictly: every official tensor
is used once, every one of our leaves is filled, shapes agree; otherwise one ConfigError line names
the keys. The layout conversions (OIHW -> HWIO, Linear (out, in) -> (in, out)) live here."""
from __future__ import annotations

import jax
import numpy as np
from ml_collections import ConfigDict

from gan_jax.config import ConfigError

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

  def put(self, path: str, key: str, fn=lambda x: x, value: np.ndarray | None = None) -> None:
    """Our leaf `path` ("a/b/kernel") := fn(official tensor `key`) (or `value`, already converted)."""
    x = self.take(key) if value is None else value
    if x is not None:
      self.flat[tuple(path.split("/"))] = (key, np.asarray(fn(x), np.float32))

  def has(self, key: str) -> bool:
    return key in self.state

  def check_keys(self) -> None:
    if self.missing:
      raise ConfigError(f"{self.source}: missing tensors {names(self.missing)}")
    extra = set(self.state) - self.used
    if extra:
      raise ConfigError(f"{self.source}: unexpected tensors {names(extra)} (not part of the architecture "
                        "the file's shapes describe)")

  def tree(self, abstract, collection: str = "") -> dict:
    """Nested dict in the layout of `abstract`, every leaf filled once with its official shape checked."""
    self.check_keys()
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


def check_config(model_cfg: ConfigDict | None, inferred: dict, source: str) -> None:
  """One line naming every model key whose configured value disagrees with the file's."""
  if model_cfg is None:
    return
  bad = [f"model.{k}={model_cfg[k]!r} but the file has {v!r}" for k, v in inferred.items()
         if k in model_cfg and model_cfg[k] != v]
  if bad:
    raise ConfigError(f"{source}: the config disagrees with the checkpoint: {'; '.join(bad)}")
