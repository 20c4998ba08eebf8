"""Model registry: `model.name` -> (generator, discriminator) Flax Linen modules.

A model module registers a `ModelEntry`: its own config keys with defaults and a builder.
Every generator is called as `G(z, train=...)` -> samples shaped like the data
(images [B, H, W, C] in [-1, 1], or vectors [B, D]); every discriminator as
`D(x, train=...)` -> logits [B].
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
from ml_collections import ConfigDict

from gan_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What a model needs to know of the data."""
  kind: str                 # "image" or "vector"
  shape: tuple[int, ...]    # one example: (H, W, C) or (D,)
  num_classes: int = 0


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  defaults: Callable[[], dict[str, Any]]
  build: Callable[[ConfigDict, DataSpec], tuple[nn.Module, nn.Module]]


MODELS: Registry[ModelEntry] = Registry("model")


def model_config(name: str) -> ConfigDict:
  """`model.*` keys for architecture `name`: its name plus its own defaults."""
  return ConfigDict({"name": name, **MODELS.get(name).defaults()})


def build_models(model_cfg: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  return MODELS.get(model_cfg.name).build(model_cfg, spec)


# Registration happens on import.
from gan_jax.models import dcgan, mlp  # noqa: E402,F401
