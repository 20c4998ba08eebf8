"""The ADA augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data", sec. 2.3 and appendix B; NVlabs/stylegan2-ada-pytorch, training/augment.py).

Every transform is applied to each image independently with probability `p · strength` (the
official `torch.rand([B]) < self.<transform> * self.p`), with the official parameter
distributions; images NHWC in [-1, 1], 1 or 3 channels (other counts: geometric, filter and
corruption groups only). Groups (official names; `augpipe_specs`):

  blit    xflip (i ~ {0, 1}: x -> -x), rotate90 (i ~ {0..3}, by i·90°), xint (integer
          translation by round(t·side), t ~ U[-0.125, 0.125] per axis).
  geom    isotropic scale 2^N(0, 0.2²); pre-rotation θ ~ U[-π, π]; anisotropic scale
          (s, 1/s), s = 2^N(0, 0.2²); post-rotation; fractional translation N(0, 0.125²)·side.
          The two rotations each use p_rot = 1 - sqrt(1 - p·strength), so that P(pre or post) = p.
  color   brightness + N(0, 0.2²); contrast · 2^N(0, 0.5²); luma flip (reflection about the
          plane orthogonal to the luma axis v = (1, 1, 1)/√3, i ~ {0, 1}); hue rotation about v by
          U[-π, π]; saturation 2^N(0, 1) away from v. Composed into one 4x4 matrix per image
          (`C = M @ C` in that order); a 1-channel image uses the mean of the 3 rows, as the
          official code does.
  filter  image-space filtering: 4 frequency bands of the sym2-wavelet filter bank, band i's
          gain 2^N(0, 1) with probability p (each band separately), the gains normalized to keep
          the expected power of a 1/f spectrum (10, 1, 1, 1)/13; separable, reflect-padded.
  noise   additive Gaussian noise, σ = |N(0, 0.1²)| per image.
  cutout  a zero rectangle of half the side at a uniform centre (clipped to the image).

What differs from the official code, said exactly: the geometric group (blit and geom, composed
into one inverse affine matrix per image, `G_inv @ pixel_out -> pixel_in`, pixel-centred
coordinates with the origin at the image centre) is resampled with **bilinear** interpolation
from the image extended by **reflection** (index reflection without repeating the edge, the same
values as the official `F.pad(mode="reflect")`, for any distance), at the original resolution.
The official code instead 2x-upsamples with a sym6 wavelet low-pass, samples bilinearly and
2x-downsamples (anti-aliasing). Both are linear in the pixels, so differentiable; ours blurs
fractional transforms slightly more. Blit transforms land on pixel centres and are exact.

Identity at p = 0 is exact: every group's result is selected per image (`where`) only for images
that drew at least one of its transforms.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

GROUPS = {
    "blit": ("xflip", "rotate90", "xint"),
    "geom": ("scale", "rotate", "aniso", "xfrac"),
    "color": ("brightness", "contrast", "lumaflip", "hue", "saturation"),
    "filter": ("imgfilter",),
    "noise": ("noise",),
    "cutout": ("cutout",),
}
# The official spec strings that combine groups (augpipe_specs in stylegan2-ada-pytorch/train.py).
SPECS = {"bg": ("blit", "geom"), "bgc": ("blit", "geom", "color"), "bgcf": ("blit", "geom", "color", "filter"),
         "bgcfn": ("blit", "geom", "color", "filter", "noise"),
         "bgcfnc": ("blit", "geom", "color", "filter", "noise", "cutout")}
TRANSFORMS = tuple(t for g in GROUPS.values() for t in g)

# The official AugmentPipe defaults.
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0
IMGFILTER_STD, NOISE_STD, CUTOUT_SIZE = 1.0, 0.1, 0.5
# sym2 scaling (low-pass) filter: Daubechies' closed form (1 ± √3, 3 ± √3)/(4√2) in the ordering
# of PyWavelets' "sym2" decomposition filter.
SYM2 = np.array([1 - np.sqrt(3), 3 - np.sqrt(3), 3 + np.sqrt(3), 1 + np.sqrt(3)]) / (4 * np.sqrt(2))
EXPECTED_POWER = np.array([10.0, 1.0, 1.0, 1.0]) / 13.0   # 1/f power spectrum over the 4 bands


class _Draws:
  """A transform group's per-image random numbers, made in one uniform and one normal call: draw i of
  shape [n] or [n, k] is column i % 100 (value draws, i < 40) or 40 + i % 100 (the probability gates,
  i >= 100) of a [n, 48] table. One random-bits program per group instead of one per transform: the
  compiled program of an ADA pass (bg, color, cutout) shrinks from 13.7k to 4.6k HLO lines and its
  XLA:CPU compile from 5.5 s to 2.2 s. Each draw keeps its distribution; the columns are disjoint, so
  the draws stay independent."""

  def __init__(self, key: jax.Array, n: int):
    ku, kn = jax.random.split(key)
    self._u = jax.random.uniform(ku, (n, 48))
    self._n = jax.random.normal(kn, (n, 48))

  @staticmethod
  def _cols(table, i, shape):
    gate = i >= 100
    col = i % 100 + (40 if gate else 0)
    k = shape[1] if len(shape) > 1 else 1
    if col + k > (48 if gate else 40):   # would overlap the next block: draws no longer independent
      raise ValueError(f"ADA draw {i} of shape {shape} does not fit its block of the draw table")
    return table[:, col:col + k].reshape(shape)

  def uniform(self, i, shape):
    return self._cols(self._u, i, shape)

  def normal(self, i, shape):
    return self._cols(self._n, i, shape)


# ---- 2-D homogeneous matrices [B, 3, 3] (inverse transforms: output pixel -> input pixel) ----

def _mat3(rows):
  return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def scale2d(sx, sy):
  z, o = jnp.zeros_like(sx), jnp.ones_like(sx)
  return _mat3([[sx, z, z], [z, sy, z], [z, z, o]])


def translate2d(tx, ty):
  z, o = jnp.zeros_like(tx), jnp.ones_like(tx)
  return _mat3([[o, z, tx], [z, o, ty], [z, z, o]])


def rotate2d_cs(c, s):
  z, o = jnp.zeros_like(c), jnp.ones_like(c)
  return _mat3([[c, -s, z], [s, c, z], [z, z, o]])


def rotate2d(theta):
  return rotate2d_cs(jnp.cos(theta), jnp.sin(theta))


def _mm(a, b):
  return jnp.einsum("bij,bjk->bik", a, b, precision=jax.lax.Precision.HIGHEST)


def geometric_matrix(key: jax.Array, n: int, p: jax.Array, strength: dict, width: int, height: int):
  """(G_inv [n, 3, 3], applied [n]): the composed inverse transform of the blit and geom groups
  (the official order), and whether an image drew any of them."""
  g_inv = jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (n, 3, 3))
  applied = jnp.zeros((n,), bool)
  draws = _Draws(key, n)

  def gate(i, name):
    return draws.uniform(100 + i, (n,)) < strength.get(name, 0.0) * p

  if strength.get("xflip", 0) > 0:
    on = gate(0, "xflip") & (jnp.floor(draws.uniform(0, (n,)) * 2) > 0)
    g_inv = _mm(g_inv, scale2d(jnp.where(on, -1.0, 1.0), jnp.ones((n,))))
    applied |= on
  if strength.get("rotate90", 0) > 0:
    i = jnp.where(gate(1, "rotate90"), jnp.floor(draws.uniform(1, (n,)) * 4).astype(jnp.int32), 0)
    # rotate2d_inv(-π/2·i) = rotate2d(π/2·i), with exact cosines and sines of multiples of 90°.
    c, s = jnp.array([1.0, 0.0, -1.0, 0.0])[i], jnp.array([0.0, 1.0, 0.0, -1.0])[i]
    g_inv = _mm(g_inv, rotate2d_cs(c, s))
    applied |= i > 0
  if strength.get("xint", 0) > 0:
    on = gate(2, "xint")
    t = (draws.uniform(2, (n, 2)) * 2 - 1) * XINT_MAX
    t = jnp.where(on[:, None], t, 0.0)
    g_inv = _mm(g_inv, translate2d(-jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height)))
    applied |= on
  if strength.get("scale", 0) > 0:
    on = gate(3, "scale")
    s = jnp.where(on, jnp.exp2(draws.normal(3, (n,)) * SCALE_STD), 1.0)
    g_inv = _mm(g_inv, scale2d(1 / s, 1 / s))
    applied |= on
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - strength.get("rotate", 0.0) * p, 0, 1))   # P(pre or post) = p
  if strength.get("rotate", 0) > 0:
    on = draws.uniform(104, (n,)) < p_rot
    theta = jnp.where(on, (draws.uniform(4, (n,)) * 2 - 1) * np.pi * ROTATE_MAX, 0.0)
    g_inv = _mm(g_inv, rotate2d(theta))                     # rotate2d_inv(-θ)
    applied |= on
  if strength.get("aniso", 0) > 0:
    on = gate(5, "aniso")
    s = jnp.where(on, jnp.exp2(draws.normal(5, (n,)) * ANISO_STD), 1.0)
    g_inv = _mm(g_inv, scale2d(1 / s, s))
    applied |= on
  if strength.get("rotate", 0) > 0:
    on = draws.uniform(106, (n,)) < p_rot
    theta = jnp.where(on, (draws.uniform(6, (n,)) * 2 - 1) * np.pi * ROTATE_MAX, 0.0)
    g_inv = _mm(g_inv, rotate2d(theta))
    applied |= on
  if strength.get("xfrac", 0) > 0:
    on = gate(7, "xfrac")
    t = jnp.where(on[:, None], draws.normal(7, (n, 2)) * XFRAC_STD, 0.0)
    g_inv = _mm(g_inv, translate2d(-t[:, 0] * width, -t[:, 1] * height))
    applied |= on
  return g_inv, applied


def reflect_index(i: jax.Array, n: int) -> jax.Array:
  """Index i of the infinitely reflected signal (edge not repeated: ... 2 1 0 1 2 ... n-2 n-1 n-2 ...)."""
  if n == 1:
    return jnp.zeros_like(i)
  period = 2 * (n - 1)
  m = jnp.mod(i, period)
  return jnp.where(m < n, m, period - m)


def resample(images: jax.Array, g_inv: jax.Array) -> jax.Array:
  """out[b, pixel] = bilinear sample of images[b] (reflect-extended) at G_inv[b] @ pixel, in
  pixel-centred coordinates with the origin at the image centre."""
  _, h, w, _ = images.shape
  xs = jnp.arange(w, dtype=jnp.float32) + 0.5 - w / 2
  ys = jnp.arange(h, dtype=jnp.float32) + 0.5 - h / 2
  gx, gy = jnp.meshgrid(xs, ys)                              # [h, w]

  def one(img, m):
    sx = m[0, 0] * gx + m[0, 1] * gy + m[0, 2] + w / 2 - 0.5   # continuous source index
    sy = m[1, 0] * gx + m[1, 1] * gy + m[1, 2] + h / 2 - 0.5
    x0, y0 = jnp.floor(sx), jnp.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    xa, xb = reflect_index(x0, w), reflect_index(x0 + 1, w)
    ya, yb = reflect_index(y0, h), reflect_index(y0 + 1, h)
    top = img[ya, xa] * (1 - wx) + img[ya, xb] * wx
    bottom = img[yb, xa] * (1 - wx) + img[yb, xb] * wx
    return top * (1 - wy) + bottom * wy

  return jax.vmap(one)(images, g_inv).astype(images.dtype)


# ---- color: 4x4 matrices acting on (r, g, b, 1) ----

LUMA = np.array([1.0, 1.0, 1.0, 0.0]) / np.sqrt(3)


def color_matrix(key: jax.Array, n: int, p: jax.Array, strength: dict):
  """(C [n, 4, 4], applied [n]) in the official order: brightness, contrast, luma flip, hue, saturation."""
  c = jnp.broadcast_to(jnp.eye(4, dtype=jnp.float32), (n, 4, 4))
  applied = jnp.zeros((n,), bool)
  draws = _Draws(key, n)
  eye = jnp.eye(4, dtype=jnp.float32)
  v = jnp.asarray(LUMA, jnp.float32)
  vv = jnp.outer(v, v)

  def gate(i, name):
    return draws.uniform(200 + i, (n,)) < strength.get(name, 0.0) * p

  def batch(m):
    return jnp.broadcast_to(m, (n, 4, 4))

  if strength.get("brightness", 0) > 0:
    on = gate(0, "brightness")
    b = jnp.where(on, draws.normal(10, (n,)) * BRIGHTNESS_STD, 0.0)
    m = batch(eye).at[:, :3, 3].set(b[:, None])
    c, applied = _mm(m, c), applied | on
  if strength.get("contrast", 0) > 0:
    on = gate(1, "contrast")
    s = jnp.where(on, jnp.exp2(draws.normal(11, (n,)) * CONTRAST_STD), 1.0)
    m = batch(eye) * jnp.concatenate([jnp.broadcast_to(s[:, None], (n, 3)), jnp.ones((n, 1))], 1)[:, None, :]
    c, applied = _mm(m, c), applied | on
  if strength.get("lumaflip", 0) > 0:
    on = gate(2, "lumaflip") & (jnp.floor(draws.uniform(12, (n,)) * 2) > 0)
    m = eye[None] - 2 * vv[None] * on[:, None, None].astype(jnp.float32)
    c, applied = _mm(m, c), applied | on
  if strength.get("hue", 0) > 0:
    on = gate(3, "hue")
    theta = jnp.where(on, (draws.uniform(13, (n,)) * 2 - 1) * np.pi * HUE_MAX, 0.0)
    # Rodrigues: R = cos θ I + sin θ [v]x + (1 - cos θ) v vᵀ on the rgb block.
    cos, sin = jnp.cos(theta)[:, None, None], jnp.sin(theta)[:, None, None]
    cross = jnp.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    rgb = cos * jnp.eye(3) + sin * cross + (1 - cos) * vv[:3, :3]
    m = batch(eye).at[:, :3, :3].set(rgb)
    c, applied = _mm(m, c), applied | on
  if strength.get("saturation", 0) > 0:
    on = gate(4, "saturation")
    s = jnp.where(on, jnp.exp2(draws.normal(14, (n,)) * SATURATION_STD), 1.0)
    m = vv[None] + (eye - vv)[None] * s[:, None, None]
    c, applied = _mm(m, c), applied | on
  return c, applied


def apply_color(images: jax.Array, c: jax.Array) -> jax.Array:
  n, h, w, ch = images.shape
  flat = images.reshape(n, h * w, ch).astype(jnp.float32)
  if ch == 3:
    out = jnp.einsum("bpj,bij->bpi", flat, c[:, :3, :3], precision=jax.lax.Precision.HIGHEST) + c[:, None, :3, 3]
  elif ch == 1:
    rows = jnp.mean(c[:, :3, :], axis=1)                     # [n, 4]
    out = flat * jnp.sum(rows[:, :3], axis=1)[:, None, None] + rows[:, None, 3:]
  else:
    raise ValueError(f"the ADA color group needs 1 or 3 channels, got {ch}")
  return out.reshape(images.shape).astype(images.dtype)


# ---- image-space filtering ----

@functools.lru_cache(maxsize=None)
def filter_bank() -> np.ndarray:
  """[4, taps]: the band-pass filters of the 4 octave bands built from sym2 (appendix B): band 0
  the lowest, band 3 the highest; the rows sum to a unit impulse."""
  lo = SYM2
  hi = lo * (-1.0) ** np.arange(lo.size)
  lo2, hi2 = np.convolve(lo, lo[::-1]) / 2, np.convolve(hi, hi[::-1]) / 2
  bank = np.eye(4, 1)
  for i in range(1, 4):
    up = np.zeros((4, bank.shape[1] * 2 - 1))
    up[:, ::2] = bank                                        # upsample the bank by 2
    bank = np.stack([np.convolve(row, lo2) for row in up])
    start = (bank.shape[1] - hi2.size) // 2
    bank[i, start:start + hi2.size] += hi2
  return bank


def filter_gains(key: jax.Array, n: int, p: jax.Array, strength: float):
  """(gains [n, 4], applied [n]): each band amplified by 2^N(0, 1) with probability p·strength,
  then renormalized to the expected power (the official loop over bands)."""
  power = jnp.asarray(EXPECTED_POWER, jnp.float32)
  g = jnp.ones((n, 4))
  applied = jnp.zeros((n,), bool)
  draws = _Draws(key, n)
  for i in range(4):
    on = draws.uniform(300 + i, (n,)) < strength * p
    t_i = jnp.where(on, jnp.exp2(draws.normal(30 + i, (n,)) * IMGFILTER_STD), 1.0)
    t = jnp.ones((n, 4)).at[:, i].set(t_i)
    g = g * t / jnp.sqrt(jnp.sum(power * jnp.square(t), axis=-1, keepdims=True))
    applied |= on
  return g, applied


def apply_filter(images: jax.Array, gains: jax.Array) -> jax.Array:
  """Separable filtering of each image with its filter gains @ bank, reflect-extended."""
  bank = jnp.asarray(filter_bank(), jnp.float32)
  taps = gains @ bank                                         # [n, T]
  _, h, w, _ = images.shape
  half = bank.shape[1] // 2

  def along(img, f, axis, size):
    # out[j] = Σ_k f[k] · img[reflect(j + k - half)]: one gather of [taps, size] indices.
    idx = reflect_index(jnp.arange(size)[None, :] + jnp.arange(bank.shape[1])[:, None] - half, size)
    return jnp.tensordot(f, jnp.take(img, idx, axis=axis), axes=([0], [axis]),
                         precision=jax.lax.Precision.HIGHEST).reshape(img.shape)

  def one(img, f):
    return along(along(img, f, 0, h), f, 1, w)

  return jax.vmap(one)(images.astype(jnp.float32), taps).astype(images.dtype)


# ---- the pipeline ----

def ada_augment(key: jax.Array, images: jax.Array, p: jax.Array | float, strength: dict) -> jax.Array:
  """Augments a batch [B, H, W, C] with probability p; `strength`: transform name -> multiplier
  (the AugmentPipe arguments; absent = 0, off)."""
  p = jnp.asarray(p, jnp.float32)
  n, h, w, ch = images.shape
  keys = jax.random.split(key, 5)
  if any(strength.get(t, 0) > 0 for t in GROUPS["blit"] + GROUPS["geom"]):
    g_inv, on = geometric_matrix(keys[0], n, p, strength, w, h)
    images = jnp.where(on[:, None, None, None], resample(images, g_inv), images)
  if any(strength.get(t, 0) > 0 for t in GROUPS["color"]):
    c, on = color_matrix(keys[1], n, p, strength)
    images = jnp.where(on[:, None, None, None], apply_color(images, c), images)
  if strength.get("imgfilter", 0) > 0:
    gains, on = filter_gains(keys[2], n, p, strength["imgfilter"])
    images = jnp.where(on[:, None, None, None], apply_filter(images, gains), images)
  if strength.get("noise", 0) > 0:
    draws = _Draws(keys[3], n)
    on = draws.uniform(0, (n,)) < strength["noise"] * p
    sigma = jnp.where(on, jnp.abs(draws.normal(1, (n,))) * NOISE_STD, 0.0)[:, None, None, None]
    noisy = images + jax.random.normal(jax.random.fold_in(keys[3], 2), images.shape).astype(images.dtype) * sigma
    images = jnp.where(on[:, None, None, None], noisy, images)
  if strength.get("cutout", 0) > 0:
    draws = _Draws(keys[4], n)
    on = draws.uniform(0, (n,)) < strength["cutout"] * p
    size = jnp.where(on, CUTOUT_SIZE, 0.0)[:, None]
    centre = draws.uniform(1, (n, 2))
    cx = (jnp.arange(w) + 0.5) / w
    cy = (jnp.arange(h) + 0.5) / h
    keep_x = jnp.abs(cx[None, :] - centre[:, :1]) >= size / 2          # [n, w]
    keep_y = jnp.abs(cy[None, :] - centre[:, 1:]) >= size / 2          # [n, h]
    mask = keep_y[:, :, None] | keep_x[:, None, :]
    images = jnp.where(on[:, None, None, None], images * mask[..., None].astype(images.dtype), images)
  return images
