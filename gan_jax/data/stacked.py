"""Stacked digits: three independent digits as the R, G, B channels, 1000 modes.

`stacked_mnist` is StackedMNIST as in the PacGAN/VEEGAN code (Metz et al. 2017): each channel
an independently, uniformly drawn MNIST digit (TFDS `mnist`, split `data.split`),
`data.num_examples` stacks (128k in the papers) drawn with `data.seed`. `stacked_digits` is the
same construction on scikit-learn's 1797 bundled digits, so it needs no download. Modes are
counted by a digit classifier trained on the same digits (gan_jax/metrics/digit_classifier.py).
"""
from __future__ import annotations

import functools

import numpy as np
from ml_collections import ConfigDict

from gan_jax.data import DATASETS, Dataset
from gan_jax.data.digits import digit_images
from gan_jax.data.images import preprocess
from gan_jax.metrics import digit_classifier
from gan_jax.metrics.stacked import stacked_mode_statistics
from gan_jax.models import DataSpec


class StackedSource:
  """Item i stacks digits triples[i] of `read(j) -> (image [H, W, 1], label)` along channels."""

  def __init__(self, read, triples: np.ndarray):
    self.read, self.triples = read, triples

  def __len__(self) -> int:
    return len(self.triples)

  def __getitem__(self, i: int) -> dict:
    parts = [self.read(int(j)) for j in self.triples[i]]
    label = 100 * parts[0][1] + 10 * parts[1][1] + parts[2][1]
    return {"x": np.concatenate([p[0] for p in parts], axis=-1), "label": np.int32(label)}


def draw_triples(n_digits: int, n: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, n_digits, size=(n, 3))


EVAL_METRICS = ("modes_covered", "reverse_kl")


def _evaluator(name: str, load_data):
  """Lazily trains (or loads) the classifier on first use, so building the dataset stays cheap."""
  def evaluate(samples: np.ndarray) -> dict:
    predict, _ = digit_classifier.cached_classifier(name, load_data)
    return stacked_mode_statistics(samples, predict)
  return evaluate


@DATASETS.register("stacked_digits")
def stacked_digits(c: ConfigDict) -> Dataset:
  images, labels = digit_images(c.resolution)
  source = StackedSource(lambda j: (images[j], labels[j]), draw_triples(len(images), c.num_examples, c.seed))
  return Dataset(source, transform=dict, spec=DataSpec("image", (c.resolution, c.resolution, 3), 1000),
                 evaluate=_evaluator(f"digits_{c.resolution}", lambda: digit_images(c.resolution)),
                 eval_metrics=EVAL_METRICS)


def _mnist_digits(source, resolution: int, limit: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
  """The first `limit` MNIST examples of `source` as classifier training data."""
  n = min(limit, len(source))
  examples = [source[i] for i in range(n)]
  x = np.stack([preprocess(e["image"], resolution, 1) for e in examples])
  return x, np.asarray([e["label"] for e in examples], np.int32)


@DATASETS.register("stacked_mnist")
def stacked_mnist(c: ConfigDict) -> Dataset:
  from gan_jax.data.tfds_source import open_tfds

  source = open_tfds("mnist", c)

  def read(j: int):
    e = source[j]
    return preprocess(e["image"], c.resolution, 1), int(e["label"])

  stacks = StackedSource(read, draw_triples(len(source), c.num_examples, c.seed))
  return Dataset(stacks, transform=dict, spec=DataSpec("image", (c.resolution, c.resolution, 3), 1000),
                 evaluate=_evaluator(f"mnist_{c.resolution}",
                                     functools.partial(_mnist_digits, source, c.resolution)),
                 eval_metrics=EVAL_METRICS)
