"""Digit Fréchet distance: FID's formula in the feature space of the project's digit classifier.

A CPU-scale stand-in for FID, for experiments on scikit-learn's bundled digits: it is *not* FID
and its values are never comparable with published numbers. Features are the 128-d penultimate
layer of the digit CNN (gan_jax/metrics/digit_classifier.py, trained on the same digits and
cached); the reference statistics are those of all the dataset's digits. Colour samples are
averaged over their channels first (the digits are greyscale).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from gan_jax.metrics import digit_classifier
from gan_jax.metrics.frechet import frechet_distance, gaussian_stats


class DigitFD:
  """evaluate(samples [N, H, W, C] in [-1, 1], labels=None) -> {"digit_fd": float}, and with the
  labels a conditional generator was asked for also {"digit_accuracy": float}: the fraction of
  samples the same classifier reads as their label (the classification-accuracy check of
  conditional GANs; real digits score the classifier's test accuracy, a generator that ignores its
  label about 0.1). Lazy: the classifier and the real statistics are made (or loaded) at the first
  call, so building a dataset stays cheap."""

  def __init__(self, name: str, load_data: Callable[[], tuple[np.ndarray, np.ndarray]]):
    self.name, self.load_data = name, load_data
    self._featurize = self._predict = self._real = None

  def _setup(self):
    params, _ = digit_classifier.cached_params(self.name, self.load_data)
    self._featurize = digit_classifier.make_featurizer(params)
    self._predict = digit_classifier.make_predictor(params)
    images, _ = self.load_data()
    self._real = gaussian_stats(self._featurize(images))

  def __call__(self, samples: np.ndarray, labels: np.ndarray | None = None) -> dict:
    if self._featurize is None:
      self._setup()
    x = np.asarray(samples, np.float32)
    if x.shape[-1] != 1:
      x = x.mean(axis=-1, keepdims=True)
    mu, sigma = gaussian_stats(self._featurize(x))
    out = {"digit_fd": frechet_distance(mu, sigma, *self._real)}
    if labels is not None:
      labels = np.asarray(labels)
      if labels.shape != (len(x),):
        raise ValueError(f"digit_accuracy needs one label per sample: {labels.shape} labels, {len(x)} samples")
      out["digit_accuracy"] = float(np.mean(self._predict(x) == labels))
    return out
