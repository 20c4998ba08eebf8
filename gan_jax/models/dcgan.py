"""DCGAN, Radford, Metz & Chintala 2015 ("Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks"), as the paper and its reference code specify:

G: z (100-d, uniform in [-1, 1]) -> linear projection to 4x4 x (8·ngf at 64x64) -> BN -> ReLU,
   then stride-2 5x5 fractionally-strided convolutions halving the channels (BN + ReLU after
   each), the last one to the image channels with tanh and no BN (paper sec. 3 and fig. 1).
D: stride-2 5x5 convolutions doubling the channels from ndf, LeakyReLU(0.2), BN on every layer
   but the first, down to 4x4, then flatten and one linear logit (no pooling, no hidden FC).
`conv_impl` picks how the strided convolutions and their gradients are computed (same math and parameters, see
gan_jax/models/layers.py): "subpixel", "xla", or "auto" (subpixel on CPU, xla elsewhere).
Weights ~ N(0, 0.02); BN scale ~ N(1, 0.02) (paper sec. 4). No layer has a bias, as in the
reference code: BN's shift takes its place, and the output layers have none. The number of stride-2 layers
follows the resolution: 4 at 64x64 (ngf = ndf = 128 in the paper's LSUN model), 3 at 32x32,
2 at 16x16. `g_width` = ngf, `d_width` = ndf.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers

_W_INIT = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _batch_norm(train: bool) -> nn.BatchNorm:
  # Under jit on a global (sharded) batch the statistics are over the whole global batch,
  # so 1 device and N devices normalize identically.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      scale_init=_bn_scale_init)


def num_stages(resolution: int) -> int:
  n = math.log2(resolution / 4)
  if resolution < 8 or n != int(n):
    raise ConfigError(f"DCGAN needs a resolution of 4·2^n (8, 16, 32, 64, 128...), got {resolution}")
  return int(n)


class DCGANGenerator(nn.Module):
  resolution: int
  channels: int
  width: int = 128
  kernel_size: int = 5
  conv_impl: str = "subpixel"

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    n = num_stages(self.resolution)
    c = self.width * 2 ** (n - 1)
    k = (self.kernel_size, self.kernel_size)
    x = nn.Dense(4 * 4 * c, use_bias=False, kernel_init=_W_INIT)(z).reshape(-1, 4, 4, c)
    x = nn.relu(_batch_norm(train)(x))
    for i in range(n):
      c = c // 2 if i < n - 1 else self.channels
      x = layers.ConvTranspose(c, k, strides=(2, 2), padding="SAME", use_bias=False, kernel_init=_W_INIT,
                               impl=self.conv_impl, name=f"ConvTranspose_{i}")(x)
      if i < n - 1:
        x = nn.relu(_batch_norm(train)(x))
    return jnp.tanh(x)


class DCGANDiscriminator(nn.Module):
  resolution: int
  width: int = 128
  kernel_size: int = 5
  conv_impl: str = "subpixel"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    n = num_stages(self.resolution)
    k = (self.kernel_size, self.kernel_size)
    for i in range(n):
      x = layers.Conv(self.width * 2**i, k, strides=(2, 2), padding="SAME", use_bias=False, kernel_init=_W_INIT,
                      impl=self.conv_impl, name=f"Conv_{i}")(x)
      x = nn.leaky_relu(_batch_norm(train)(x) if i else x, 0.2)
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(1, use_bias=False, kernel_init=_W_INIT)(x)[..., 0]


def _defaults() -> dict:
  return {"z_dim": 100, "z_dist": "uniform", "g_width": 128, "d_width": 128, "kernel_size": 5, "conv_impl": "auto"}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'dcgan' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w:
    raise ConfigError(f"model 'dcgan' needs square images, got {h}x{w}")
  num_stages(h)
  impl = layers.resolve_impl(c.conv_impl)
  return (DCGANGenerator(h, ch, c.g_width, c.kernel_size, impl),
          DCGANDiscriminator(h, c.d_width, c.kernel_size, impl))


MODELS.register("dcgan")(ModelEntry(_defaults, _build))
