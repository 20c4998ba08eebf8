"""Config blocks: groups of config keys that the module which reads them registers, with their
defaults and their checks, in one place each.

`gan_jax.config.base_config(model)` holds the keys every run has; the training kind of `model`
(gan_jax/train/kinds) names the blocks it reads, and only those are added to its config
(`reg.*` and `ema.*` for a GAN, the two-domain data keys for CycleGAN, ...). `validate` runs the
checks of the blocks a config has. A block's keys go under `section` ("" = the top level, "reg",
"data", ...), so a block may add keys to a section that other blocks or the base share.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ml_collections import ConfigDict

from gan_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Block:
  section: str                                  # "" (top level) or the section the keys go under
  defaults: Callable[[], dict[str, Any]]        # key -> default (a fresh dict each call)
  check: Callable[[ConfigDict], None] | None = None   # raises ConfigError; called with the whole config

  def keys(self) -> list[str]:
    """The block's dotted keys."""
    return [f"{self.section}.{k}" if self.section else k for k in self.defaults()]


BLOCKS: Registry[Block] = Registry("config block")


def add_to(config: ConfigDict, block: Block) -> None:
  """The block's keys with their defaults, into `config` (unlocked)."""
  target = config
  if block.section:
    if block.section not in config:
      config[block.section] = ConfigDict()
    target = config[block.section]
  for key, value in block.defaults().items():
    target[key] = value


def owner(key: str) -> str | None:
  """The name of the registered block that holds dotted `key`, if any."""
  return next((name for name in BLOCKS.names() if key in BLOCKS.get(name).keys()), None)
