"""Custom data: every PNG/JPEG file under `data.path` (recursively), centre-cropped to a
square and resized to `data.resolution`, RGB unless `data.channels=1`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict
from PIL import Image, UnidentifiedImageError

from gan_jax.config import ConfigError
from gan_jax.data import DATASETS, Dataset
from gan_jax.data.images import preprocess
from gan_jax.models import DataSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(path: str) -> list[str]:
  root = Path(path)
  return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: str, channels: int) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert("L" if channels == 1 else "RGB"))


class FolderSource:
  def __init__(self, files: list[str], channels: int, resolution: int):
    self.files, self.channels, self.resolution = files, channels, resolution

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> dict:
    return {"x": preprocess(load_image(self.files[i], self.channels), self.resolution, self.channels)}


@DATASETS.register("folder")
def folder(c: ConfigDict) -> Dataset:
  if not c.path:
    raise ConfigError("data.name=folder needs --config.data.path=DIR (a folder of PNG/JPEG images)")
  if not os.path.isdir(c.path):
    raise ConfigError(f"data.path {c.path!r} is not a folder")
  if not os.access(c.path, os.R_OK | os.X_OK):
    raise ConfigError(f"data.path {c.path!r} is not readable")
  files = list_images(c.path)
  if not files:
    raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under data.path {c.path!r}")
  channels = c.channels or 3
  # Fail now, not at step 1, when the files cannot be decoded at all.
  for f in files[:8]:
    try:
      load_image(f, channels)
      break
    except (OSError, UnidentifiedImageError, ValueError):
      continue
  else:
    raise ConfigError(f"none of the first {min(8, len(files))} images under {c.path!r} can be decoded "
                      f"(e.g. {files[0]})")
  return Dataset(FolderSource(files, channels, c.resolution), transform=dict,
                 spec=DataSpec("image", (c.resolution, c.resolution, channels)))
