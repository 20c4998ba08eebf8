"""Datasets by name (`data.name`) and the grain input pipeline.

A dataset is a random-access `source` (len and [i]) plus a per-example `transform` to model
inputs: {"x": float32 image [H, W, C] in [-1, 1] or vector [D], "label": int32 where known}.
Sources that need no download: `ring8`, `grid25`, `gauss5`, `two_cluster` (2-D mixtures),
`digits` (scikit-learn's 1797 handwritten digits). TFDS: `mnist`, `cifar10`, `celeba`, or any TFDS name via
`data.name=tfds` + `data.tfds_name`. Custom data: `folder` (PNG/JPEG under `data.path`). Two-domain (unpaired) data for
image-to-image translation, examples {"a": image, "b": image}: `cycle_gan` (TFDS),
`folder_pair`, `digits_pair` (see unpaired.py). Images with text embeddings (StackGAN's official
layout): `text_embeddings` (see text_embeddings.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
from ml_collections import ConfigDict

from gan_jax.models import DataSpec
from gan_jax.registry import Registry

Example = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Dataset:
  source: Sequence[Any]
  transform: Callable[[Any], Example]
  spec: DataSpec
  # 2-D mixtures only: mode centres [K, D] and the per-mode standard deviation (for plots).
  modes: np.ndarray | None = None
  mode_std: float = 0.0
  # In-training evaluation of generated samples [N, ...] -> metrics (eval.every, eval.num_samples):
  # mode coverage for the 2-D mixtures and the stacked digits.
  evaluate: Callable[[np.ndarray], dict] | None = None
  # The names `evaluate` returns (what eval.best may choose among).
  eval_metrics: tuple[str, ...] = ()
  # Names `evaluate(samples, labels=...)` adds for a conditional generator, given the labels the
  # samples were drawn for (digits: the classifier's agreement with them). Empty: labels not taken.
  conditional_eval_metrics: tuple[str, ...] = ()
  # Random training augmentation (raw example, numpy Generator) -> example, used instead of
  # `transform` by the training pipeline when set (two-domain data: random crops and flips).
  train_transform: Callable[[Any, np.random.Generator], Example] | None = None


class ArraySource:
  """Random access over in-memory arrays: item i is {key: array[i]}."""

  def __init__(self, **arrays: np.ndarray):
    self._arrays = arrays
    self._len = len(next(iter(arrays.values())))

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, i: int) -> Example:
    return {k: v[i] for k, v in self._arrays.items()}


DATASETS: Registry[Callable[[ConfigDict], Dataset]] = Registry("dataset")


def build_dataset(data_cfg: ConfigDict) -> Dataset:
  return DATASETS.get(data_cfg.name)(data_cfg)


# Registration happens on import.
# unpaired last: it builds on digits, folder and tfds_source.
from gan_jax.data import digits, folder, stacked, text_embeddings, tfds_source, toy2d, unpaired  # noqa: E402,F401
