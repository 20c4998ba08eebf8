"""Custom data: every PNG/JPEG file under `data.path` (recursively), centre-cropped to a
square and resized to `data.resolution`, RGB unless `data.channels=1`.

Bad files never stop a run. Images of another size or channel layout (grey, RGBA, palette,
CMYK) are converted like the others. Files that are not readable images at all (empty, not an
image, unreadable permissions) are found when the dataset is built, from their headers, and left
out with a count and an example on stderr; when none is left, exit 2. A file whose header reads
but whose pixels do not (a truncated download) is found when first read: the next readable
image of the folder takes its place (so the data order stays a function of `data.seed`), a
warning names it once, and the trainer logs their number as `data_skipped`.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict
from PIL import Image, UnidentifiedImageError

from gan_jax.data import DATASETS, Dataset
from gan_jax.data.images import preprocess
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(path: str) -> list[str]:
  root = Path(path)
  return sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(path: str, channels: int) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert("L" if channels == 1 else "RGB"))


_BAD = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def readable_header(path: str) -> bool:
  try:
    with Image.open(path) as im:
      im.size  # noqa: B018 - parsing the header is the check
    return True
  except _BAD:
    return False


def _decodes(path: str, channels: int) -> bool:
  try:
    load_image(path, channels)
    return True
  except _BAD:
    return False


class FolderSource:
  """Random access over image files; undecodable ones are replaced by the next readable file."""

  def __init__(self, files: list[str], channels: int, resolution: int):
    self.files, self.channels, self.resolution = files, channels, resolution
    self.skipped: set[str] = set()     # files whose pixels could not be decoded
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> dict:
    for k in range(len(self.files)):
      path = self.files[(i + k) % len(self.files)]
      if path in self.skipped:
        continue
      try:
        return {"x": preprocess(load_image(path, self.channels), self.resolution, self.channels)}
      except _BAD as e:
        with self._lock:
          if path not in self.skipped:
            self.skipped.add(path)
            warnings.warn(f"skipping {path}: cannot decode it ({e}); the next readable image takes its place",
                          stacklevel=2)
    raise RuntimeError(f"no image under {os.path.dirname(self.files[0])} can be decoded any more")


@DATASETS.register("folder")
def folder(c: ConfigDict) -> Dataset:
  """`data.channels` 0 keeps the folder's own layout: grey when every image is (its first 64, by their
  headers), else RGB."""
  channels = c.channels or (own_channels(list_images(c.path)) if c.path and os.path.isdir(c.path) else 3)
  return Dataset(folder_source(c.path, channels, c.resolution), transform=dict,
                 spec=DataSpec("image", (c.resolution, c.resolution, channels)))


def own_channels(files: list[str], probe: int = 64) -> int:
  """1 when the readable images among the first `probe` files are all single-channel (PIL modes L, I,
  F, 1), else 3."""
  modes = set()
  for f in files[:probe]:
    try:
      with Image.open(f) as im:
        modes.add(im.mode)
    except (OSError, ValueError, SyntaxError):
      continue
  return 1 if modes and modes <= {"L", "I", "I;16", "F", "1"} else 3


def folder_source(path: str, channels: int, resolution: int, key: str = "data.path") -> FolderSource:
  """The readable images under `path` (`key`: the config key named in errors)."""
  if not path:
    raise ConfigError(f"data.name={'folder' if key == 'data.path' else 'folder_pair'} needs --config.{key}=DIR "
                      "(a folder of PNG/JPEG images)")
  if not os.path.isdir(path):
    raise ConfigError(f"{key} {path!r} is not a folder")
  if not os.access(path, os.R_OK | os.X_OK):
    raise ConfigError(f"{key} {path!r} is not readable")
  files = list_images(path)
  if not files:
    raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {key} {path!r}")
  good = [f for f in files if readable_header(f)]
  # Fail now, not at step 1, when no file can be decoded at all (stops at the first that can).
  if not any(_decodes(f, channels) for f in good):
    raise ConfigError(f"no usable image under {key} {path!r}: none of its {len(files)} files "
                      f"{'can be decoded' if good else 'is a readable image'} (e.g. {(good or files)[0]})")
  if len(good) < len(files):   # said once the folder is known to be usable (an error stays one line)
    bad = sorted(set(files) - set(good))
    print(f"gan_jax: skipped {len(bad)} of {len(files)} files under {path} that are not readable images "
          f"(e.g. {bad[0]})", file=sys.stderr)
  return FolderSource(good, channels, resolution)
