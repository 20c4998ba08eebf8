"""Two-domain (unpaired) image data for image-to-image translation (CycleGAN).

Examples are {"a": image of domain A, "b": image of domain B} ([H, W, C] float32 in [-1, 1]); in
training each domain is read in its own shuffled order (`UnpairedSource.shuffled`), so pairs are
never fixed, as the official UnalignedDataset draws B at random for each A. An epoch is
max(|A|, |B|) examples (the official dataset length).

- `cycle_gan`: TFDS `cycle_gan/<data.tfds_name>` (horse2zebra, monet2photo, ...), splits
  `<data.split>A` and `<data.split>B` (trainA/trainB, testA/testB).
- `folder_pair`: the images under `data.path_a` and `data.path_b` (as data.name=folder).
- `digits_pair`: no download: A is scikit-learn's digits (even indices) as white ink on black,
  B the other digits (odd indices) inverted and tinted: dark crimson ink on amber paper. A
  classifier tells the domains apart at a glance; the translation must keep each digit's shape
  while remapping ink and background.

Training augmentation (paper sec. 7.1, official `--preprocess resize_and_crop`): with
`data.load_size` > resolution each image is resized to load_size² and a random resolution² crop
is taken; `data.flip` adds random horizontal flips. Both are drawn per example by grain's
random_map (seeded by the data seed and the example's position, so a resumed run sees the same
crops). Grids and scripts/translate.py read the deterministic centre crop.
"""
from __future__ import annotations

from typing import Any, Sequence

import grain
import numpy as np
from ml_collections import ConfigDict

from gan_jax.blocks import BLOCKS, Block
from gan_jax.data import DATASETS, ArraySource, Dataset
from gan_jax.data.digits import digit_images
from gan_jax.data.folder import folder_source
from gan_jax.data.images import center_crop, preprocess
from gan_jax.data.tfds_source import open_tfds
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec

DOMAINS = ("a", "b")
# digits_pair's domain B: ink and paper colours (RGB in [0, 1]).
INK_B = np.array([0.45, 0.05, 0.15], np.float32)
PAPER_B = np.array([1.0, 0.85, 0.55], np.float32)


class UnpairedSource:
  """Random access over two domains. Item i = {"a": a[i mod |A|], "b": b[i mod |B|]}: an aligned
  view for fixed inputs (grids); training reads `shuffled`."""

  def __init__(self, a: Sequence[Any], b: Sequence[Any]):
    self.domains = {"a": a, "b": b}

  def __len__(self) -> int:
    return max(len(s) for s in self.domains.values())

  def __getitem__(self, i: int) -> dict:
    return {k: s[i % len(s)] for k, s in self.domains.items()}

  @property
  def skipped(self) -> set:
    """Undecodable image files of folder domains (the trainer logs their number)."""
    return set().union(*(getattr(s, "skipped", set()) for s in self.domains.values()))

  def shuffled(self, seed: int) -> grain.MapDataset:
    """Infinite MapDataset of {"a", "b"}: each domain reshuffled every epoch with its own seed."""
    parts = [grain.MapDataset.source(s).shuffle(seed=seed + i).repeat() for i, s in enumerate(self.domains.values())]
    return grain.experimental.ZipMapDataset(parts).map(lambda items: dict(zip(self.domains, items)))


def random_crop_flip(image: np.ndarray, size: int, flip: bool, rng: np.random.Generator) -> np.ndarray:
  """A random size x size crop of image [H, W, C], mirrored left-right with probability ½ if `flip`."""
  h, w = image.shape[:2]
  top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
  out = image[top:top + size, left:left + size]
  return out[:, ::-1] if flip and rng.random() < 0.5 else out


def require(c: ConfigDict, *keys: str) -> None:
  """ConfigError when `data` lacks keys of the "crop" or "two_domain" blocks (gan_jax/blocks.py): the
  model's training kind does not read them."""
  missing = [f"data.{k}" for k in keys if k not in c]
  if missing:
    raise ConfigError(f"data.name={c.name!r} reads {', '.join(missing)}, which the model's training kind has not; "
                      "use it with a model that trains on two domains or on text (cyclegan, stackgan)")


def unpaired_dataset(a: Sequence[Any], b: Sequence[Any], to_image, c: ConfigDict, channels: int) -> Dataset:
  """A two-domain Dataset from raw sources; `to_image(raw)` -> float32 [S, S, C] with S = load_size or
  resolution (augmentation, see the module docstring)."""
  require(c, "load_size", "flip")
  res = c.resolution
  size = c.load_size or res
  if size < res:
    raise ConfigError(f"data.load_size={size} must be 0 or >= data.resolution={res}")

  def transform(example: dict) -> dict:
    return {k: np.ascontiguousarray(center_crop(to_image(example[k]), res)) for k in DOMAINS}

  flip = c.flip

  def train_transform(example: dict, rng: np.random.Generator) -> dict:
    return {k: np.ascontiguousarray(random_crop_flip(to_image(example[k]), res, flip, rng)) for k in DOMAINS}

  return Dataset(UnpairedSource(a, b), transform, DataSpec("image", (res, res, channels)),
                 train_transform=train_transform if size > res or flip else None)


@DATASETS.register("cycle_gan")
def cycle_gan(c: ConfigDict) -> Dataset:
  if not c.tfds_name:
    raise ConfigError("data.name=cycle_gan needs --config.data.tfds_name=NAME (horse2zebra, monet2photo, "
                      "apple2orange, summer2winter_yosemite, ...: the TFDS cycle_gan configs)")
  require(c, "load_size", "flip")
  name = c.tfds_name if "/" in c.tfds_name else f"cycle_gan/{c.tfds_name}"
  a, b = (open_tfds(name, c, split=f"{c.split}{d}") for d in ("A", "B"))
  channels = c.channels or 3
  size = c.load_size or c.resolution
  return unpaired_dataset(a, b, lambda ex: preprocess(ex["image"], size, channels), c, channels)


@DATASETS.register("folder_pair")
def folder_pair(c: ConfigDict) -> Dataset:
  require(c, "load_size", "flip", "path_a", "path_b")
  channels = c.channels or 3
  size = c.load_size or c.resolution
  a, b = (folder_source(c[f"path_{d}"], channels, size, key=f"data.path_{d}") for d in DOMAINS)
  return unpaired_dataset(a, b, lambda ex: ex["x"], c, channels)


def digit_domains(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """digits_pair's images (float32 [N, r, r, 3] in [-1, 1]) and digit labels: (a, labels_a, b, labels_b)."""
  x, labels = digit_images(resolution, 1)
  ink = (x + 1.0) / 2.0                                      # 0 = background, 1 = full stroke
  a = np.repeat(x[0::2], 3, axis=-1)
  b = (PAPER_B + ink[1::2] * (INK_B - PAPER_B)) * 2.0 - 1.0
  return a, labels[0::2], b.astype(np.float32), labels[1::2]


@DATASETS.register("digits_pair")
def digits_pair(c: ConfigDict) -> Dataset:
  require(c, "load_size", "flip")
  if c.channels not in (0, 3):
    raise ConfigError("data.name=digits_pair is RGB (its domains differ in colour); leave data.channels at 0 or 3")
  size = c.load_size or c.resolution
  a, labels_a, b, labels_b = digit_domains(size)
  return unpaired_dataset(ArraySource(x=a, label=labels_a), ArraySource(x=b, label=labels_b), lambda ex: ex["x"],
                          c, 3)


# data.name=folder_pair: the two domains' image folders (unpaired).
BLOCKS.register("two_domain")(Block("data", lambda: {"path_a": "", "path_b": ""}))
# Random crops: resize to `load_size`, then crop data.resolution (0 = off; random in training,
# centred otherwise), with random horizontal flips in training when `flip` (two-domain and text data).
BLOCKS.register("crop")(Block("data", lambda: {"load_size": 0, "flip": False}))
