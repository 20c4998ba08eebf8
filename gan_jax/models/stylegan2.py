"""StyleGAN2, Karras et al. 2020 ("Analyzing and Improving the Image Quality of StyleGAN"),
config F, as NVlabs/stylegan2-ada-pytorch builds it (`training/networks.py`, cfg specs in
`train.py`; layers in gan_jax/models/stylegan_layers.py).

Generator (`Generator` = `MappingNetwork` + `SynthesisNetwork`):
- Mapping: z (512-d, N(0, I)) normalized to unit second moment; when conditional, the one-hot
  label through an equalized dense layer (w_dim features, lr_mul 1) is normalized the same way
  and concatenated (`MappingNetwork.embed`); then `mapping_layers` (8 in config F) equalized
  dense layers with leaky ReLU and learning-rate multiplier 0.01 -> w (512-d), broadcast to
  num_ws = 2·log2(resolution) - 2 style vectors. W's moving average (beta 0.995) lives in the
  "stats" collection and is updated only in training (`w_avg`); truncation lerps ws towards it.
- Style mixing regularization (sec. 2 of StyleGAN; `StyleGAN2Loss.run_G`, prob 0.9): in training,
  with probability 0.9 the ws from one cutoff in [1, num_ws) on (one cutoff per batch) come from a
  second latent, mapped without updating w_avg. It happens in `mapping`, so the path-length
  regularizer sees mixed ws as the official one (run_G) does.
- Synthesis (skip generator, fig. 7b): a learned 4x4 constant (~N(0, 1)), then per resolution
  a block of 3x3 modulated/demodulated convolutions (the first one of each block above 4x4
  upsamples by a transposed convolution and the [1,3,3,1] filter), each with an affine style
  (bias init 1), per-pixel noise with a learned strength (init 0), bias, leaky ReLU · sqrt(2)
  and clamp ±conv_clamp; a 1x1 modulated toRGB (no demodulation, style · 1/sqrt(C)) per block,
  summed into the FIR-upsampled image of the previous block; the image has no final activation.
  The toRGB of a block uses the w of the next block's first convolution (`SynthesisNetwork`).
- Channels per resolution: min(channel_base / res, channel_max) (32768 and 512 in config F).

Discriminator (residual, fig. 7c; `Discriminator`): fromRGB 1x1 at the input resolution, then
per resolution two 3x3 equalized convolutions (the second downsamples by the filter and stride 2)
plus a 1x1 downsampling skip without bias, summed with gains sqrt(0.5); down to 4x4, then the
epilogue: minibatch standard deviation (group 4, 1 channel), 3x3 conv, dense (C·16 -> C), dense
to 1 logit. Conditional: the label mapped by an 8-layer mapping network (lr_mul 0.01, as the
official `Discriminator` builds it with default mapping_kwargs) to cmap (512-d) and the logit is
(out · cmap).sum / sqrt(cmap_dim) (projection, Miyato & Koyama 2018). `d_architecture="orig"`
drops the residual skips (the official `cifar` config).

Official parameter counts, all matched here (tests/test_model_stylegan2.py): config F 256x256:
G 30,034,338, D 28,864,129; 1024x1024: G 30,370,060, D 29,012,513; ADA paper256: G 24,767,458,
D 24,001,089. The official "const" noise mode: pass the fixed maps as the collection "noise_const"
at apply time ({"noise_const": {"synthesis_net": {"b8": {"conv0": {"noise": [8, 8]}}, ...}}}; zeros
give "none"); they are not part of the train state (gan_jax/importers/nvidia.py reads them from the
official pickles). Left out: mixed precision (fp16 in the 4 highest resolutions, `num_fp16_res`);
`conv_clamp` (256 in every ADA cfg) is kept.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers
from gan_jax.models import stylegan_layers as sl

D_ARCHITECTURES = ("resnet", "orig")


def channels(res: int, channel_base: int, channel_max: int) -> int:
  return min(channel_base // res, channel_max)


def num_ws(resolution: int) -> int:
  """Two convolutions per block but one at 4x4, plus the last toRGB: 2·log2(res) - 2."""
  return 2 * int(math.log2(resolution)) - 2


class MappingNetwork(nn.Module):
  """z [B, z_dim] (or None) and labels [B] (or None) -> w [B, w_dim]."""
  w_dim: int
  num_classes: int = 0
  num_layers: int = 8
  lr_mul: float = 0.01

  @nn.compact
  def __call__(self, z: jax.Array | None, y: jax.Array | None) -> jax.Array:
    parts = []
    if z is not None:
      parts.append(sl.normalize_2nd_moment(z.astype(jnp.float32)))
    if self.num_classes > 0:
      if y is None:
        raise ValueError("a conditional StyleGAN2 needs labels y")
      c = jax.nn.one_hot(y, self.num_classes, dtype=jnp.float32)
      parts.append(sl.normalize_2nd_moment(sl.EqualizedDense(self.w_dim, name="embed")(c)))
    x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    for i in range(self.num_layers):
      x = sl.EqualizedDense(self.w_dim, activation="lrelu", lr_mul=self.lr_mul, name=f"fc{i}")(x)
    return x


class SynthesisLayer(nn.Module):
  """Modulated 3x3 convolution (upsampling when up=2), noise, bias, leaky ReLU, clamp."""
  features: int
  resolution: int
  up: int = 1
  conv_clamp: float | None = None
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    styles = sl.EqualizedDense(cin, bias_init=1.0, name="affine")(w)
    weight = self.param("weight", nn.initializers.normal(1.0), (3, 3, cin, self.features))
    strength = self.param("noise_strength", nn.initializers.zeros, ())
    if self.has_variable("noise_const", "noise"):
      # A fixed [R, R] noise map passed at apply time (the official noise_mode 'const'; zeros: 'none').
      noise = self.get_variable("noise_const", "noise")[None, :, :, None] * strength
    else:
      noise = jax.random.normal(self.make_rng("noise"), (x.shape[0], self.resolution, self.resolution, 1)) * strength
    x = sl.modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=1,
                            f=sl.setup_filter(), impl=self.impl)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return sl.bias_act(x, bias, "lrelu", clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
  """1x1 modulated convolution without demodulation (styles · 1/sqrt(C)), bias, clamp."""
  features: int
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    styles = sl.EqualizedDense(cin, bias_init=1.0, name="affine")(w) * (1.0 / math.sqrt(cin))
    weight = self.param("weight", nn.initializers.normal(1.0), (1, 1, cin, self.features))
    x = sl.modulated_conv2d(x, weight, styles, demodulate=False)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return sl.bias_act(x, bias, "linear", clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
  """One resolution of the skip generator: ws [B, num_conv + 1, w_dim] (convs, then toRGB)."""
  features: int
  resolution: int
  img_channels: int
  first: bool
  conv_clamp: float | None = None
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array | None, img: jax.Array | None, ws: jax.Array):
    if self.first:
      const = self.param("const", nn.initializers.normal(1.0), (self.resolution, self.resolution, self.features))
      x = jnp.broadcast_to(const, (ws.shape[0], *const.shape))
      x = SynthesisLayer(self.features, self.resolution, conv_clamp=self.conv_clamp, impl=self.impl,
                         name="conv1")(x, ws[:, 0])
    else:
      x = SynthesisLayer(self.features, self.resolution, up=2, conv_clamp=self.conv_clamp, impl=self.impl,
                         name="conv0")(x, ws[:, 0])
      x = SynthesisLayer(self.features, self.resolution, conv_clamp=self.conv_clamp, impl=self.impl,
                         name="conv1")(x, ws[:, 1])
    if img is not None:
      img = sl.upsample2d(img, sl.setup_filter())
    y = ToRGBLayer(self.img_channels, conv_clamp=self.conv_clamp, name="torgb")(x, ws[:, -1])
    img = img + y if img is not None else y
    return x, img


class SynthesisNetwork(nn.Module):
  """ws [B, num_ws, w_dim] -> images [B, R, R, C]."""
  resolution: int
  img_channels: int
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float | None = None
  impl: str = "xla"

  @nn.compact
  def __call__(self, ws: jax.Array) -> jax.Array:
    if ws.shape[1] != num_ws(self.resolution):
      raise ValueError(f"synthesis at {self.resolution}x{self.resolution} needs {num_ws(self.resolution)} ws, "
                       f"got {ws.shape[1]}")
    x = img = None
    w_idx = 0
    for i in range(2, int(math.log2(self.resolution)) + 1):
      res = 2**i
      n_conv = 1 if res == 4 else 2
      x, img = SynthesisBlock(channels(res, self.channel_base, self.channel_max), res, self.img_channels,
                              first=res == 4, conv_clamp=self.conv_clamp, impl=self.impl,
                              name=f"b{res}")(x, img, ws[:, w_idx:w_idx + n_conv + 1])
      w_idx += n_conv
    return img


class StyleGAN2Generator(nn.Module):
  """G(z, y=None, train=True, truncation_psi=1.0) = synthesis(mapping(z, y, train, truncation_psi))."""
  resolution: int
  img_channels: int
  num_classes: int = 0
  w_dim: int = 512
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  channel_base: int = 32768
  channel_max: int = 512
  conv_clamp: float | None = 256.0
  style_mixing_prob: float = 0.9
  w_avg_beta: float = 0.995
  impl: str = "xla"

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def setup(self):
    self.mapping_net = MappingNetwork(self.w_dim, self.num_classes, self.mapping_layers, self.mapping_lr_mul)
    self.synthesis_net = SynthesisNetwork(self.resolution, self.img_channels, self.channel_base,
                                          self.channel_max, self.conv_clamp, self.impl)
    self.w_avg = self.variable("stats", "w_avg", jnp.zeros, (self.w_dim,))

  def mapping(self, z: jax.Array, y: jax.Array | None = None, train: bool = True,
              truncation_psi: float = 1.0) -> jax.Array:
    """z [B, z_dim] -> ws [B, num_ws, w_dim]: w_avg update and style mixing in training
    (`MappingNetwork.forward`, `StyleGAN2Loss.run_G`), truncation towards w_avg when psi != 1."""
    w = self.mapping_net(z, y)
    if train and self.w_avg_beta is not None and self.is_mutable_collection("stats"):
      mean = jnp.mean(jax.lax.stop_gradient(w), axis=0)
      self.w_avg.value = mean + self.w_avg_beta * (self.w_avg.value - mean)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, self.w_dim))
    if train and self.style_mixing_prob > 0:
      k_cut, k_prob, k_z = jax.random.split(self.make_rng("noise"), 3)
      cutoff = jax.random.randint(k_cut, (), 1, self.num_ws)
      cutoff = jnp.where(jax.random.uniform(k_prob) < self.style_mixing_prob, cutoff, self.num_ws)
      w2 = self.mapping_net(jax.random.normal(k_z, z.shape, z.dtype), y)
      ws = jnp.where((jnp.arange(self.num_ws) < cutoff)[None, :, None], ws, w2[:, None])
    if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1):
      ws = self.w_avg.value + truncation_psi * (ws - self.w_avg.value)
    return ws

  def synthesis(self, ws: jax.Array, train: bool = True) -> jax.Array:
    del train   # the synthesis network has no train-mode behaviour; noise is random in both modes
    return self.synthesis_net(ws)

  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True,
               truncation_psi: float = 1.0) -> jax.Array:
    return self.synthesis(self.mapping(z, y, train, truncation_psi), train)


class DiscriminatorBlock(nn.Module):
  """fromRGB (first block only), conv0 3x3, conv1 3x3 down 2, and the 1x1 down-2 skip (resnet)."""
  tmp_features: int
  out_features: int
  first: bool
  architecture: str = "resnet"
  conv_clamp: float | None = None
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array | None, img: jax.Array) -> jax.Array:
    kw = dict(conv_clamp=self.conv_clamp, impl=self.impl)
    if self.first:
      x = sl.EqualizedConv(self.tmp_features, 1, activation="lrelu", name="fromrgb", **kw)(img)
    if self.architecture == "resnet":
      y = sl.EqualizedConv(self.out_features, 1, use_bias=False, down=2, impl=self.impl,
                           name="skip")(x, gain=math.sqrt(0.5))
      x = sl.EqualizedConv(self.tmp_features, 3, activation="lrelu", name="conv0", **kw)(x)
      x = sl.EqualizedConv(self.out_features, 3, activation="lrelu", down=2, name="conv1", **kw)(
          x, gain=math.sqrt(0.5))
      return y + x
    x = sl.EqualizedConv(self.tmp_features, 3, activation="lrelu", name="conv0", **kw)(x)
    return sl.EqualizedConv(self.out_features, 3, activation="lrelu", down=2, name="conv1", **kw)(x)


class DiscriminatorEpilogue(nn.Module):
  """4x4: minibatch stddev, 3x3 conv, dense C·16 -> C, dense -> 1 (or cmap_dim), projection."""
  features: int
  cmap_dim: int = 0
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: jax.Array, cmap: jax.Array | None) -> jax.Array:
    if self.mbstd_num_channels > 0:
      x = sl.minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
    x = sl.EqualizedConv(self.features, 3, activation="lrelu", conv_clamp=self.conv_clamp, name="conv")(x)
    # Flattened in NCHW order, as the official `x.flatten(1)`, so its fc weights load unchanged.
    x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
    x = sl.EqualizedDense(self.features, activation="lrelu", name="fc")(x)
    x = sl.EqualizedDense(self.cmap_dim or 1, name="out")(x)
    if self.cmap_dim > 0:
      x = jnp.sum(x * cmap, axis=1, keepdims=True) * (1.0 / math.sqrt(self.cmap_dim))
    return x


class StyleGAN2Discriminator(nn.Module):
  """D(x, y=None, train=True) -> logits [B]; `train` is unused (D has no state)."""
  resolution: int
  num_classes: int = 0
  channel_base: int = 32768
  channel_max: int = 512
  architecture: str = "resnet"
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  conv_clamp: float | None = 256.0
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    del train
    img, h = x, None
    ch = lambda res: channels(res, self.channel_base, self.channel_max)  # noqa: E731
    for i in range(int(math.log2(self.resolution)), 2, -1):
      res = 2**i
      h = DiscriminatorBlock(ch(res), ch(res // 2), first=res == self.resolution, architecture=self.architecture,
                             conv_clamp=self.conv_clamp, impl=self.impl, name=f"b{res}")(h, img)
    cmap = None
    cmap_dim = ch(4) if self.num_classes > 0 else 0
    if cmap_dim:
      cmap = MappingNetwork(cmap_dim, self.num_classes, self.mapping_layers, self.mapping_lr_mul,
                            name="mapping")(None, y)
    out = DiscriminatorEpilogue(ch(4), cmap_dim, self.mbstd_group_size, self.mbstd_num_channels,
                                self.conv_clamp, name="b4")(h, cmap)
    return out[:, 0]


def _defaults() -> dict:
  return {"z_dim": 512, "z_dist": "normal", "w_dim": 512, "mapping_layers": 8, "mapping_lr_mul": 0.01,
          "channel_base": 32768, "channel_max": 512, "conv_clamp": 256, "style_mixing_prob": 0.9,
          "w_avg_beta": 0.995, "d_architecture": "resnet", "mbstd_group_size": 4, "mbstd_num_channels": 1,
          "conv_impl": "auto"}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'stylegan2' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w or h < 8 or h & (h - 1):
    raise ConfigError(f"model 'stylegan2' needs square images of a power-of-two size >= 8 (8, 16, ..., 1024), "
                      f"got {h}x{w}")
  if c.conditional and spec.num_classes == 0:
    raise ConfigError("model.conditional needs a dataset with labels; this one has none (set model.conditional=False)")
  if c.d_architecture not in D_ARCHITECTURES:
    raise ConfigError(f"unknown model.d_architecture {c.d_architecture!r}; valid choices: {', '.join(D_ARCHITECTURES)}")
  if c.z_dim < 1 or c.w_dim < 1 or c.mapping_layers < 1:
    raise ConfigError("model.z_dim, model.w_dim and model.mapping_layers must be >= 1")
  num_classes = spec.num_classes if c.conditional else 0
  clamp = float(c.conv_clamp) if c.conv_clamp else None
  impl = layers.resolve_impl(c.conv_impl)
  g = StyleGAN2Generator(h, ch, num_classes, c.w_dim, c.mapping_layers, c.mapping_lr_mul, c.channel_base,
                         c.channel_max, clamp, c.style_mixing_prob, c.w_avg_beta, impl)
  d = StyleGAN2Discriminator(h, num_classes, c.channel_base, c.channel_max, c.d_architecture, c.mbstd_group_size,
                             c.mbstd_num_channels, 8, 0.01, clamp, impl)
  return g, d


MODELS.register("stylegan2")(ModelEntry(_defaults, _build, truncation="w"))
