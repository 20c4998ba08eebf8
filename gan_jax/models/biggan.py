"""BigGAN, Brock, Donahue & Simonyan 2019 ("Large Scale GAN Training for High Fidelity Natural Image
Synthesis"), layer for layer as the authors' PyTorch code (ajbrock/BigGAN-PyTorch, `BigGAN.py` and
`layers.py` at commit 98459431) builds it; google/compare_gan's `resnet_biggan.py` is the second source.

Generator (BigGAN.py `Generator`, paper fig. 15a and appendix B):
- Shared class embedding (paper sec. 3 "shared embedding"): one non-spectrally-normalized table
  `shared` [classes, shared_dim] (BigGAN.py: "we use a non-spectral-normed embedding here regardless").
- Hierarchical latents ("skip-z", sec. 3): z is split into len(blocks) + 1 equal chunks; the first
  feeds the linear layer, chunk i + 1 is concatenated after the shared embedding, [emb, z_i], and
  conditions every BN of block i (BigGAN.py `forward`: `torch.cat([y, item], 1)`). At 128x128,
  z 120 = 6 x 20 and the BN input is 128 + 20 (paper appendix B; launch_BigGAN_bs256x8.sh).
- SN-linear z_0 -> 4x4x(16ch) (with bias), then one residual "ResBlock up" per resolution (layers.py
  `GBlock`): cBN -> ReLU -> nearest 2x upsample -> SN-conv3x3 -> cBN -> ReLU -> SN-conv3x3, plus a
  shortcut of upsample -> SN-conv1x1 (always learnable in G since every block upsamples).
- Class-conditional BN (layers.py `ccbn`): BN without affine, gain = 1 + W_g c, bias = W_b c with
  bias-free, spectrally normalized linear maps of the conditioning vector c; that is the shared
  `layers.ConditionalBatchNorm` in vector mode. Without a shared embedding (the CIFAR script) ccbn's
  linear maps are plain `nn.Embedding` tables of the labels: here the same layer with one-hot labels,
  no SN and no bias, i.e. gain = 1 + W_g[y], bias = W_b[y] with the same parameters and init.
- Self-attention (SAGAN non-local block, `layers.Attention`) after the block whose output has
  `attention` x `attention` pixels: 64 for the 128x128 model (launch_BigGAN_bs256x8.sh `--G_attn 64`).
- Output: unconditional BN (with gain and bias) -> ReLU -> SN-conv3x3 to the image channels -> tanh.
- Unconditional (`model.conditional=False`, as compare_gan's BigGAN without labels): no class
  embedding and no projection; with `hier` each block's BN is conditioned on its z chunk alone,
  without it the blocks' BNs are plain.
Channel multipliers (BigGAN.py `G_arch`), in -> out per block: 128: 16,16,8,4,2 -> 16,8,4,2,1;
64: 16,16,8,4 -> 16,8,4,2; 32: 4,4,4 -> 4,4,4 (times `g_width` = G_ch).

Discriminator (BigGAN.py `Discriminator`, layers.py `DBlock`, wide D as in SAGAN/BigGAN):
- "ResBlock down": [ReLU] -> SN-conv3x3 (out) -> ReLU -> SN-conv3x3 (out) -> 2x2 average pool;
  the first block has no pre-activation and pools before its 1x1 shortcut conv, the others
  convolve then pool; the shortcut is identity when channels match and the block keeps its size.
- Self-attention after the block tagged with resolution `attention` (D_arch's "resolution" row,
  copied as is: at 32x32 it tags all four blocks 16).
- ReLU, global sum pooling (SNGAN), an SN-linear logit (with bias) plus the projection term
  <SNEmbed(y), h> (Miyato & Koyama 2018).
Channel multipliers (BigGAN.py `D_arch`), out per block: 128: 1,2,4,8,16,16 (last block no pool);
64: 1,2,4,8,16 (last no pool); 32: 4,4,4,4 (only the first two pool), times `d_width` = D_ch.

Spectral norm everywhere in G and D but G's embeddings and BNs (paper sec. 3: SN in G as
SAGAN), one power iteration per training call, u vectors in "batch_stats" (`layers.SNDense`...);
`sn_eps` is BigGAN-PyTorch's `--SN_eps` (1e-6 in the ImageNet scripts, 1e-8 its default),
`bn_eps` its `--BN_eps` 1e-5, BN momentum 0.1 in PyTorch terms (0.9 here), running variances moved with the
batch variance's n / (n - 1) as PyTorch's F.batch_norm (`bn_bessel`, flax's own: biased). BN statistics are over
the global batch under jit: the paper's cross-replica BatchNorm (sec. 3). `init`: "ortho" (paper
sec. 3: orthogonal init, Saxe et al. 2014; ImageNet scripts `--G_init ortho --D_init ortho`), "N02" (N(0, 0.02),
the CIFAR script) or "glorot", applied to every conv, linear and embedding of G and D (BigGAN.py
`init_weights`). Truncation trick (sec. 3.1): the sampler draws truncated-normal z (`truncation="z"`).
Parameter counts equal the official ones (tests/test_model_biggan.py).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers

# BigGAN.py G_arch: channel multipliers (in, out) of each "ResBlock up"; block i outputs 8 * 2^i pixels.
G_ARCH = {128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
          64: ((16, 16, 8, 4), (16, 8, 4, 2)),
          32: ((4, 4, 4), (4, 4, 4))}
# BigGAN.py D_arch: output multipliers, downsampling and "resolution" tag (for attention) of each block.
D_ARCH = {128: ((1, 2, 4, 8, 16, 16), (True,) * 5 + (False,), (64, 32, 16, 8, 4, 4)),
          64: ((1, 2, 4, 8, 16), (True,) * 4 + (False,), (32, 16, 8, 4, 4)),
          32: ((4, 4, 4, 4), (True, True, False, False), (16, 16, 16, 16))}
INITS = {"ortho": nn.initializers.orthogonal(), "N02": nn.initializers.normal(0.02),
         "glorot": nn.initializers.glorot_uniform()}
BOTTOM = 4   # BigGAN.py bottom_width


def _upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x (F.interpolate(scale_factor=2), whose default mode is 'nearest')."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avg_pool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def num_z_chunks(resolution: int, hier: bool) -> int:
  """How many pieces z is split into: one per G block plus the linear layer's (BigGAN.py num_slots)."""
  return len(G_ARCH[resolution][0]) + 1 if hier else 1


class GBlock(nn.Module):
  """layers.py GBlock: cBN-ReLU-up-conv3x3-cBN-ReLU-conv3x3 + up-conv1x1 shortcut."""
  features: int
  cbn: functools.partial        # ConditionalBatchNorm with its options bound
  conv: functools.partial       # SNConv with init and eps bound

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array, train: bool) -> jax.Array:
    h = nn.relu(self.cbn(name="bn1")(x, cond, train))
    h = self.conv(self.features, name="conv1")(_upsample(h), train)
    h = nn.relu(self.cbn(name="bn2")(h, cond, train))
    h = self.conv(self.features, name="conv2")(h, train)
    return h + self.conv(self.features, kernel_size=(1, 1), name="conv_sc")(_upsample(x), train)


class DBlock(nn.Module):
  """layers.py DBlock, wide (hidden channels = out channels)."""
  features: int
  preactivation: bool
  downsample: bool
  conv: functools.partial

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = nn.relu(x) if self.preactivation else x
    h = self.conv(self.features, name="conv1")(h, train)
    h = self.conv(self.features, name="conv2")(nn.relu(h), train)
    if self.downsample:
      h = _avg_pool(h)
    if x.shape[-1] == self.features and not self.downsample:
      return h + x
    shortcut = functools.partial(self.conv(self.features, kernel_size=(1, 1), name="conv_sc"), train=train)
    if self.preactivation:        # conv, then pool (DBlock.shortcut)
      x = shortcut(x)
      return h + (_avg_pool(x) if self.downsample else x)
    return h + shortcut(_avg_pool(x) if self.downsample else x)


def _batch_norm(x: jax.Array, train: bool, epsilon: float, bessel: bool, name: str) -> jax.Array:
  """BN with its own gain and bias, momentum 0.1 in PyTorch terms; `bessel`: PyTorch's running variance."""
  bn = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon, name=name)
  out = bn(x)
  if bessel:
    layers.bessel_running_var(bn, x)
  return out


class _PlainBatchNorm(nn.Module):
  """BN with its own gain and bias, called like ConditionalBatchNorm (the condition is unused)."""
  epsilon: float = 1e-5
  bessel: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, cond: None, train: bool) -> jax.Array:
    return _batch_norm(x, train, self.epsilon, self.bessel, "bn")


class BigGANGenerator(nn.Module):
  resolution: int
  channels: int
  num_classes: int
  width: int = 96               # G_ch
  z_dim: int = 120
  shared_dim: int = 128
  shared: bool = True
  hier: bool = True
  attention: int = 64           # 0: no self-attention
  weight_init: str = "ortho"
  sn_eps: float = 1e-6
  bn_eps: float = 1e-5
  bn_bessel: bool = True        # running variances as PyTorch's BatchNorm (n / (n - 1)), see layers.bessel_running_var

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    if (y is None) != (self.num_classes == 0):
      raise ValueError("pass labels y exactly when the generator is conditional (num_classes > 0)")
    ins, outs = G_ARCH[self.resolution]
    kinit = INITS[self.weight_init]
    conv = functools.partial(layers.SNConv, kernel_init=kinit, sn_eps=self.sn_eps)
    n = len(outs)
    zs = jnp.split(z, n + 1, axis=-1) if self.hier else [z] + [None] * n
    if not self.num_classes:
      # Unconditional (compare_gan's BigGAN without labels): each block's BN is conditioned on its
      # z chunk alone with hierarchical z, and is a plain BN without it.
      conds = list(zs[1:])
      cbn = (functools.partial(layers.ConditionalBatchNorm, use_sn=True, use_bias=False, epsilon=self.bn_eps,
                               sn_eps=self.sn_eps, kernel_init=kinit, bessel=self.bn_bessel) if self.hier
             else functools.partial(_PlainBatchNorm, epsilon=self.bn_eps, bessel=self.bn_bessel))
    elif self.shared:
      emb = nn.Embed(self.num_classes, self.shared_dim, embedding_init=kinit, name="shared")(y)
      conds = [emb if zi is None else jnp.concatenate([emb, zi], axis=-1) for zi in zs[1:]]
      cbn = functools.partial(layers.ConditionalBatchNorm, use_sn=True, use_bias=False, epsilon=self.bn_eps,
                              sn_eps=self.sn_eps, kernel_init=kinit, bessel=self.bn_bessel)
    else:   # ccbn with nn.Embedding gains: a lookup is a product with the one-hot label, no SN
      conds = [jax.nn.one_hot(y, self.num_classes, dtype=z.dtype)] * n
      cbn = functools.partial(layers.ConditionalBatchNorm, use_sn=False, use_bias=False, epsilon=self.bn_eps,
                              kernel_init=kinit, bessel=self.bn_bessel)
    c0 = self.width * ins[0]
    h = layers.SNDense(BOTTOM * BOTTOM * c0, kernel_init=kinit, sn_eps=self.sn_eps, name="linear")(zs[0], train)
    h = h.reshape(-1, BOTTOM, BOTTOM, c0)
    for i in range(n):
      h = GBlock(self.width * outs[i], cbn, conv, name=f"block{i}")(h, conds[i], train)
      if 8 * 2**i == self.attention:
        h = layers.SelfAttention(kernel_init=kinit, sn_eps=self.sn_eps, name=f"attention{i}")(h, train)
    h = _batch_norm(h, train, self.bn_eps, self.bn_bessel, "out_bn")
    return jnp.tanh(conv(self.channels, name="out_conv")(nn.relu(h), train))


class BigGANDiscriminator(nn.Module):
  resolution: int
  num_classes: int
  width: int = 96               # D_ch
  attention: int = 64
  weight_init: str = "ortho"
  sn_eps: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    if (y is None) != (self.num_classes == 0):
      raise ValueError("pass labels y exactly when the discriminator is conditional (num_classes > 0)")
    outs, downs, tags = D_ARCH[self.resolution]
    kinit = INITS[self.weight_init]
    conv = functools.partial(layers.SNConv, kernel_init=kinit, sn_eps=self.sn_eps)
    h = x
    for i, (mult, down, tag) in enumerate(zip(outs, downs, tags)):
      h = DBlock(self.width * mult, preactivation=i > 0, downsample=down, conv=conv, name=f"block{i}")(h, train)
      if tag == self.attention:
        h = layers.SelfAttention(kernel_init=kinit, sn_eps=self.sn_eps, name=f"attention{i}")(h, train)
    h = jnp.sum(nn.relu(h), axis=(1, 2))                    # global sum pooling
    out = layers.SNDense(1, kernel_init=kinit, sn_eps=self.sn_eps, name="linear")(h, train)[:, 0]
    if not self.num_classes:
      return out
    embed = layers.SNEmbed(self.num_classes, h.shape[-1], embedding_init=kinit, sn_eps=self.sn_eps, name="embed")
    return out + jnp.sum(embed(y, train) * h, axis=-1)     # projection


def _defaults() -> dict:
  """The ImageNet 128x128 model of launch_BigGAN_bs256x8.sh (G_ch = D_ch = 96, dim_z 120, shared_dim 128,
  --hier --G_shared, attention at 64, ortho init, SN_eps 1e-6, BN_eps 1e-5)."""
  return {"z_dim": 120, "z_dist": "normal", "g_width": 96, "d_width": 96, "shared_dim": 128,
          "shared": True, "hier": True, "attention": 64, "init": "ortho", "sn_eps": 1e-6, "bn_eps": 1e-5,
          "bn_bessel": True}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'biggan' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w or h not in G_ARCH:
    raise ConfigError(f"model 'biggan' supports square resolutions {sorted(G_ARCH)}, got {h}x{w}")
  if c.init not in INITS:
    raise ConfigError(f"unknown model.init {c.init!r}; valid choices: {', '.join(INITS)}")
  if c.z_dist != "normal":
    raise ConfigError(f"model 'biggan' samples z from a normal (truncated at sampling), got z_dist {c.z_dist!r}")
  num_classes = spec.num_classes if c.conditional else 0
  if c.hier and not c.shared and num_classes:
    raise ConfigError("model.hier needs model.shared=True (the z chunks are concatenated to the shared embedding)")
  chunks = num_z_chunks(h, c.hier)
  if c.z_dim % chunks:
    raise ConfigError(f"model.z_dim must be a multiple of {chunks} (hierarchical z at {h}x{h}), got {c.z_dim}")
  attn_channels = [c.g_width * m for i, m in enumerate(G_ARCH[h][1]) if 8 * 2**i == c.attention]
  attn_channels += [c.d_width * m for m, tag in zip(D_ARCH[h][0], D_ARCH[h][2]) if tag == c.attention]
  if min(c.g_width, c.d_width) < 1 or any(n % 8 for n in attn_channels):
    raise ConfigError(f"model.g_width and d_width must be >= 1 and give self-attention (at {c.attention}) a multiple"
                      f" of 8 channels, got {c.g_width} and {c.d_width}")
  g = BigGANGenerator(h, ch, num_classes, c.g_width, c.z_dim, c.shared_dim, c.shared, c.hier,
                      c.attention, c.init, c.sn_eps, c.bn_eps, c.bn_bessel)
  d = BigGANDiscriminator(h, num_classes, c.d_width, c.attention, c.init, c.sn_eps)
  return g, d


MODELS.register("biggan")(ModelEntry(_defaults, _build, truncation="z"))
