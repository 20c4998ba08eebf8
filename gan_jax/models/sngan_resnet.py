"""SNGAN's ResNet G and D: Miyato, Kataoka, Koyama & Yoshida 2018 ("Spectral Normalization for
Generative Adversarial Networks", appendix B, tables 4 and 5), conditional by Miyato & Koyama 2018
("cGANs with Projection Discriminator"), as the authors' Chainer code builds them
(pfnet-research/sngan_projection: gen_models/resblocks.py, gen_models/resnet_32.py,
dis_models/resblocks.py, dis_models/snresnet_32.py, configs/sn_cifar10_{un,}conditional.yml).

G: z ~ N(0, I_128) -> dense to (R/8)x(R/8) x c0 -> three "ResBlock up" -> BN -> ReLU -> 3x3 conv to the
   image channels -> tanh. ResBlock up (gen_models/resblocks.Block): BN -> ReLU -> nearest 2x
   upsampling -> 3x3 conv -> BN -> ReLU -> 3x3 conv, plus a shortcut of upsampling and a 1x1 conv.
   BN is categorical conditional BN (a gain and a bias table per class, init 1 and 0) when the
   model is conditional, plain BN otherwise; eps 2e-5 and decay 0.9, Chainer's defaults.
D: "OptimizedBlock" (3x3 conv -> ReLU -> 3x3 conv -> 2x2 average pool, shortcut pool -> 1x1 conv),
   then ResBlocks (ReLU -> 3x3 conv -> ReLU -> 3x3 conv [-> pool], shortcut 1x1 conv [-> pool]
   when the channels change or it downsamples, identity otherwise; hidden width = input width),
   ReLU, global *sum* pooling, a bias-free linear logit, and when conditional the projection
   term <embed(y), h> (sec. 3 of the projection paper). Every weight of D is spectrally normalized
   (one power iteration per training call); G has no spectral norm.

`variant` (or "auto": by resolution, 48 -> "stl", else "cifar"):
- "cifar" (table 4, the 32x32 CIFAR-10 model): G 4x4x256 and three up blocks 256 -> 256 (ch=256),
  D blocks 128: down, down, -, - (ch=128). `g_width` = G's ch, `d_width` = D's ch.
- "stl" (table 5, the 48x48 STL-10 model): G 6x6x512 -> 256 -> 128 -> 64 (`g_width` = 64 is the
  last block's width, the first input has 8x), D 64 down, 128 down, 256 down, 512 down, 1024
  (`d_width` = 64, doubled per block).
Any resolution R divisible by 8 (16 for "stl") builds the same stack, G from R/8; the papers' are 32
and 48.

Initialization as the official code: Glorot-uniform everywhere, scale sqrt(2) on the 3x3 convs of
the blocks, 1 on the shortcuts, the dense layers, the last conv and the class embedding; zero biases.
"""
from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers

VARIANTS = ("auto", "cifar", "stl")


def glorot_uniform(scale: float = 1.0) -> Callable:
  """Chainer's GlorotUniform(scale) / TF's xavier_initializer (scale 1): U(-a, a) with
  a = scale * sqrt(6 / (fan_in + fan_out)), i.e. variance scale scale² over fan_avg."""
  return nn.initializers.variance_scaling(scale * scale, "fan_avg", "uniform")


def upsample(x: jax.Array) -> jax.Array:
  """2x nearest-neighbour upsampling (Chainer's unpooling_2d(x, 2), TF's resize_nearest_neighbor)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: jax.Array) -> jax.Array:
  """2x2 average pooling, stride 2."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


class Norm(nn.Module):
  """The generator's BN: categorical conditional BN (`num_classes` > 0, labels `y`) or plain BN
  with its own scale and shift. Statistics are over the whole global batch."""
  num_classes: int = 0
  momentum: float = 0.9
  epsilon: float = 2e-5

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None, train: bool) -> jax.Array:
    if self.num_classes:
      return layers.ConditionalBatchNorm(self.num_classes, momentum=self.momentum, epsilon=self.epsilon,
                                         name="cbn")(x, y, train)
    return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=self.epsilon,
                        name="bn")(x)


class GBlock(nn.Module):
  """ResBlock up: Norm -> ReLU -> upsample -> conv3 -> Norm -> ReLU -> conv3, plus a shortcut
  (upsample -> conv1) whenever it upsamples or the width changes (identity otherwise). `use_sn`:
  spectrally normalized convolutions (SAGAN's G; SNGAN's G has none)."""
  features: int
  num_classes: int = 0
  up: bool = True
  use_sn: bool = False
  momentum: float = 0.9
  epsilon: float = 2e-5
  conv_init: Callable = glorot_uniform(math.sqrt(2))
  shortcut_init: Callable = glorot_uniform(1.0)

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None, train: bool) -> jax.Array:
    conv = lambda k, init, name: layers.SNConv(  # noqa: E731
        self.features, (k, k), use_sn=self.use_sn, kernel_init=init, name=name)
    norm = lambda name: Norm(self.num_classes, self.momentum, self.epsilon, name=name)  # noqa: E731
    h = nn.relu(norm("norm1")(x, y, train))
    h = upsample(h) if self.up else h
    h = conv(3, self.conv_init, "conv1")(h, train)
    h = nn.relu(norm("norm2")(h, y, train))
    h = conv(3, self.conv_init, "conv2")(h, train)
    if self.up or x.shape[-1] != self.features:
      x = conv(1, self.shortcut_init, "shortcut")(upsample(x) if self.up else x, train)
    return h + x


class DBlock(nn.Module):
  """ResBlock (down): ReLU -> conv3 -> ReLU -> conv3 [-> avg pool], shortcut conv1 [-> avg pool]
  when it downsamples or the width changes, identity otherwise. `hidden_from_input`: the first
  conv keeps the input width (SNGAN's dis_models/resblocks.Block) instead of going straight to
  `features` (SAGAN's discriminator.block)."""
  features: int
  down: bool = True
  hidden_from_input: bool = True
  use_sn: bool = True
  conv_init: Callable = glorot_uniform(math.sqrt(2))
  shortcut_init: Callable = glorot_uniform(1.0)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    hidden = x.shape[-1] if self.hidden_from_input else self.features
    conv = lambda c, k, init, name: layers.SNConv(  # noqa: E731
        c, (k, k), use_sn=self.use_sn, kernel_init=init, name=name)
    h = conv(hidden, 3, self.conv_init, "conv1")(nn.relu(x), train)
    h = conv(self.features, 3, self.conv_init, "conv2")(nn.relu(h), train)
    h = downsample(h) if self.down else h
    if self.down or x.shape[-1] != self.features:
      x = conv(self.features, 1, self.shortcut_init, "shortcut")(x, train)
      x = downsample(x) if self.down else x
    return h + x


class DOptimizedBlock(nn.Module):
  """D's first block (no ReLU on the image): conv3 -> ReLU -> conv3 -> avg pool, plus
  avg pool -> conv1 (pooling first: 4x cheaper, same function)."""
  features: int
  use_sn: bool = True
  conv_init: Callable = glorot_uniform(math.sqrt(2))
  shortcut_init: Callable = glorot_uniform(1.0)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda k, init, name: layers.SNConv(  # noqa: E731
        self.features, (k, k), use_sn=self.use_sn, kernel_init=init, name=name)
    h = conv(3, self.conv_init, "conv1")(x, train)
    h = downsample(conv(3, self.conv_init, "conv2")(nn.relu(h), train))
    return h + conv(1, self.shortcut_init, "shortcut")(downsample(x), train)


class ProjectionHead(nn.Module):
  """ReLU -> global sum pooling -> logit = linear(h) + <embed(y), h> (Miyato & Koyama 2018, eq. 3;
  the embedding term only with labels). Spectrally normalized linear and embedding."""
  num_classes: int = 0
  use_bias: bool = False
  use_sn: bool = True
  kernel_init: Callable = glorot_uniform(1.0)

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None, train: bool) -> jax.Array:
    h = jnp.sum(nn.relu(x), axis=(1, 2))
    out = layers.SNDense(1, use_bias=self.use_bias, use_sn=self.use_sn, kernel_init=self.kernel_init,
                         name="linear")(h, train)[:, 0]
    if self.num_classes:
      if y is None:
        raise ValueError("a conditional discriminator needs labels y")
      embed = layers.SNEmbed(self.num_classes, h.shape[-1], use_sn=self.use_sn, embedding_init=self.kernel_init,
                             name="embed")(y, train)
      out = out + jnp.sum(embed * h, axis=-1)
    return out


def _plan(variant: str, g_width: int, d_width: int) -> tuple[list[int], list[tuple[int, bool]]]:
  """G widths [c0, c1, c2, c3] (input of the first block, then each block's output) and D blocks
  [(width, downsample)] after the optimized block (whose width is `d_width`)."""
  if variant == "cifar":
    return [g_width] * 4, [(d_width, True), (d_width, False), (d_width, False)]
  return [g_width * 8, g_width * 4, g_width * 2, g_width], [(d_width * m, m < 16) for m in (2, 4, 8, 16)]


class SNGANGenerator(nn.Module):
  resolution: int
  channels: int
  variant: str = "cifar"
  width: int = 256
  num_classes: int = 0

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    if self.num_classes and y is None:
      raise ValueError("a conditional generator needs labels y")
    y = y if self.num_classes else None
    widths, _ = _plan(self.variant, self.width, 0)
    bottom = self.resolution // 8
    x = nn.Dense(bottom * bottom * widths[0], kernel_init=glorot_uniform(1.0), name="linear")(z)
    x = x.reshape(-1, bottom, bottom, widths[0])
    for i, c in enumerate(widths[1:]):
      x = GBlock(c, self.num_classes, name=f"block{i + 1}")(x, y, train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=2e-5, name="bn")(x))
    x = nn.Conv(self.channels, (3, 3), kernel_init=glorot_uniform(1.0), name="conv_out")(x)
    return jnp.tanh(x)


class SNGANDiscriminator(nn.Module):
  variant: str = "cifar"
  width: int = 128
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    _, blocks = _plan(self.variant, 0, self.width)
    x = DOptimizedBlock(self.width, name="block0")(x, train)
    for i, (c, down) in enumerate(blocks):
      x = DBlock(c, down=down, name=f"block{i + 1}")(x, train)
    return ProjectionHead(self.num_classes, name="head")(x, y if self.num_classes else None, train)


def resolve_variant(variant: str, resolution: int) -> str:
  if variant not in VARIANTS:
    raise ConfigError(f"model.variant: unknown value {variant!r}; valid: {', '.join(VARIANTS)}")
  if variant == "auto":
    variant = "stl" if resolution == 48 else "cifar"
  need = 16 if variant == "stl" else 8
  if resolution < 16 or resolution % need:
    raise ConfigError(f"sngan_resnet ({variant}) needs a square resolution >= 16 divisible by {need} "
                      f"(32 CIFAR-10, 48 STL-10), got {resolution}")
  return variant


def check_spec(name: str, c: ConfigDict, spec: DataSpec) -> tuple[int, int]:
  """(resolution, channels) of square image data; ConfigError otherwise or for labels missing."""
  if spec.kind != "image":
    raise ConfigError(f"model {name!r} needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w:
    raise ConfigError(f"model {name!r} needs square images, got {h}x{w}")
  if c.conditional and spec.num_classes == 0:
    raise ConfigError(f"model.conditional needs a dataset with labels; this one has none (model {name!r})")
  return h, ch


def _defaults() -> dict:
  return {"z_dim": 128, "z_dist": "normal", "variant": "auto", "g_width": 256, "d_width": 128}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  res, ch = check_spec("sngan_resnet", c, spec)
  variant = resolve_variant(c.variant, res)
  nc = spec.num_classes if c.conditional else 0
  return (SNGANGenerator(res, ch, variant, c.g_width, nc), SNGANDiscriminator(variant, c.d_width, nc))


MODELS.register("sngan_resnet")(ModelEntry(_defaults, _build))
