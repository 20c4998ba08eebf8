"""Name -> object registries: losses, models, datasets and optimizers are found by name.

Adding an entry is one decorated function; the trainer never changes.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from gan_jax.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
  """A named collection whose lookups fail with the list of valid choices."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def add(obj: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._entries[name] = obj
      return obj
    return add

  def get(self, name: str) -> T:
    if name not in self._entries:
      raise ConfigError(f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}")
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
