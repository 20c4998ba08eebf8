"""scikit-learn's handwritten digits (UCI optical recognition test set): 1797 real 8x8 greyscale
images with labels, bundled in the package, so they need no download. Upsampled to
`data.resolution` (bilinear) for the convolutional models. With `eval.every` the trainer logs
`digit_fd`, the Fréchet distance in the features of the project's digit classifier
(gan_jax/metrics/digit_fd.py: a CPU-scale metric, not FID), and for conditional generators
`digit_accuracy`, the fraction of samples that classifier reads as the digit they were drawn for.

`data.num_examples` below 1797 trains on the first that many digits (a limited-data subset, about
equally many of each class: the set cycles through the classes); `digit_fd` is still measured
against all 1797."""
from __future__ import annotations

import numpy as np
from ml_collections import ConfigDict

from gan_jax.data import DATASETS, ArraySource, Dataset
from gan_jax.data.images import resize, set_channels, to_model_range
from gan_jax.metrics.digit_fd import DigitFD
from gan_jax.models import DataSpec


def digit_images(resolution: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """All 1797 digits as float32 [N, resolution, resolution, channels] in [-1, 1], and labels."""
  from sklearn.datasets import load_digits

  d = load_digits()
  # Pixel values are counts 0..16 of a 4x4 block; map to 0..255.
  raw = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  x = np.stack([to_model_range(set_channels(resize(im, resolution), channels)) for im in raw])
  return x, d.target.astype(np.int32)


@DATASETS.register("digits")
def digits(c: ConfigDict) -> Dataset:
  x, labels = digit_images(c.resolution, c.channels or 1)
  x, labels = x[:c.num_examples], labels[:c.num_examples]
  return Dataset(ArraySource(x=x, label=labels), transform=dict,
                 spec=DataSpec("image", x.shape[1:], num_classes=10),
                 evaluate=DigitFD(f"digits_{c.resolution}", lambda: digit_images(c.resolution)),
                 eval_metrics=("digit_fd",), conditional_eval_metrics=("digit_accuracy",))
