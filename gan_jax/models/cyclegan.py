"""CycleGAN's networks, Zhu, Park, Isola & Efros 2017 ("Unpaired Image-to-Image Translation
using Cycle-Consistent Adversarial Networks"), appendix 7.2, as the official PyTorch code builds
them (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py: `ResnetGenerator` with
norm='instance', `NLayerDiscriminator` 'basic').

G (Johnson et al. 2016's network): c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-3.
   c7s1-k: 7x7 stride-1 convolution after reflection padding 3, instance norm, ReLU; dk: 3x3
   stride-2 convolution (zero padding 1), instance norm, ReLU; Rk: residual block of two 3x3
   convolutions after reflection padding 1, instance norm after each, ReLU between; uk: 3x3
   stride-1/2 transposed convolution, instance norm, ReLU; the last c7s1-3 has no norm and a tanh.
   9 blocks at 256x256, 6 at 128x128 and below (the paper; the official 'resnet_6blocks').
D (70x70 PatchGAN): C64-C128-C256-C512, 4x4 convolutions with zero padding 1, stride 2 but the
   last (stride 1), instance norm on all but C64, LeakyReLU 0.2, then a 4x4 stride-1 convolution
   to one channel: a logit per 70x70 patch, [B, h, w] (30x30 at 256x256, 2x2 at 32x32).
Instance norm is PyTorch's InstanceNorm2d(affine=False): no parameters, biased variance, eps 1e-5;
with it every convolution has a bias (the official `use_bias`). Weights ~ N(0, 0.02), biases 0
(the official init_weights 'normal'). `g_width` = ngf, `d_width` = ndf.

A "translation" model: G(x) maps an image to an image of the same shape and D(x) returns patch
logits, so the trainer runs it through gan_jax/train/kinds/translation.py instead of the G(z) step.
The transposed convolutions compute PyTorch's ConvTranspose2d(3, stride=2, padding=1,
output_padding=1) with the kernel stored unflipped (HWIO); see `upsample_conv`.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers

_W_INIT = nn.initializers.normal(0.02)
_PAD1 = ((1, 1), (1, 1))


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Ulyanov et al. 2016: x [B, H, W, C] normalized per example and channel over H, W (biased
  variance, no affine parameters: InstanceNorm2d(affine=False)); statistics in float32."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def reflect_pad(x: jax.Array, p: int) -> jax.Array:
  """ReflectionPad2d(p) on [B, H, W, C]: mirrors without repeating the edge (abc -> cbabcba)."""
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


class UpsampleConv(nn.Module):
  """PyTorch's ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1): [B, n, n, C] -> [B, 2n, 2n, F].

  That layer reads the zero-dilated input at offsets o-1, o, o+1 for output o; a "SAME" stride-2
  transposed convolution reads o-2, o-1, o. So the input gets one zero row and column at the end
  and the SAME output (2n+2 wide) is cropped to [1, 2n+1): PyTorch's function with the kernel
  stored unflipped (PyTorch's kernel is this one flipped in H and W). Sub-pixel on CPU (layers.py)."""
  features: int
  impl: str = "subpixel"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n_h, n_w = x.shape[1:3]
    x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    y = layers.ConvTranspose(self.features, (3, 3), strides=(2, 2), padding="SAME", kernel_init=_W_INIT,
                             impl=self.impl, name="conv")(x)
    return y[:, 1:2 * n_h + 1, 1:2 * n_w + 1]


class ResnetBlock(nn.Module):
  """Rk: x + IN(conv3(pad(ReLU(IN(conv3(pad(x))))))) (reflection padding, no ReLU after the sum)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=_W_INIT, name="conv_0")(reflect_pad(x, 1))
    h = nn.relu(instance_norm(h))
    h = nn.Conv(self.features, (3, 3), padding="VALID", kernel_init=_W_INIT, name="conv_1")(reflect_pad(h, 1))
    return x + instance_norm(h)


class ResnetGenerator(nn.Module):
  """x: [B, H, W, C_in] in [-1, 1] -> [B, H, W, channels] in [-1, 1] (H, W multiples of 4)."""
  channels: int
  width: int = 64
  num_blocks: int = 9
  conv_impl: str = "subpixel"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    del train   # instance norm uses the statistics of each image in training and inference alike
    w = self.width
    h = nn.Conv(w, (7, 7), padding="VALID", kernel_init=_W_INIT, name="c7s1")(reflect_pad(x, 3))
    h = nn.relu(instance_norm(h))
    for i in range(2):   # d128, d256
      h = layers.Conv(w * 2 ** (i + 1), (3, 3), strides=(2, 2), padding=_PAD1, kernel_init=_W_INIT,
                      impl=self.conv_impl, name=f"down_{i}")(h)
      h = nn.relu(instance_norm(h))
    for i in range(self.num_blocks):
      h = ResnetBlock(w * 4, name=f"block_{i}")(h)
    for i in range(2):   # u128, u64
      h = nn.relu(instance_norm(UpsampleConv(w * 2 ** (1 - i), self.conv_impl, name=f"up_{i}")(h)))
    h = nn.Conv(self.channels, (7, 7), padding="VALID", kernel_init=_W_INIT, name="out")(reflect_pad(h, 3))
    return jnp.tanh(h)


class PatchDiscriminator(nn.Module):
  """x: [B, H, W, C] -> patch logits [B, h, w] (`num_layers` = 3: the 70x70 PatchGAN)."""
  width: int = 64
  num_layers: int = 3
  conv_impl: str = "subpixel"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    del train
    h = x
    for i in range(self.num_layers + 1):
      stride = 2 if i < self.num_layers else 1
      h = layers.Conv(self.width * min(2 ** i, 8), (4, 4), strides=(stride, stride), padding=_PAD1,
                      kernel_init=_W_INIT, impl=self.conv_impl, name=f"conv_{i}")(h)
      h = nn.leaky_relu(instance_norm(h) if i else h, 0.2)
    return nn.Conv(1, (4, 4), padding=_PAD1, kernel_init=_W_INIT, name="logits")(h)[..., 0]


def num_blocks(resolution: int, blocks: int) -> int:
  """`model.g_blocks`, or 0: the paper's choice, 9 residual blocks above 128x128 and 6 at or below."""
  return blocks or (9 if resolution > 128 else 6)


def patch_output_size(resolution: int, num_layers: int) -> int:
  """Side of D's patch-logit map: each stride-2 4x4 conv (padding 1) halves it, each stride-1 one takes 1."""
  n = resolution
  for _ in range(num_layers):
    n //= 2
  return n - 2


def _defaults() -> dict:
  # lambda_*: the loss weights of eq. 3 and sec. 5.2 (identity: a fraction of lambda_cycle, as the
  # official lambda_identity); pool_size: Shrivastava et al.'s history of generated images (sec. 4);
  # lr_hold_steps then lr_decay_steps: constant, then linear to 0 (sec. 4: 100 + 100 epochs).
  return {"g_width": 64, "d_width": 64, "g_blocks": 0, "d_layers": 3, "conv_impl": "auto",
          "lambda_cycle": 10.0, "lambda_identity": 0.5, "pool_size": 50, "lr_hold_steps": 0, "lr_decay_steps": 0}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'cyclegan' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w or h % 4:
    raise ConfigError(f"model 'cyclegan' needs square images with a side divisible by 4, got {h}x{w}")
  if c.d_layers < 1 or patch_output_size(h, c.d_layers) < 1:
    raise ConfigError(f"model.d_layers={c.d_layers}: the PatchGAN's stride-2 convolutions leave no patch at "
                      f"{h}x{h}; use d_layers >= 1 and a larger resolution (at least 24 for d_layers=3) or fewer")
  impl = layers.resolve_impl(c.conv_impl)
  return (ResnetGenerator(ch, c.g_width, num_blocks(h, c.g_blocks), impl),
          PatchDiscriminator(c.d_width, c.d_layers, impl))


MODELS.register("cyclegan")(ModelEntry(_defaults, _build, kind="translation"))
