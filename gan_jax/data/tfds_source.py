"""TFDS datasets read with `tfds.data_source` (random access over ArrayRecord files, no
TensorFlow at train time); grain does the rest (see pipeline.py).

`mnist` and `cifar10` are resized to `data.resolution`; `celeba` is centre-cropped to 108x108
and resized, the crop of the common DCGAN CelebA setup; `tfds` reads any TFDS name given as
`data.tfds_name` (its `image` feature, centre-cropped to a square).
"""
from __future__ import annotations

import functools
import os

import numpy as np
from absl import logging as absl_logging
from ml_collections import ConfigDict

from gan_jax.data import DATASETS, Dataset
from gan_jax.data.images import preprocess
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec


def open_tfds(name: str, c: ConfigDict, split: str | None = None):
  """`split` overrides `data.split` (two-domain datasets read trainA and trainB)."""
  import tensorflow_datasets as tfds

  split = split or c.split

  data_dir = c.data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)  # TFDS warns about every missing folder it probes
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=c.download)
  except tfds.core.registered.DatasetNotFoundError:
    raise ConfigError(f"TFDS has no dataset {name!r}; see https://www.tensorflow.org/datasets/catalog "
                      "for valid names") from None
  except Exception as e:  # noqa: BLE001 - TFDS raises many types for "not prepared"
    prepare = (f"prepare it once on a machine with network: `pip install tensorflow tensorflow-datasets && "
               f"tfds build {name} --data_dir {data_dir} --file_format array_record` (TensorFlow is needed "
               "only to prepare, not to train)")
    if c.download:
      cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise ConfigError(f"TFDS could not download and prepare {name!r} into {data_dir} ({type(e).__name__}: "
                        f"{cause[:200]}); {prepare}") from None
    raise ConfigError(f"TFDS dataset {name!r} (split {split!r}) is not prepared as ArrayRecord in {data_dir}; "
                      f"{prepare}, or rerun with --config.data.download=True") from None
  finally:
    absl_logging.set_verbosity(verbosity)
  if len(source) == 0:
    raise ConfigError(f"TFDS dataset {name!r} split {split!r} is empty; choose another data.split")
  return source


def _transform(example: dict, *, resolution: int, channels: int, crop: int) -> dict:
  out = {"x": preprocess(example["image"], resolution, channels, crop)}
  if "label" in example:
    out["label"] = np.asarray(example["label"], np.int32)
  return out


def _tfds_images(name: str, c: ConfigDict, crop: int = 0) -> Dataset:
  source = open_tfds(name, c)
  features = source.dataset_info.features
  if "image" not in features:
    raise ConfigError(f"TFDS dataset {name!r} has no 'image' feature; features: {', '.join(features)}")
  channels = c.channels or features["image"].shape[-1] or 3
  num_classes = features["label"].num_classes if "label" in features and hasattr(
      features["label"], "num_classes") else 0
  transform = functools.partial(_transform, resolution=c.resolution, channels=channels, crop=crop)
  return Dataset(source, transform, DataSpec("image", (c.resolution, c.resolution, channels), num_classes))


@DATASETS.register("mnist")
def mnist(c: ConfigDict) -> Dataset:
  return _tfds_images("mnist", c)


@DATASETS.register("cifar10")
def cifar10(c: ConfigDict) -> Dataset:
  return _tfds_images("cifar10", c)


@DATASETS.register("celeba")
def celeba(c: ConfigDict) -> Dataset:
  return _tfds_images("celeb_a", c, crop=108)


@DATASETS.register("tfds")
def any_tfds(c: ConfigDict) -> Dataset:
  if not c.tfds_name:
    raise ConfigError("data.name=tfds needs --config.data.tfds_name=NAME (a TFDS dataset name)")
  return _tfds_images(c.tfds_name, c)
