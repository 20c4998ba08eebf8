"""Model registry: `model.name` -> (generator, discriminator) Flax Linen modules.

A model module (one per architecture in this package; every module here is imported, so adding
one is adding a file) registers a `ModelEntry`: its own config keys with defaults and a builder.
The contract every architecture keeps, which the trainer, samplers and tests rely on:

- `G(z, y=None, train=True)` -> samples shaped like the data (images [B, H, W, C] in [-1, 1],
  or vectors [B, D]); `D(x, y=None, train=True)` -> logits [B]. `y` is int32 class labels [B]
  when `model.conditional` is on (the dataset must have labels), else None.
- Randomness inside a module (noise inputs, style mixing) comes from `self.make_rng("noise")`;
  the trainer and the samplers always pass `rngs={"noise": key}`.
- State that is not a parameter (BatchNorm statistics, spectral-norm vectors, StyleGAN's W
  average) lives in collections other than "params" and changes only when `train=True`.
- `ModelEntry.truncation`: how `sample.truncation` < 1 applies: "z" draws truncated-normal
  latents (BigGAN), "w" passes `truncation_psi` to G (StyleGAN), None: not supported.
- `ModelEntry.kind`: the training kind that trains the model (gan_jax/train/kinds, one module each):
  "gan" (the default: G(z) against D), "progressive" (progan: G and D grow with a level of detail
  `lod` kept in their "growth" collection; one compiled step per resolution, the batch by
  resolution), "translation" (cyclegan: image-to-image models, `G(x, train)` -> an image shaped like
  x, `D(x, train)` -> patch logits [B, h, w]) or "text2image" (stackgan: conditioning augmentation,
  a matching-aware D, stages). A new kind is a new module there.
- Generators that support path-length regularization expose `mapping(z, y, train)` -> ws
  [B, num_ws, w_dim] and `synthesis(ws, train)` -> images, with `G(z, y) = synthesis(mapping(z, y))`.
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
  truncation: str | None = None     # "z", "w" or None (see the module docstring)
  kind: str = "gan"                 # the training kind's name in gan_jax.train.kinds.KINDS


MODELS: Registry[ModelEntry] = Registry("model")


def model_config(name: str) -> ConfigDict:
  """`model.*` keys for architecture `name`: its name plus its own defaults (and, for G(z) vs D
  models, `fake_labels`: "uniform" or "real", `g_stats`: "g_step" or "all_passes", `d_joint` and
  `state_updates`, see gan_jax/train/kinds/gan.py)."""
  entry = MODELS.get(name)
  extra = ({"fake_labels": "uniform", "g_stats": "g_step", "d_joint": False, "state_updates": "own"}
           if entry.kind in ("gan", "progressive") else {})
  return ConfigDict({"name": name, "conditional": False, **extra, **entry.defaults()})


def build_models(model_cfg: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  return MODELS.get(model_cfg.name).build(model_cfg, spec)


def _import_architectures() -> None:
  """Registration happens on import: every module of this package but the shared layers."""
  import importlib
  import pkgutil

  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_") and "layers" not in info.name:
      importlib.import_module(f"{__name__}.{info.name}")


_import_architectures()
