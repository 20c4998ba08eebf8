"""Image preprocessing shared by the image sources: crop, resize, channels, scale to [-1, 1]."""
from __future__ import annotations

import numpy as np
from PIL import Image


def center_crop(img: np.ndarray, size: int = 0) -> np.ndarray:
  """Crops the centre `size`x`size` square (size 0: the largest square)."""
  h, w = img.shape[:2]
  s = size or min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  return img[top:top + s, left:left + s]


def resize(img: np.ndarray, resolution: int) -> np.ndarray:
  """Resizes a uint8 [H, W, C] image to resolution² (bicubic down, bilinear up) with PIL."""
  h, w, c = img.shape
  if (h, w) == (resolution, resolution):
    return img
  pil = Image.fromarray(img[..., 0] if c == 1 else img)
  filt = Image.BICUBIC if resolution < h else Image.BILINEAR
  out = np.asarray(pil.resize((resolution, resolution), filt))
  return out[..., None] if c == 1 else out


def set_channels(img: np.ndarray, channels: int) -> np.ndarray:
  """0 keeps the image's channels; 1 converts to luminance (ITU-R 601), 3 repeats grey."""
  c = img.shape[-1]
  if channels in (0, c):
    return img
  if channels == 3 and c == 1:
    return np.repeat(img, 3, axis=-1)
  if channels == 1 and c >= 3:
    lum = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(lum), 0, 255).astype(np.uint8)[..., None]
  raise ValueError(f"cannot convert {c} channels to {channels}")


def to_model_range(img: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return img.astype(np.float32) / 127.5 - 1.0


def preprocess(img: np.ndarray, resolution: int, channels: int, crop: int = 0) -> np.ndarray:
  img = np.asarray(img)
  if img.ndim == 2:
    img = img[..., None]
  img = set_channels(center_crop(img, crop), channels)
  return to_model_range(resize(img, resolution))
