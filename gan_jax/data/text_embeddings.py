"""Images with text embeddings in the layout the official StackGAN code distributes (`text_embeddings`).

`data.path` = DIR, the official data folder (StackGAN's Data/birds or Data/flowers), `data.split` =
train or test:

    DIR/<split>/char-CNN-RNN-embeddings.pickle   [N, 10, 1024]: 10 caption embeddings per image (Reed et
                                                 al. 2016's char-CNN-RNN), a pickled list or array
    DIR/<split>/filenames.pickle                 the N image keys, e.g. 002.Laysan_Albatross/..._0002_545
    DIR/CUB_200_2011/images/<key>.jpg            CUB-200-2011 images (with CUB_200_2011/bounding_boxes.txt
                                                 and images.txt: cropped around the bird as the official
                                                 code does, a square of 1.5x the box's longer side)
    or DIR/<key>.jpg, DIR/images/<key>.jpg       Oxford-102 (keys jpg/image_00001) and other data

Pickles written by Python 2 (the distributed ones) are read with latin-1 decoding. Examples are
{"x": [R, R, C] in [-1, 1], "embedding": [1024] float32}. As the official loader: each image is resized
(bilinear) to `data.load_size` (default R·76/64), then cropped to R (random with a random horizontal
flip in training when `data.flip`, centred otherwise), and training draws one of its 10 captions at
random (the deterministic transform takes the first). A missing file stops with one line naming what
goes where (exit 2).

Datasets with class labels and no text (digits, mnist, cifar10, ...) train StackGAN with class
embeddings instead (model.class_embedding; gan_jax/models/stackgan.py).
"""
from __future__ import annotations

import os
import pickle

import numpy as np
from ml_collections import ConfigDict
from PIL import Image

from gan_jax.data import DATASETS, Dataset
from gan_jax.data.images import center_crop, set_channels, to_model_range
from gan_jax.data.unpaired import random_crop_flip, require
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec

EMBEDDINGS = "char-CNN-RNN-embeddings.pickle"
FILENAMES = "filenames.pickle"
IMAGE_ROOTS = ("CUB_200_2011/images", "images", "")
LAYOUT = (f"<dir>/<split>/{EMBEDDINGS} and <dir>/<split>/{FILENAMES} (the official StackGAN preprocessed "
          "CUB/Oxford-102 data) and the images as <dir>/CUB_200_2011/images/<key>.jpg (CUB) or <dir>/<key>.jpg")


def _load_pickle(path: str):
  with open(path, "rb") as f:
    return pickle.load(f, encoding="latin1")   # the distributed pickles are Python 2's


def read_text_embeddings(split_dir: str) -> tuple[np.ndarray, list[str]]:
  """(embeddings float32 [N, K, T], the N image keys) from `split_dir` in the official layout."""
  for name in (EMBEDDINGS, FILENAMES):
    path = os.path.join(split_dir, name)
    if not os.path.exists(path):
      raise ConfigError(f"{path} not found: data.name=text_embeddings needs {LAYOUT}, with data.path=<dir>")
  embeddings = np.asarray(_load_pickle(os.path.join(split_dir, EMBEDDINGS)), np.float32)
  filenames = [f.decode() if isinstance(f, bytes) else str(f) for f in _load_pickle(os.path.join(split_dir, FILENAMES))]
  if embeddings.ndim == 2:          # one embedding per image
    embeddings = embeddings[:, None]
  if embeddings.ndim != 3 or len(embeddings) != len(filenames):
    raise ConfigError(f"{os.path.join(split_dir, EMBEDDINGS)}: expected [N, captions, dim] embeddings for the "
                      f"{len(filenames)} files of {FILENAMES}, got shape {embeddings.shape}")
  return embeddings, filenames


def read_bounding_boxes(root: str) -> dict[str, tuple[int, int, int, int]] | None:
  """CUB's boxes {key: (x, y, w, h)} from CUB_200_2011/{images,bounding_boxes}.txt, or None without them."""
  cub = os.path.join(root, "CUB_200_2011")
  images, boxes = os.path.join(cub, "images.txt"), os.path.join(cub, "bounding_boxes.txt")
  if not (os.path.exists(images) and os.path.exists(boxes)):
    return None
  with open(images) as f:
    names = {line.split()[0]: os.path.splitext(line.split()[1])[0] for line in f if line.strip()}
  with open(boxes) as f:
    return {names[p[0]]: tuple(int(float(v)) for v in p[1:5]) for p in (line.split() for line in f if line.strip())}


def bird_crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
  """The official crop: a square of half-side 0.75 · max(w, h) around the box centre, clipped to the image."""
  x, y, w, h = box
  r = int(max(w, h) * 0.75)
  cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
  width, height = image.size
  return image.crop((max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)))


class TextImageSource:
  """Item i: {"image": uint8 [L, L, C] (cropped, resized to load_size), "embeddings": float32 [K, T]}."""

  def __init__(self, paths: list[str], embeddings: np.ndarray, boxes: list | None, load_size: int, channels: int):
    self.paths, self.embeddings, self.boxes = paths, embeddings, boxes
    self.load_size, self.channels = load_size, channels

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, i: int) -> dict:
    image = Image.open(self.paths[i]).convert("RGB")
    if self.boxes is not None:
      image = bird_crop(image, self.boxes[i])
    image = np.asarray(image.resize((self.load_size, self.load_size), Image.BILINEAR))
    return {"image": set_channels(image, self.channels), "embeddings": self.embeddings[i]}


@DATASETS.register("text_embeddings")
def text_embeddings(c: ConfigDict) -> Dataset:
  if not c.path:
    raise ConfigError(f"data.name=text_embeddings needs --config.data.path=<dir> with {LAYOUT}")
  embeddings, keys = read_text_embeddings(os.path.join(c.path, c.split))
  root = next((r for r in IMAGE_ROOTS if keys and os.path.exists(os.path.join(c.path, r, keys[0] + ".jpg"))), None)
  if root is None:
    raise ConfigError(f"image {keys[0] if keys else '?'}.jpg not found under {c.path}: put the images as "
                      f"{c.path}/CUB_200_2011/images/<key>.jpg (CUB-200-2011) or {c.path}/<key>.jpg (Oxford-102)")
  paths = [os.path.join(c.path, root, k + ".jpg") for k in keys]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise ConfigError(f"{len(missing)} of the {len(paths)} images named in {c.path}/{c.split}/{FILENAMES} are "
                      f"missing, e.g. {missing[0]}")
  boxes = None
  if root.startswith("CUB_200_2011"):
    table = read_bounding_boxes(c.path)
    boxes = None if table is None else [table[k] for k in keys]
  require(c, "load_size", "flip")
  res, channels = c.resolution, c.channels or 3
  load_size = c.load_size or res * 76 // 64
  if load_size < res:
    raise ConfigError(f"data.load_size={load_size} must be 0 or >= data.resolution={res}")

  def transform(example: dict) -> dict:
    x = center_crop(example["image"], res)
    return {"x": to_model_range(np.ascontiguousarray(x)), "embedding": example["embeddings"][0]}

  flip = c.flip

  def train_transform(example: dict, rng: np.random.Generator) -> dict:
    x = random_crop_flip(example["image"], res, flip, rng)
    caption = rng.integers(0, len(example["embeddings"]))
    return {"x": to_model_range(np.ascontiguousarray(x)), "embedding": example["embeddings"][caption]}

  return Dataset(TextImageSource(paths, embeddings, boxes, load_size, channels), transform,
                 DataSpec("image", (res, res, channels)), train_transform=train_transform)
