"""SAGAN: Zhang, Goodfellow, Metaxas & Odena 2019 ("Self-Attention Generative Adversarial
Networks"), the ImageNet 128x128 model of the official TensorFlow code
(brain-research/self-attention-gan: generator.py, discriminator.py, non_local.py, ops.py,
train_imagenet.py, model.py), with PyTorch-StudioGAN's ImageNet SAGAN config
(src/configs/ImageNet/SAGAN-256.yaml) as a second source.

G: z ~ N(0, I_128) -> SN-linear to 4x4 x 16·gf -> five up blocks 16gf -> 16gf -> 8gf -> 4gf -> 2gf -> gf
   (generator.block: CBN -> ReLU -> nearest 2x -> SN-conv3 -> CBN -> ReLU -> SN-conv3, shortcut
   nearest 2x -> SN-conv1, all convs with bias) -> BN -> ReLU -> SN-conv3 to RGB -> tanh.
   Spectral norm on every weight of G (sec. 4.1: "spectral normalization for both G and D");
   conditional BN (ops.ConditionalBatchNorm: BN without affine, per-class gamma/beta tables,
   decay 0.999, eps 1e-5; the last BN has its own scale and shift, decay 0.9999).
D: optimized block to df, then blocks to 2df, 4df, 8df, 16df (downsampling), one block at 16df
   without (discriminator.block: ReLU -> SN-conv3 to the output width -> ReLU -> SN-conv3
   [-> avg pool], shortcut SN-conv1 [-> avg pool]) -> ReLU -> global sum pooling -> SN-linear
   (with bias) + projection <SN-embed(y), h>.
Self-attention (non_local.sn_non_local_block_sim, = layers.SelfAttention: SN 1x1 convs without
bias to C/8, C/8, C/2 and back to C, 2x2 max-pooled keys and values, gamma init 0) sits on the
feature maps of size `attn_res` in both G and D. Table 1 of the paper varies it (feat8 ... feat64);
the published headline result (IS 52.52, FID 18.65; table 2) is feat64, the official code's
generator_test_64 / discriminator_test_64 and StudioGAN's attn_g_loc [4] / attn_d_loc [1]:
G after its 64x64 block (2gf channels), D after its optimized block (df channels). `attn_res` = 32
gives feat32 (the official README's `--generator_type test`, FID 18.28 in table 1); 0 none.
Widths: gf = `g_width` = 64, df = `d_width` = 64 (train_imagenet flags). Glorot-uniform
(xavier) initialization of every weight, zero biases.

Other resolutions R = 4·2^n: n up blocks from 4x4, widths 2^(n-1)·gf ... gf (16gf ... gf at 128),
and the mirror image in D. Unconditional: plain BN with affine in G, no projection in D.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers
from gan_jax.models.sngan_resnet import DBlock, DOptimizedBlock, GBlock, ProjectionHead, check_spec, glorot_uniform

_INIT = glorot_uniform(1.0)


def num_blocks(resolution: int) -> int:
  n = math.log2(resolution / 4)
  if resolution < 16 or n != int(n):
    raise ConfigError(f"sagan needs a square resolution 4·2^n >= 16 (128 for ImageNet), got {resolution}")
  return int(n)


def feature_sizes(resolution: int) -> tuple[list[int], list[int]]:
  """Spatial size after each G block, and after D's optimized block and each down block."""
  n = num_blocks(resolution)
  return [4 * 2 ** (i + 1) for i in range(n)], [resolution // 2 ** (i + 1) for i in range(n)]


class SAGANGenerator(nn.Module):
  resolution: int
  channels: int
  width: int = 64
  num_classes: int = 0
  attn_res: int = 64

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    if self.num_classes and y is None:
      raise ValueError("a conditional generator needs labels y")
    y = y if self.num_classes else None
    n = num_blocks(self.resolution)
    sizes, _ = feature_sizes(self.resolution)
    c0 = self.width * 2 ** (n - 1)
    x = layers.SNDense(4 * 4 * c0, kernel_init=_INIT, name="linear")(z, train).reshape(-1, 4, 4, c0)
    for i in range(n):
      c = self.width * 2 ** (n - 1 - i)
      x = GBlock(c, self.num_classes, use_sn=True, momentum=0.999, epsilon=1e-5, conv_init=_INIT,
                 shortcut_init=_INIT, name=f"block{i + 1}")(x, y, train)
      if sizes[i] == self.attn_res:
        x = layers.SelfAttention(use_sn=True, kernel_init=_INIT, name="attention")(x, train)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9999, epsilon=1e-5, name="bn")(x))
    x = layers.SNConv(self.channels, (3, 3), kernel_init=_INIT, name="conv_out")(x, train)
    return jnp.tanh(x)


class SAGANDiscriminator(nn.Module):
  resolution: int
  width: int = 64
  num_classes: int = 0
  attn_res: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    n = num_blocks(self.resolution)
    _, sizes = feature_sizes(self.resolution)
    block = lambda c, down, name: DBlock(c, down=down, hidden_from_input=False, conv_init=_INIT,  # noqa: E731
                                         shortcut_init=_INIT, name=name)
    x = DOptimizedBlock(self.width, conv_init=_INIT, shortcut_init=_INIT, name="block0")(x, train)
    for i in range(n):
      if sizes[i] == self.attn_res:
        x = layers.SelfAttention(use_sn=True, kernel_init=_INIT, name="attention")(x, train)
      if i < n - 1:
        x = block(self.width * 2 ** (i + 1), True, f"block{i + 1}")(x, train)
    x = block(x.shape[-1], False, f"block{n}")(x, train)
    return ProjectionHead(self.num_classes, use_bias=True, kernel_init=_INIT, name="head")(
        x, y if self.num_classes else None, train)


def _defaults() -> dict:
  return {"z_dim": 128, "z_dist": "normal", "g_width": 64, "d_width": 64, "attn_res": 64}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  res, ch = check_spec("sagan", c, spec)
  g_sizes, d_sizes = feature_sizes(res)
  valid = sorted(set(g_sizes[:-1]) & set(d_sizes))
  if c.attn_res and c.attn_res not in valid:
    raise ConfigError(f"model.attn_res={c.attn_res} is not a feature-map size of sagan at {res}x{res}; "
                      f"valid: 0 (none), {', '.join(map(str, valid))}")
  if c.attn_res:
    n = num_blocks(res)
    g_ch = c.g_width * 2 ** (n - 1 - g_sizes.index(c.attn_res))
    d_ch = c.d_width * 2 ** d_sizes.index(c.attn_res)
    if g_ch % 8 or d_ch % 8:
      raise ConfigError(f"sagan's attention at {c.attn_res}x{c.attn_res} sees {g_ch} (G) and {d_ch} (D) channels; "
                        "both must be multiples of 8: raise model.g_width / model.d_width")
  nc = spec.num_classes if c.conditional else 0
  return (SAGANGenerator(res, ch, c.g_width, nc, c.attn_res),
          SAGANDiscriminator(res, c.d_width, nc, c.attn_res))


MODELS.register("sagan")(ModelEntry(_defaults, _build))
