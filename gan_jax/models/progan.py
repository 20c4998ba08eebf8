"""ProGAN, Karras, Aila, Laine & Lehtinen 2018 ("Progressive Growing of GANs for Improved Quality,
Stability, and Variation", ICLR 2018), the networks of the paper as the official code defines them
(github.com/tkarras/progressive_growing_of_gans, `networks.py` `G_paper` / `D_paper`). Images are
NHWC here, NCHW there.

Widths: nf(s) = min(fmap_base / 2^(s·fmap_decay), fmap_max); the block of resolution 2^r has nf(r-1)
feature maps (CelebA-HQ 1024: 512 up to 32x32, then 256, 128, 64, 32, 16).

G: z (512-d normal) -> pixel norm -> 4x4 block (dense to 4x4·nf(1) with gain sqrt(2)/4, a 3x3 conv)
-> per resolution 8x8 ... R: 2x nearest upsampling + 3x3 conv, 3x3 conv. Every conv and the dense
are followed by bias, leaky ReLU 0.2 and pixel norm (sec. 4.2). ToRGB: a 1x1 conv (gain 1) per
resolution, linear output (no tanh).
D: FromRGB (1x1 conv, leaky ReLU) per resolution -> per resolution R ... 8x8: 3x3 conv, 3x3 conv to
nf(r-2) followed by 2x2 box downsampling -> 4x4 block: minibatch standard deviation (sec. 3, group
size 4), 3x3 conv, dense to nf(0), dense to 1 logit (gain 1). Leaky ReLU 0.2 everywhere.
Equalized learning rate (sec. 4.1, `get_weight(use_wscale=True)`): every weight is stored ~ N(0, 1)
and multiplied at run time by gain/sqrt(fan_in), gain sqrt(2) unless stated; biases start at 0.
The official `upscale2d_conv2d` / `conv2d_downscale2d` fuse the resampling into the convolutions
(a transposed / strided conv with the summed 4x4 kernel); they compute the same functions as the
unfused pairs used here for G (upsample, conv) and the fused stride-2 form used for D
(`conv_downscale2d`; equal to conv then box downsampling, tested), with the same parameters.

Progressive growing (sec. 3, fig. 2): the level of detail `lod` (a float; 0 = full resolution R =
2^L, L - r = resolution 2^r) is a non-parameter variable of both networks (collection "growth",
as the official networks' `lod` variable), so samplers, checkpoints and scripts see the network
exactly as trained. At lod = L - r + t, t in [0, 1], G's output is (1 - t)·ToRGB_r(x_r) +
t·up(ToRGB_{r-1}(x_{r-1})), nearest-upsampled to R; D's input is box-downsampled to 2^r and the
output of its 2^r block blended with FromRGB_{r-1} of the image at 2^(r-1) the same way. During a
fade-in, alpha = 1 - t goes from 0 to 1.

Two forms of each network, equal at every lod (tested): with `level` None the official "linear"
structure evaluates every block and blends by clip(lod - lod_r, 0, 1) at each resolution (any lod,
traced: for sampling and evaluation); with `level` = r only the blocks up to 2^r run (the training
step of the stage at resolution 2^r, one compiled program per stage), valid for lod in [L-r, L-r+1].
Parameters of all resolutions exist from initialization (every block is built at init), named by
resolution ("8x8", "ToRGB_8x8"), so a smaller network's parameters are a subset of a larger one's.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry
from gan_jax.models.stylegan_layers import minibatch_stddev

LRELU_SLOPE = 0.2
_DN = ("NHWC", "HWIO", "NHWC")


def nf(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
  """Feature maps of network stage `stage` (official `nf`); the block of resolution 2^r has nf(r-1)."""
  return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def pixel_norm(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Sec. 4.2, eq. 2: each pixel's feature vector divided by its RMS over the channels (last axis)."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def upscale(x: jax.Array, factor: int) -> jax.Array:
  """Nearest-neighbour upsampling of [B, H, W, C] by an integer factor (official `upscale2d`)."""
  if factor == 1:
    return x
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def downscale(x: jax.Array, factor: int) -> jax.Array:
  """Box-filter downsampling of [B, H, W, C] (the mean of each factor x factor block; official
  `downscale2d`, and how dataset_tool.py builds the lower-resolution copies of the dataset)."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  return jnp.mean(x.reshape(b, h // factor, factor, w // factor, factor, c), axis=(2, 4))


def blend(a: jax.Array, b: jax.Array, t: jax.Array) -> jax.Array:
  """(1 - t)·a + t·b: exactly a at t = 0 and exactly b at t = 1 (unlike a + (b - a)·t)."""
  return (1.0 - t) * a + t * b


class WSConv(nn.Module):
  """k x k convolution with equalized learning rate (stride 1, SAME) and bias; `down`: the official
  `conv2d_downscale2d`, the 3x3 kernel padded to 4x4 and summed over the four one-pixel shifts
  (x 1/4) at stride 2, which equals the 3x3 conv followed by 2x2 box downsampling."""
  features: int
  kernel_size: int
  gain: float = math.sqrt(2.0)
  down: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, cin = self.kernel_size, x.shape[-1]
    w = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    w = w * (self.gain / math.sqrt(k * k * cin))
    if self.down:
      w = jnp.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
      w = 0.25 * (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1])
      y = lax.conv_general_dilated(x, w.astype(x.dtype), (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)
    else:
      y = lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), "SAME", dimension_numbers=_DN)
    return y + b.astype(y.dtype)


class WSDense(nn.Module):
  """Dense layer with equalized learning rate and bias (official `dense` + `apply_bias`); `use_bias`
  False for G's 4x4 dense, whose bias (one per channel) is applied after the reshape to 4x4."""
  features: int
  gain: float = math.sqrt(2.0)
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]
    w = self.param("weight", nn.initializers.normal(1.0), (fan_in, self.features))
    y = x @ (w * (self.gain / math.sqrt(fan_in))).astype(x.dtype)
    return y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype) if self.use_bias else y


def _act(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, LRELU_SLOPE)


def _log2_resolution(resolution: int) -> int:
  r = int(round(math.log2(resolution))) if resolution > 0 else 0
  if resolution < 4 or 2 ** r != resolution:
    raise ConfigError(f"model 'progan' needs square images of a power-of-two size >= 4, got {resolution}")
  return r


class _Growing(nn.Module):
  """What G and D share: widths, the lod variable, and the level-of-detail arithmetic."""

  def widths(self, res_log2: int) -> int:
    return nf(res_log2 - 1, self.fmap_base, self.fmap_decay, self.fmap_max)

  def lod(self) -> jax.Array:
    """The current level of detail (collection "growth"; 0 at initialization = full resolution)."""
    return self.variable("growth", "lod", lambda: jnp.zeros((), jnp.float32)).value

  def check_level(self, top: int) -> int | None:
    if self.level is not None and not 2 <= self.level <= top:
      raise ValueError(f"level {self.level} outside 2..{top}")
    return self.level


class ProGANGenerator(_Growing):
  resolution: int
  channels: int
  fmap_base: int = 8192
  fmap_decay: float = 1.0
  fmap_max: int = 512
  normalize_latents: bool = True
  level: int | None = None    # None: every block ("linear" form, any lod); r: the blocks up to 2^r only

  def block(self, x: jax.Array, r: int) -> jax.Array:
    c = self.widths(r)
    if r == 2:
      if self.normalize_latents:
        x = pixel_norm(x)
      # Official gain sqrt(2)/4 ("to match the original Theano implementation"); its NCHW reshape
      # makes feature index c·16 + h·4 + w, kept here so official weights map one to one.
      x = WSDense(16 * c, gain=math.sqrt(2.0) / 4, use_bias=False, name="4x4_Dense")(x)
      x = x.reshape(x.shape[0], c, 4, 4).transpose(0, 2, 3, 1)
      x = pixel_norm(_act(x + self.param("4x4_Dense_bias", nn.initializers.zeros, (c,)).astype(x.dtype)))
      return pixel_norm(_act(WSConv(c, 3, name="4x4_Conv")(x)))
    x = upscale(x, 2)
    x = pixel_norm(_act(WSConv(c, 3, name=f"{2 ** r}x{2 ** r}_Conv0_up")(x)))
    return pixel_norm(_act(WSConv(c, 3, name=f"{2 ** r}x{2 ** r}_Conv1")(x)))

  def to_rgb(self, x: jax.Array, r: int) -> jax.Array:
    return WSConv(self.channels, 1, gain=1.0, name=f"ToRGB_{2 ** r}x{2 ** r}")(x)

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    """z [B, z_dim] -> images [B, R, R, C] (linear: the data's range is [-1, 1], nothing clips)."""
    del train   # no normalization statistics, no noise inputs
    top = _log2_resolution(self.resolution)
    lod = self.lod()
    level = self.check_level(top)
    if level is None or self.is_initializing():   # official structure='linear'; builds every layer
      x = self.block(z, 2)
      images = self.to_rgb(x, 2)
      for r in range(3, top + 1):
        x = self.block(x, r)
        images = blend(self.to_rgb(x, r), upscale(images, 2), jnp.clip(lod - (top - r), 0.0, 1.0))
      return images
    x = self.block(z, 2)
    for r in range(3, level):
      x = self.block(x, r)
    if level == 2:
      images = self.to_rgb(x, 2)
    else:
      y = self.block(x, level)
      images = blend(self.to_rgb(y, level), upscale(self.to_rgb(x, level - 1), 2),
                     jnp.clip(lod - (top - level), 0.0, 1.0))
    return upscale(images, 2 ** (top - level))


class ProGANDiscriminator(_Growing):
  resolution: int
  fmap_base: int = 8192
  fmap_decay: float = 1.0
  fmap_max: int = 512
  mbstd_group_size: int = 4   # 0 or 1: no minibatch standard deviation
  level: int | None = None

  def from_rgb(self, images: jax.Array, r: int) -> jax.Array:
    return _act(WSConv(self.widths(r), 1, name=f"FromRGB_{2 ** r}x{2 ** r}")(images))

  def block(self, x: jax.Array, r: int) -> jax.Array:
    if r >= 3:
      name = f"{2 ** r}x{2 ** r}"
      x = _act(WSConv(self.widths(r), 3, name=f"{name}_Conv0")(x))
      return _act(WSConv(self.widths(r - 1), 3, down=True, name=f"{name}_Conv1_down")(x))
    if self.mbstd_group_size > 1:
      x = minibatch_stddev(x, self.mbstd_group_size, 1)
    x = _act(WSConv(self.widths(2), 3, name="4x4_Conv")(x))
    x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)   # the official NCHW flattening order
    x = _act(WSDense(nf(0, self.fmap_base, self.fmap_decay, self.fmap_max), name="4x4_Dense0")(x))
    return WSDense(1, gain=1.0, name="4x4_Dense1")(x)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
    """images [B, R, R, C] -> logits [B]."""
    del train
    top = _log2_resolution(self.resolution)
    lod = self.lod()
    level = self.check_level(top)
    if level is None or self.is_initializing():
      x = self.from_rgb(images, top)
      for r in range(top, 2, -1):
        x = self.block(x, r)
        images = downscale(images, 2)
        x = blend(x, self.from_rgb(images, r - 1), jnp.clip(lod - (top - r), 0.0, 1.0))
      return self.block(x, 2)[:, 0]
    x = self.block(self.from_rgb(downscale(images, 2 ** (top - level)), level), level)
    if level > 2:
      lower = self.from_rgb(downscale(images, 2 ** (top - level + 1)), level - 1)
      x = blend(x, lower, jnp.clip(lod - (top - level), 0.0, 1.0))
      for r in range(level - 1, 1, -1):
        x = self.block(x, r)
    return x[:, 0]


# -------------------------------------------------------------------------------- registry

def _defaults() -> dict:
  """Architecture (G_paper / D_paper defaults) and the growth schedule of the official
  `train.TrainingSchedule` / `train_progressive_gan` (read by gan_jax/train/kinds/progressive.py)."""
  return {"z_dim": 512, "z_dist": "normal", "fmap_base": 8192, "fmap_decay": 1.0, "fmap_max": 512,
          "normalize_latents": True, "mbstd_group_size": 4,
          # Thousands of real images shown at each resolution before fading in the next, and during a fade.
          "lod_initial_resolution": 4, "lod_training_kimg": 600.0, "lod_transition_kimg": 600.0,
          # Resolution-specific global minibatch sizes "RES:BATCH,..." (others: batch_size) and learning
          # rates "RES:LR,..." of both G and D (others: optim.g.lr / optim.d.lr), as the official presets.
          "minibatch_dict": "", "lrate_dict": "",
          "reset_opt_for_new_lod": True, "mirror_augment": False}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image" or spec.shape[0] != spec.shape[1]:
    raise ConfigError(f"model 'progan' needs square images, got {spec.kind} data of shape {spec.shape}")
  h, _, ch = spec.shape
  _log2_resolution(h)
  if c.conditional:
    raise ConfigError("model 'progan' is unconditional here (the official AC-GAN label head is not "
                      "implemented); set model.conditional=False")
  if c.z_dist != "normal":
    raise ConfigError("model 'progan' draws z from a normal distribution (model.z_dist=normal)")
  if min(c.fmap_base, c.fmap_max) < 1 or c.fmap_decay < 0:
    raise ConfigError("model.fmap_base and model.fmap_max must be >= 1 and model.fmap_decay >= 0")
  if c.mbstd_group_size < 0:
    raise ConfigError(f"model.mbstd_group_size must be >= 0 (0 = off), got {c.mbstd_group_size}")
  widths = dict(fmap_base=c.fmap_base, fmap_decay=c.fmap_decay, fmap_max=c.fmap_max)
  return (ProGANGenerator(h, ch, normalize_latents=c.normalize_latents, **widths),
          ProGANDiscriminator(h, mbstd_group_size=c.mbstd_group_size, **widths))


MODELS.register("progan")(ModelEntry(_defaults, _build, kind="progressive"))
