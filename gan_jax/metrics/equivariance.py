"""Translation equivariance of a generator, EQ-T and EQ-T_frac (Karras et al. 2021, "Alias-Free
Generative Adversarial Networks", appendix E.1-E.2; NVlabs/stylegan3 `metrics/equivariance.py`).

EQ-T = 10 log10(I_max² / MSE) with I_max = 2 (images in [-1, 1]): the MSE between the image of the
Fourier features translated by t (the synthesis network's user transform, M[:2, 2] = -t) and
the untranslated image shifted by t, over the pixels the shifted image defines (the valid mask),
pooled over all samples (sums of squared errors and of mask pixels, then the ratio).
t is uniform in [-translate_max, translate_max]² (in image widths, 0.125 officially), one per
batch: rounded to whole pixels for EQ-T (the shift is exact), fractional for EQ-T_frac (the
shift is Lanczos-3 interpolation, which is exact only for band-limited content).

Images are [B, H, W, C]; the translations are numpy on the host (the metric runs offline).
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np


def integer_translation(x: np.ndarray, tx: float, ty: float) -> tuple[np.ndarray, np.ndarray]:
  """x shifted by (round(tx·W), round(ty·H)) pixels (content moves right/down for t > 0) with
  zeros where nothing is shifted in; returns (shifted, mask of the defined pixels)."""
  x = np.asarray(x)
  _, h, w, _ = x.shape
  ix, iy = int(np.rint(tx * w)), int(np.rint(ty * h))
  z, m = np.zeros_like(x), np.zeros_like(x)
  if abs(ix) < w and abs(iy) < h:
    z[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = x[:, max(-iy, 0):h + min(-iy, 0),
                                                                   max(-ix, 0):w + min(-ix, 0)]
    m[:, max(iy, 0):h + min(iy, 0), max(ix, 0):w + min(ix, 0)] = 1
  return z, m


def _lanczos_taps(frac: float, a: int) -> np.ndarray:
  """Normalized Lanczos-a weights L(j - frac), j = -(a-1)..a, of z[n] = sum_j x[n - i - j] L(j - frac)."""
  j = np.arange(-(a - 1), a + 1, dtype=np.float64)
  taps = np.sinc(j - frac) * np.sinc((j - frac) / a)
  return taps / taps.sum()


def _shift_axis(x: np.ndarray, t: float, a: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
  n = x.shape[axis]
  i = int(np.floor(t))
  taps = _lanczos_taps(t - i, a)
  out = np.zeros(x.shape, np.float64)
  valid = np.zeros(n, bool)
  for p in range(n):
    src = p - i - np.arange(-(a - 1), a + 1)
    ok = (src >= 0) & (src < n)
    valid[p] = ok.all()
    if ok.any():
      idx = [slice(None)] * x.ndim
      idx[axis] = p
      out[tuple(idx)] = np.tensordot(np.take(x, src[ok], axis=axis), taps[ok], axes=([axis], [0]))
  return out, valid


def fractional_translation(x: np.ndarray, tx: float, ty: float, a: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """x shifted by (tx·W, ty·H) pixels with separable Lanczos-`a` interpolation (appendix E.2);
  the mask holds the pixels whose whole 2a-tap footprint lies inside the image."""
  x = np.asarray(x, np.float64)
  _, h, w, _ = x.shape
  y, vx = _shift_axis(x, tx * w, a, axis=2)
  y, vy = _shift_axis(y, ty * h, a, axis=1)
  mask = (vy[:, None] & vx[None, :])[None, :, :, None] * np.ones_like(x)
  return y * mask, mask


def masked_psnr(ref: np.ndarray, img: np.ndarray, mask: np.ndarray, peak: float = 2.0) -> float:
  """10 log10(peak² / MSE) over the mask (appendix E: peak 2 for images in [-1, 1])."""
  sq = np.sum(np.square(np.asarray(ref, np.float64) - np.asarray(img, np.float64)) * mask)
  return float(20 * np.log10(peak) - 10 * np.log10(sq / np.sum(mask)))


def translation_equivariance(synthesize: Callable[[jax.Array, np.ndarray], jax.Array], ws: list[jax.Array],
                             key: jax.Array, translate_max: float = 0.125, fractional: bool = False) -> float:
  """EQ-T (or EQ-T_frac) in dB of `synthesize(ws, transform [3, 3]) -> images [B, R, R, C]` over
  the batches `ws` ([B, num_ws, w_dim] each, a fresh t per batch from `key`)."""
  sq = count = 0.0
  for i, w in enumerate(ws):
    t = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (2,), minval=-translate_max, maxval=translate_max))
    orig = np.asarray(synthesize(w, np.eye(3, dtype=np.float32)))
    res = orig.shape[2]
    if not fractional:
      t = np.rint(t * res) / res
    m = np.eye(3, dtype=np.float32)
    m[:2, 2] = -t
    img = np.asarray(synthesize(w, m), np.float64)
    ref, mask = (fractional_translation if fractional else integer_translation)(orig, t[0], t[1])
    sq += float(np.sum(np.square(ref - img) * mask))
    count += float(np.sum(mask))
  return float(20 * np.log10(2.0) - 10 * np.log10(sq / count))
