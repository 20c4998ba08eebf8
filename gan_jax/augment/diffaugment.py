"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The three policies of the paper (sec. 3, and mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py),
for NHWC images in [-1, 1], each a function of the input that is linear (translation, cutout) or
affine (color), hence differentiable with respect to the images:

  color        brightness x + (u - 0.5); saturation (x - mean_c x)·2u + mean_c x (mean over
               channels, per pixel); contrast (x - mean x)·(u + 0.5) + mean x (mean over the
               whole image); u ~ U[0, 1) per image, one draw for each of the three.
  translation  an integer shift of up to round(1/8 of the side) pixels in each axis, uniform
               in [-s, s], the vacated pixels zero (the official code's zero padding).
  cutout       a zero square of half the side (round(side/2)) at a uniform integer offset, clipped
               to the image (the official code's offset range and clamping).

`p` (not in the paper, where every image gets every op): each op applies to each image with
probability p, so p = 1 is the official DiffAugment and p = 0 the identity.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")


def _gate(key: jax.Array, p: jax.Array, n: int) -> jax.Array:
  """[n, 1, 1, 1] booleans: whether each image gets the op (u < p)."""
  return (jax.random.uniform(key, (n,)) < p)[:, None, None, None]


def color(key: jax.Array, x: jax.Array, p: jax.Array) -> jax.Array:
  n = x.shape[0]
  k = jax.random.split(key, 6)
  u = [jax.random.uniform(k[i], (n, 1, 1, 1), x.dtype) for i in range(3)]
  y = x + (u[0] - 0.5)                                    # rand_brightness
  x = jnp.where(_gate(k[3], p, n), y, x)
  mean = jnp.mean(x, axis=3, keepdims=True)
  y = (x - mean) * (u[1] * 2) + mean                      # rand_saturation
  x = jnp.where(_gate(k[4], p, n), y, x)
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  y = (x - mean) * (u[2] + 0.5) + mean                    # rand_contrast
  return jnp.where(_gate(k[5], p, n), y, x)


def translation(key: jax.Array, x: jax.Array, p: jax.Array, ratio: float = 0.125) -> jax.Array:
  """out[i, j] = x[i + ty, j + tx] inside the image, 0 outside."""
  n, h, w, _ = x.shape
  sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k = jax.random.split(key, 3)
  ty = jax.random.randint(k[0], (n,), -sh, sh + 1)
  tx = jax.random.randint(k[1], (n,), -sw, sw + 1)
  rows = jnp.arange(h)[None, :] + ty[:, None]             # [n, h]
  cols = jnp.arange(w)[None, :] + tx[:, None]             # [n, w]
  valid = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])[..., None]
  gathered = jax.vmap(lambda im, r, c: im[jnp.clip(r, 0, h - 1)][:, jnp.clip(c, 0, w - 1)])(x, rows, cols)
  y = jnp.where(valid, gathered, jnp.zeros_like(x))
  return jnp.where(_gate(k[2], p, n), y, x)


def cutout(key: jax.Array, x: jax.Array, p: jax.Array, ratio: float = 0.5) -> jax.Array:
  n, h, w, _ = x.shape
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  k = jax.random.split(key, 3)
  oy = jax.random.randint(k[0], (n,), 0, h + (1 - ch % 2))
  ox = jax.random.randint(k[1], (n,), 0, w + (1 - cw % 2))
  y0, x0 = oy - ch // 2, ox - cw // 2                     # the square is rows y0..y0+ch-1 (clipped)
  r, c = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
  in_r = (r >= y0[:, None]) & (r < (y0 + ch)[:, None])
  in_c = (c >= x0[:, None]) & (c < (x0 + cw)[:, None])
  mask = ~(in_r[:, :, None] & in_c[:, None, :])
  y = x * mask[..., None].astype(x.dtype)
  return jnp.where(_gate(k[2], p, n), y, x)


OPS = {"color": color, "translation": translation, "cutout": cutout}


def diffaugment(key: jax.Array, x: jax.Array, p: jax.Array | float, policy: tuple[str, ...] = POLICIES) -> jax.Array:
  """Applies the policies in order (the official order: color, translation, cutout)."""
  p = jnp.asarray(p, jnp.float32)
  for i, name in enumerate(policy):
    x = OPS[name](jax.random.fold_in(key, i), x, p)
  return x
