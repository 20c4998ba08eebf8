"""R3GAN, Huang, Gokaslan, Kuleshov & Tompkin 2024 ("The GAN is dead; long live the GAN! A Modern
Baseline GAN", NeurIPS 2024, arXiv 2501.05441), config E, layer for layer as the official code
(github.com/brownvc/R3GAN at 19a7ddf: `R3GAN/Networks.py`, `R3GAN/FusedOperators.py`,
`R3GAN/Resamplers.py`, presets in `train.py`). Images are NHWC here, NCHW there.

Residual block (`ResidualBlock`): x + conv1x1(C·e -> C)(act(conv3x3_grouped(act(conv1x1(C -> C·e)(x)))))
with expansion e (`ExpansionFactor` = 2), the 3x3 convolution grouped into `cardinality` groups
(`LinearLayer2`, `Groups=Cardinality`), act = LeakyReLU(0.2) after a per-channel bias
(`BiasedActivation`: bias initialised to 0, gain 1 in the forward), convolutions without bias,
no normalization anywhere. Initialization (`MSRInitializer`): N(0, gain²/fan_in), fan_in = in/groups·k·k,
with gain = sqrt(2 / (1 + 0.2²)) · L^(-1/(2m-2)) for the first two convolutions of a block
(L = total number of blocks over all stages of the network = `VarianceScalingParameter`, m = 3
linear layers per block, the fix-up style scaling) and gain 0 (zeros) for the last one, so every
block starts as the identity. Every other layer uses gain 1 (except the D class embedding).

Generator (`Generator`, `GeneratorStage`, `GenerativeBasis`, `UpsampleLayer`): z (64-d normal),
with a class embedding concatenated when conditional (`EmbeddingLayer`: a bias-free linear map of
the one-hot label, i.e. an embedding table, 64-d = `NoiseDimension`), -> `GenerativeBasis`: a
learned 4x4xW0 basis (init N(0, 1)) scaled per channel by a bias-free linear map of the input ->
the stage's blocks; each later stage: 1x1 convolution when the width changes, then 2x interpolative
upsampling, then its blocks; finally a 1x1 convolution to the image channels (`AggregationLayer`),
no output nonlinearity (the official G has no tanh: samples are not clipped to [-1, 1]).

Discriminator (`Discriminator`, `DiscriminatorStage`, `DiscriminativeBasis`, `DownsampleLayer`): the
G widths reversed; 1x1 convolution from the image (`ExtractionLayer`), then per stage its blocks and
2x interpolative downsampling followed by a 1x1 convolution when the width changes; the last (4x4)
stage ends with a depthwise 4x4 valid convolution and a bias-free linear map to 1 logit, or, when
conditional, to an embedding of `d_embed_dim` (= the G's first width) dotted with a class embedding
(projection discriminator, Miyato & Koyama 2018; `EmbeddingLayer` initialised with gain
1/sqrt(d_embed_dim)).

Resampling (`InterpolativeUpsampler/Downsampler` = StyleGAN's upfirdn2d `upsample2d` /
`downsample2d`): the [1, 2, 1] filter convolved with [1, 1] -> [1, 3, 3, 1], its outer product
normalised to sum 1; upsampling inserts zeros, pads (2, 1) and filters with gain 4; downsampling
pads (1, 1), filters and keeps every second sample. The 2-D filter is separable, so it is applied
here as two 1-D passes (same values; `upsample2d_direct` / `downsample2d_direct` in the tests).

Precision: the official code runs the 3-4 highest-resolution stages of G and D in bfloat16
(`FP16Stages`, recorded per preset as `Preset.bf16_stages`, not applied per stage here);
`--config.precision=bfloat16` runs every stage in bf16 with float32 parameters, losses and
penalties (gan_jax/train/machinery.py `apply`), and the default is float32 throughout. Augmentation:
the `augment` config block (gan_jax/augment).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry

LRELU_SLOPE = 0.2
# FusedOperators.BiasedActivation.Gain: the gain of LeakyReLU(0.2) for the He/MSR init.
ACTIVATION_GAIN = math.sqrt(2.0 / (1.0 + LRELU_SLOPE ** 2))
LINEAR_LAYERS_PER_BLOCK = 3   # Networks.ResidualBlock.NumberOfLinearLayers


def msr_init(gain: float, fan_in_axes: tuple[int, ...] = (0,)):
  """Networks.MSRInitializer: N(0, (gain / sqrt(fan_in))²); gain 0 gives zeros. For a flax conv
  kernel [kh, kw, in/groups, out] fan_in = kh·kw·in/groups (axes 0, 1, 2); for a dense [in, out], axis 0."""
  def init(key, shape, dtype=jnp.float32):
    fan_in = int(np.prod([shape[a] for a in fan_in_axes]))
    return (gain / math.sqrt(fan_in)) * jax.random.normal(key, shape, dtype)
  return init


def _conv_init(gain: float):
  return msr_init(gain, (0, 1, 2))


def lowpass_filter(weights=(1, 2, 1)) -> np.ndarray:
  """Resamplers.CreateLowpassKernel(Inplace=False), 1-D: weights * [1, 1], normalised so that the
  2-D outer product sums to 1 ([1, 3, 3, 1] / 8 for the default)."""
  f = np.convolve(np.asarray(weights, np.float64), [1.0, 1.0])
  return (f / f.sum()).astype(np.float32)


def _pairs(x: jax.Array, axis: int) -> tuple[jax.Array, jax.Array]:
  """Even and odd samples of x along `axis`."""
  n = x.shape[axis]
  x = x.reshape(x.shape[:axis] + (n // 2, 2) + x.shape[axis + 1:])
  return jnp.take(x, 0, axis=axis + 1), jnp.take(x, 1, axis=axis + 1)


def _shift(x: jax.Array, axis: int, offset: int) -> jax.Array:
  """y[i] = x[i + offset] along `axis`, zero outside (offset -1 or +1)."""
  n = x.shape[axis]
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 0) if offset < 0 else (0, 1)
  start = 0 if offset < 0 else 1
  return lax.slice_in_dim(jnp.pad(x, pad), start, start + n, axis=axis)


def _check_filter(weights) -> None:
  if tuple(weights) != (1, 2, 1):
    raise ValueError(f"only the [1, 2, 1] resampling filter of the official presets is implemented, got {weights}")


def upsample2d(x: jax.Array, weights=(1, 2, 1)) -> jax.Array:
  """upfirdn2d.upsample2d(x, f), f = the outer product of [1, 3, 3, 1] / 8 with itself, x [B, H, W, C]:
  zero insertion, padding (2, 1), filtering with gain 4 (2 per axis). Along an axis that is
  y[2i] = (x[i-1] + 3 x[i]) / 4 and y[2i+1] = (3 x[i] + x[i+1]) / 4 (zero outside), computed
  with shifts and adds only, whose derivatives are shifts and adds too (cheap on XLA:CPU, where
  zero-dilated depthwise convolutions and their gradients are slow)."""
  _check_filter(weights)
  for axis in (1, 2):
    even = 0.25 * _shift(x, axis, -1) + 0.75 * x
    odd = 0.75 * x + 0.25 * _shift(x, axis, 1)
    y = jnp.stack([even, odd], axis=axis + 1)
    x = y.reshape(x.shape[:axis] + (2 * x.shape[axis],) + x.shape[axis + 1:])
  return x


def downsample2d(x: jax.Array, weights=(1, 2, 1)) -> jax.Array:
  """upfirdn2d.downsample2d(x, f): padding (1, 1), filtering with [1, 3, 3, 1] / 8 per axis, every
  second sample: y[i] = (x[2i-1] + 3 x[2i] + 3 x[2i+1] + x[2i+2]) / 8 (zero outside), as shifts
  and adds of the even and odd samples."""
  _check_filter(weights)
  for axis in (1, 2):
    even, odd = _pairs(x, axis)
    x = 0.125 * (_shift(odd, axis, -1) + _shift(even, axis, 1)) + 0.375 * (even + odd)
  return x


CONV_IMPLS = ("auto", "split", "xla")


def resolve_conv_impl(impl: str) -> str:
  """"auto" -> "split" on CPU, "xla" (one grouped convolution) on accelerators."""
  if impl not in CONV_IMPLS:
    raise ConfigError(f"model.conv_impl: unknown value {impl!r}; valid: {', '.join(CONV_IMPLS)}")
  if impl == "auto":
    return "split" if jax.default_backend() == "cpu" else "xla"
  return impl


def _conv(x: jax.Array, kernel: jax.Array, groups: int = 1) -> jax.Array:
  p = (kernel.shape[0] - 1) // 2
  return lax.conv_general_dilated(x, kernel, (1, 1), [(p, p), (p, p)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  feature_group_count=groups)


def grouped_conv(x: jax.Array, kernel: jax.Array, groups: int = 1, impl: str = "xla") -> jax.Array:
  """Stride-1 'same' convolution (odd k) of x [B, H, W, C] with kernel [k, k, C/groups, O] in
  flax/XLA's feature_group_count layout (input and output channels split into `groups` contiguous
  blocks, as PyTorch's `groups`). `impl="xla"`: one grouped convolution; "split": one ordinary
  convolution per group on its slice of channels, concatenated: the same sums. XLA:CPU runs a
  grouped convolution, and above all its kernel gradient, by slow paths: at R3GAN's toy width
  (16x16x64, 4 groups, batch 32) forward 20 ms vs 10.5 ms split, kernel gradient ~1 s vs 6 ms.
  1x1 convolutions without groups are matmuls."""
  if kernel.shape[0] == 1 and groups == 1:
    return (x.reshape(-1, x.shape[-1]) @ kernel[0, 0]).reshape(x.shape[:-1] + kernel.shape[-1:])
  if impl == "xla" or groups == 1:
    return _conv(x, kernel, groups)
  ci, co = kernel.shape[2], kernel.shape[3] // groups
  return jnp.concatenate([_conv(x[..., i * ci:(i + 1) * ci], kernel[..., i * co:(i + 1) * co])
                          for i in range(groups)], axis=-1)


class Convolution(nn.Module):
  """Networks.Convolution: bias-free, stride 1, "same" padding (k-1)//2, MSR init with `gain` (see grouped_conv)."""
  features: int
  kernel_size: int = 1
  groups: int = 1
  gain: float = 1.0
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", _conv_init(self.gain), (k, k, x.shape[-1] // self.groups, self.features))
    return grouped_conv(x, kernel, self.groups, self.impl)


class BiasedActivation(nn.Module):
  """FusedOperators.BiasedActivation: LeakyReLU(0.2)(x + b), b per channel initialised to 0."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
    return nn.leaky_relu(x + b, LRELU_SLOPE)


class ResidualBlock(nn.Module):
  """Networks.ResidualBlock: 1x1 expand -> act -> grouped kxk -> act -> 1x1 project (init 0), + x."""
  cardinality: int
  expansion: int
  kernel_size: int
  variance_scaling: float     # L, the total number of blocks of the network
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    expanded = c * self.expansion
    gain = ACTIVATION_GAIN * self.variance_scaling ** (-1.0 / (2 * LINEAR_LAYERS_PER_BLOCK - 2))
    y = Convolution(expanded, 1, gain=gain, name="linear1")(x)
    y = Convolution(expanded, self.kernel_size, groups=self.cardinality, gain=gain, impl=self.impl,
                    name="linear2")(BiasedActivation(name="act1")(y))
    y = Convolution(c, 1, gain=0.0, name="linear3")(BiasedActivation(name="act2")(y))
    return x + y


def _one_hot_embed(module: nn.Module, name: str, y: jax.Array, num_classes: int, features: int,
                   gain: float) -> jax.Array:
  """A bias-free nn.Linear(num_classes, features) applied to one-hot labels (the official
  `EmbeddingLayer`), i.e. a row lookup of a [num_classes, features] table with MSR init, fan_in =
  num_classes."""
  table = module.param(name, msr_init(gain), (num_classes, features))
  return jnp.take(table, y, axis=0)


def _labels(module: nn.Module, y: jax.Array | None, batch: int, num_classes: int) -> jax.Array:
  if y is None:
    if module.is_initializing():
      return jnp.zeros((batch,), jnp.int32)   # parameter shapes do not depend on the labels
    raise ValueError(f"{type(module).__name__} is class-conditional ({num_classes} classes) and needs labels y")
  return y


class R3GANGenerator(nn.Module):
  widths: tuple[int, ...]           # per stage, from 4x4 up
  blocks: tuple[int, ...]
  cardinalities: tuple[int, ...]
  channels: int = 3
  expansion: int = 2
  kernel_size: int = 3
  num_classes: int = 0              # > 0: conditional
  embed_dim: int = 64               # ConditionEmbeddingDimension of G
  resample_filter: tuple[int, ...] = (1, 2, 1)
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    del train   # no normalization or other state
    if self.num_classes:
      y = _labels(self, y, z.shape[0], self.num_classes)
      z = jnp.concatenate([z, _one_hot_embed(self, "class_embedding", y, self.num_classes, self.embed_dim, 1.0)], 1)
    scaling = float(sum(self.blocks))
    w0 = self.widths[0]
    basis = self.param("basis", nn.initializers.normal(1.0), (4, 4, w0))
    s = nn.Dense(w0, use_bias=False, kernel_init=msr_init(1.0), name="basis_linear")(z)
    x = basis[None] * s[:, None, None, :]
    for i, (w, n, card) in enumerate(zip(self.widths, self.blocks, self.cardinalities, strict=True)):
      if i:
        if x.shape[-1] != w:
          x = Convolution(w, 1, name=f"stage{i}_transition")(x)
        x = upsample2d(x, self.resample_filter)
      for j in range(n):
        x = ResidualBlock(card, self.expansion, self.kernel_size, scaling, self.conv_impl,
                          name=f"stage{i}_block{j}")(x)
    return Convolution(self.channels, 1, name="aggregation")(x)


class R3GANDiscriminator(nn.Module):
  widths: tuple[int, ...]           # per stage, from the full resolution down to 4x4 (G's reversed)
  blocks: tuple[int, ...]
  cardinalities: tuple[int, ...]
  expansion: int = 2
  kernel_size: int = 3
  num_classes: int = 0
  embed_dim: int = 0                # ConditionEmbeddingDimension of D (used when conditional)
  resample_filter: tuple[int, ...] = (1, 2, 1)
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    del train
    scaling = float(sum(self.blocks))
    x = Convolution(self.widths[0], 1, name="extraction")(x)
    last = len(self.widths) - 1
    for i, (w, n, card) in enumerate(zip(self.widths, self.blocks, self.cardinalities, strict=True)):
      for j in range(n):
        x = ResidualBlock(card, self.expansion, self.kernel_size, scaling, self.conv_impl,
                          name=f"stage{i}_block{j}")(x)
      if i < last:
        x = downsample2d(x, self.resample_filter)
        if self.widths[i + 1] != w:
          x = Convolution(self.widths[i + 1], 1, name=f"stage{i}_transition")(x)
    # DiscriminativeBasis: depthwise 4x4 valid convolution (fan_in 16), then a bias-free linear map.
    if x.shape[1:3] != (4, 4):
      raise ValueError(f"R3GAN discriminator expects 4x4 features at its last stage, got {x.shape}")
    c = x.shape[-1]
    kernel = self.param("basis", _conv_init(1.0), (4, 4, 1, c))    # flax's depthwise layout
    x = jnp.einsum("bhwc,hwc->bc", x, kernel[:, :, 0, :])
    out_dim = self.embed_dim if self.num_classes else 1
    x = nn.Dense(out_dim, use_bias=False, kernel_init=msr_init(1.0), name="basis_linear")(x)
    if not self.num_classes:
      return x[:, 0]
    y = _labels(self, y, x.shape[0], self.num_classes)
    e = _one_hot_embed(self, "class_embedding", y, self.num_classes, out_dim, 1.0 / math.sqrt(out_dim))
    return jnp.sum(x * e, axis=1)


# The presets of the official train.py (`--preset`): G widths from 4x4 up (D mirrors them),
# 2 blocks per stage, cardinality 96 at the 768/1536-wide stages (group size 16 at expansion 2),
# noise and G class embedding 64-d, D class embedding = widths[0].
@dataclasses.dataclass(frozen=True)
class Preset:
  resolution: int
  widths: tuple[int, ...]
  cardinalities: tuple[int, ...]
  num_classes: int                  # the dataset's; the official --cond flag turns conditioning on
  conditional: bool                 # as the README's launch command (--cond)
  lr: tuple[float, float]           # cosine from base to final over `decay_kimg`
  beta2: tuple[float, float]
  gamma: tuple[float, float]
  ema_halflife_kimg: tuple[float, float]
  aug_p: tuple[float, float]        # augmentation probability, cosine over `decay_kimg` (augment.p, p_final)
  decay_kimg: float
  batch_size: int
  gpus: int
  bf16_stages: int                  # FP16Stages: that many highest-resolution stages run in bfloat16


PRESETS = {
    "CIFAR10": Preset(32, (768,) * 4, (96,) * 4, 10, True, (2e-4, 5e-5), (0.9, 0.99), (0.05, 0.005),
                      (0.0, 5000.0), (0.0, 0.55), 20_000.0, 512, 8, 3),
    "FFHQ-64": Preset(64, (768, 768, 768, 768, 384), (96, 96, 96, 96, 48), 0, False, (2e-4, 5e-5), (0.9, 0.99),
                      (2.0, 0.2), (0.0, 500.0), (0.0, 0.3), 20_000.0, 256, 8, 4),
    "FFHQ-256": Preset(256, (768, 768, 768, 768, 384, 192, 96), (96, 96, 96, 96, 48, 24, 12), 0, False,
                       (2e-4, 5e-5), (0.9, 0.99), (150.0, 15.0), (0.0, 500.0), (0.0, 0.3), 20_000.0, 256, 8, 4),
    "ImageNet-32": Preset(32, (1536,) * 4, (96,) * 4, 1000, True, (2e-4, 5e-5), (0.9, 0.99), (0.5, 0.05),
                          (0.0, 50_000.0), (0.0, 0.5), 200_000.0, 4096, 32, 3),
    "ImageNet-64": Preset(64, (1536,) * 5, (96,) * 5, 1000, True, (2e-4, 5e-5), (0.9, 0.99), (1.0, 0.1),
                          (0.0, 50_000.0), (0.0, 0.4), 200_000.0, 4096, 64, 4),
}


def apply_preset(c: ConfigDict, name: str) -> ConfigDict:
  """Fills `c` (a base_config("r3gan")) with preset `name` of the official train.py: architecture,
  batch size, Adam (beta1 0, eps 1e-8) with cosine lr and beta2, loss rpgan with R1 = R2 = gamma
  every D step on a cosine, EMA half-life on a cosine from 0, and the augmentation of train.py
  (`--aug=1`: AugmentPipe with xflip, rotate90, xint, scale, rotate, aniso, xfrac at strength 1,
  brightness, contrast, lumaflip, hue, saturation at 0.5, cutout at 1; not adaptive) with its
  probability on a cosine from `aug_p[0]` to `aug_p[1]`; all ramps over `decay_kimg`
  (training_loop.cosine_decay_with_warmup: cosine to the final value, then held). The dataset
  x-flips of `--mirror=1` are not applied (no data-side mirroring in gan_jax yet). Conditional
  presets give each fake the label of the real it is paired with (`model.fake_labels="real"`), as
  the official loop does."""
  p = PRESETS[name]
  c.data.resolution = p.resolution
  c.model.widths = p.widths
  c.model.blocks = (2,) * len(p.widths)
  c.model.cardinalities = p.cardinalities
  c.model.conditional = p.conditional
  c.model.fake_labels = "real"   # the official loop conditions each fake on its paired real's class
  c.loss.name = "rpgan"
  c.batch_size = p.batch_size
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=p.lr[0], lr_final=p.lr[1], b1=0.0, b2=p.beta2[0], b2_final=p.beta2[1],
                        eps=1e-8)
  c.reg.r1 = c.reg.r2 = p.gamma[0]
  c.reg.gamma_final = p.gamma[1]
  c.reg.lazy_every = 1
  c.schedule.kimg = p.decay_kimg
  c.ema.halflife_kimg = p.ema_halflife_kimg[0]
  c.ema.halflife_final_kimg = p.ema_halflife_kimg[1]
  c.augment.update(name="ada", pipeline="bg,color:0.5,cutout", p=p.aug_p[0], p_final=p.aug_p[1], target=0.0)
  return c


def apply_runlocal(c: ConfigDict, widths: tuple[int, ...], cardinalities: tuple[int, ...], *, steps: int = 300,
                  batch_size: int = 32, dataset: str = "digits", resolution: int = 16,
                  ema_halflife_final_kimg: float = 1.0, eval_every: int = 100, lr_scale: float = 5.0) -> ConfigDict:
  """The same recipe shrunk to train on a laptop: toy widths at `resolution` (one stage per
  doubling from 4x4), 2 blocks per stage, `steps` steps of `batch_size`; the cosine ramps run over
  the whole run (the paper's run over 20 Mimg of 250), the EMA half-life ramps to
  `ema_halflife_final_kimg` instead of millions of images, and both learning rates (base and
  final) are `lr_scale` times the paper's: in 300 steps at toy width 2e-4 -> 5e-5 hardly moves the
  networks (CIFAR-10 runlocal on digits: digit_fd 1651 -> 649, blobs), 1e-3 -> 2.5e-4 gives
  digits of every class (digit_fd 1651 -> 180)."""
  c.data.name = dataset
  c.data.resolution = resolution
  c.model.widths = tuple(widths)
  c.model.blocks = (2,) * len(widths)
  c.model.cardinalities = tuple(cardinalities)
  c.batch_size = batch_size
  c.total_steps = steps
  c.schedule.kimg = steps * batch_size / 1000.0
  c.ema.halflife_final_kimg = ema_halflife_final_kimg
  for who in ("g", "d"):
    c.optim[who].lr *= lr_scale
    c.optim[who].lr_final *= lr_scale
  c.log_every = max(1, min(25, steps // 10))
  c.sample_every = c.ckpt_every = steps
  c.eval.every = eval_every
  return c


def _defaults() -> dict[str, Any]:
  # The CIFAR-10 preset; z is 64-d normal (NoiseDimension; training_loop draws torch.randn).
  return {"z_dim": 64, "z_dist": "normal", "widths": (768,) * 4, "blocks": (2,) * 4,
          "cardinalities": (96,) * 4, "expansion": 2, "kernel_size": 3, "g_embed_dim": 64,
          "d_embed_dim": 0, "resample_filter": (1, 2, 1), "conv_impl": "auto"}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'r3gan' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  widths, blocks, cards = tuple(c.widths), tuple(c.blocks), tuple(c.cardinalities)
  n = len(widths)
  if h != w or h != 4 * 2 ** (n - 1):
    valid = ", ".join(f"{4 * 2 ** (k - 1)}x{4 * 2 ** (k - 1)} with {k} widths" for k in range(2, 9))
    raise ConfigError(f"model 'r3gan': {n} stage widths make {4 * 2 ** (n - 1)}x{4 * 2 ** (n - 1)} images, "
                      f"data is {h}x{w}; valid: {valid}")
  if not (len(blocks) == len(cards) == n):
    raise ConfigError(f"model 'r3gan': widths, blocks and cardinalities need one entry per stage, got "
                      f"{len(widths)}, {len(blocks)}, {len(cards)}")
  for width, card in zip(widths, cards):
    if (width * c.expansion) % card:
      raise ConfigError(f"model 'r3gan': cardinality {card} does not divide {width}·{c.expansion} channels; "
                        f"valid: divisors of {width * c.expansion}")
  num_classes = 0
  if c.conditional:
    if spec.num_classes == 0:
      raise ConfigError("model.conditional needs a dataset with labels; valid: conditional=False for this data")
    num_classes = spec.num_classes
  if tuple(c.resample_filter) != (1, 2, 1):
    raise ConfigError(f"model 'r3gan': resample_filter {tuple(c.resample_filter)} is not implemented; valid: (1, 2, 1)")
  common = dict(expansion=c.expansion, kernel_size=c.kernel_size, num_classes=num_classes,
                resample_filter=tuple(c.resample_filter), conv_impl=resolve_conv_impl(c.conv_impl))
  g = R3GANGenerator(widths, blocks, cards, channels=ch, embed_dim=c.g_embed_dim, **common)
  d = R3GANDiscriminator(widths[::-1], blocks[::-1], cards[::-1], embed_dim=c.d_embed_dim or widths[0], **common)
  return g, d


MODELS.register("r3gan")(ModelEntry(_defaults, _build))
