"""StackGAN, Zhang et al. 2017 ("StackGAN: Text to Photo-realistic Image Synthesis with Stacked
Generative Adversarial Networks", ICCV), as the official PyTorch code builds it
(hanzhanggit/StackGAN-Pytorch, code/model.py; widths from code/miscc/config.py, the CUB/Oxford-102
setting: condition 128, gf_dim 128, df_dim 64, 4 residual blocks).

Conditioning augmentation (sec. 3.1, `CANet`): a text embedding phi_t [B, T] -> fc -> ReLU -> (mu,
log sigma²) [B, N_c] each, c_hat = mu + sigma * eps with eps ~ N(0, I) from the "noise" stream. The
ReLU over both halves is the official code's (CA_NET.encode), not the paper's.

Stage I (sec. 3.2, `Stage1Generator`): [z, c_hat] -> fc (no bias) -> BN1d -> ReLU -> 4x4 x 8·gf_dim,
then up blocks (nearest x2, 3x3 conv without bias, BN, ReLU) halving the channels, to the image by
a 3x3 conv and tanh: 64x64 with 4 blocks (4·2^n in general).
Stage II (sec. 3.3, `Stage2Generator`): the Stage-I image -> 3x3 conv, ReLU, two 4x4 stride-2 convs
with BN (-> 4·gf_dim at a quarter of the size), c_hat of its own CA tiled over that grid and
concatenated, a 3x3 conv with BN and ReLU, `r_num` residual blocks, then 2 + log2(upscale) up blocks
(4 for the paper's 64 -> 256) and the 3x3 conv with tanh.
Discriminators (`StackGANDiscriminator`): 4x4 stride-2 convs (no bias; BN on all but the first;
LeakyReLU 0.2) doubling from df_dim down to 4x4 (then, for Stage II's 256x256, 3x3 convs halving
back to 8·df_dim); the conditional head tiles mu (the official code conditions D on mu, not c_hat)
over the 4x4 grid, concatenates, 3x3 conv + BN + LeakyReLU and a 4x4 stride-4 conv to one logit;
Stage II adds an unconditional head (the 4x4 stride-4 conv alone). The official heads end in a
sigmoid for BCELoss; ours return the logit and the losses apply the sigmoid (the same function,
numerically stable).
Init (official weights_init): conv and linear weights N(0, 0.02), linear biases 0, BN scale
N(1, 0.02). No conv has a bias but the logit convs.

The generator `StackGANGenerator(stage)` holds the conditioning input (`embed`: a class-label
table, when the data has labels instead of text embeddings), Stage I (`stage1`) and, at stage 2,
Stage II (`stage2`) fed by the Stage-I image under stop_gradient: Stage II trains with the Stage-I
weights frozen (gan_jax/train/kinds/text2image.py loads them from the Stage-I workdir).
G(z, cond, train) -> (images, mu, logvar); D(x, mu, train) -> (cond logits [B], uncond logits [B] or
None). A "text2image" model: the trainer runs it with gan_jax/train/kinds/text2image.py.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry
from gan_jax.models.dcgan import _W_INIT, _batch_norm

CLASS_EMBEDDINGS = ("learned", "fixed")
_PAD1 = ((1, 1), (1, 1))


def _conv3(features: int, name: str | None = None) -> nn.Conv:
  """The official conv3x3: stride 1, padding 1, no bias."""
  return nn.Conv(features, (3, 3), padding=_PAD1, use_bias=False, kernel_init=_W_INIT, name=name)


def _down(features: int) -> nn.Conv:
  """Conv2d(·, features, 4, 2, 1, bias=False): halves the size."""
  return nn.Conv(features, (4, 4), strides=(2, 2), padding=_PAD1, use_bias=False, kernel_init=_W_INIT)


def _tile(c: jax.Array, size: int) -> jax.Array:
  """c [B, N] -> [B, size, size, N] (the official view + repeat)."""
  return jnp.broadcast_to(c[:, None, None, :], (c.shape[0], size, size, c.shape[-1]))


class CANet(nn.Module):
  """Conditioning augmentation: phi_t [B, T] -> (c_hat, mu, logvar), each [B, c_dim]."""
  c_dim: int

  @nn.compact
  def __call__(self, e: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    x = nn.relu(nn.Dense(2 * self.c_dim, kernel_init=_W_INIT, name="fc")(e))
    mu, logvar = x[:, :self.c_dim], x[:, self.c_dim:]
    eps = jax.random.normal(self.make_rng("noise"), mu.shape, mu.dtype)
    return mu + eps * jnp.exp(0.5 * logvar), mu, logvar


class UpBlock(nn.Module):
  """nearest x2 -> conv3x3 -> BN -> ReLU (the official upBlock)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return nn.relu(_batch_norm(train)(_conv3(self.features)(x)))


class ResBlock(nn.Module):
  """x + [conv3x3, BN, ReLU, conv3x3, BN](x), then ReLU (the official ResBlock)."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    c = x.shape[-1]
    h = nn.relu(_batch_norm(train)(_conv3(c)(x)))
    h = _batch_norm(train)(_conv3(c)(h))
    return nn.relu(h + x)


def _log2_steps(ratio: float, what: str) -> int:
  n = math.log2(ratio) if ratio > 0 else -1
  if n < 0 or n != int(n):
    raise ConfigError(f"model 'stackgan' needs {what} to be a power of 2, got {ratio:g}")
  return int(n)


class Stage1Generator(nn.Module):
  resolution: int
  channels: int
  c_dim: int = 128
  gf_dim: int = 128

  @nn.compact
  def __call__(self, z: jax.Array, e: jax.Array, train: bool = True):
    c_hat, mu, logvar = CANet(self.c_dim, name="ca_net")(e)
    ngf = 8 * self.gf_dim
    x = nn.Dense(ngf * 16, use_bias=False, kernel_init=_W_INIT, name="fc")(jnp.concatenate([z, c_hat], -1))
    x = nn.relu(_batch_norm(train)(x)).reshape(-1, 4, 4, ngf)
    for i in range(_log2_steps(self.resolution / 4, "the Stage-I resolution / 4")):
      x = UpBlock(ngf // 2 ** (i + 1), name=f"upsample{i + 1}")(x, train)
    return jnp.tanh(_conv3(self.channels, name="img")(x)), mu, logvar


class Stage2Generator(nn.Module):
  """Stage-I image [B, s, s, C] (+ the embedding) -> [B, s·upscale, s·upscale, C]."""
  channels: int
  c_dim: int = 128
  gf_dim: int = 128
  r_num: int = 4
  upscale: int = 4

  @nn.compact
  def __call__(self, image: jax.Array, e: jax.Array, train: bool = True):
    ngf = self.gf_dim
    x = nn.relu(_conv3(ngf)(image))
    x = nn.relu(_batch_norm(train)(_down(2 * ngf)(x)))
    x = nn.relu(_batch_norm(train)(_down(4 * ngf)(x)))                    # "encoder": 4·ngf at s/4
    c_hat, mu, logvar = CANet(self.c_dim, name="ca_net")(e)
    x = jnp.concatenate([x, _tile(c_hat, x.shape[1]).astype(x.dtype)], -1)
    x = nn.relu(_batch_norm(train)(_conv3(4 * ngf, name="hr_joint")(x)))
    for i in range(self.r_num):
      x = ResBlock(name=f"residual{i}")(x, train)
    for i in range(2 + _log2_steps(self.upscale, "model.upscale")):
      x = UpBlock(4 * ngf // 2 ** (i + 1), name=f"upsample{i + 1}")(x, train)
    return jnp.tanh(_conv3(self.channels, name="img")(x)), mu, logvar


class StackGANGenerator(nn.Module):
  """cond: text embeddings [B, t_dim] (float), or class labels [B] (int) mapped to a t_dim vector by
  `embed`: a learned table (params) or a fixed N(0, I) one (the "constants" collection)."""
  stage: int
  resolution: int           # of this stage's output
  channels: int
  c_dim: int = 128
  gf_dim: int = 128
  r_num: int = 4
  upscale: int = 4
  num_classes: int = 0      # > 0: conditioned on class labels
  t_dim: int = 1024
  class_embedding: str = "learned"

  @nn.compact
  def __call__(self, z: jax.Array, cond: jax.Array, train: bool = True):
    if self.num_classes:
      if jnp.issubdtype(cond.dtype, jnp.floating):
        raise ValueError("this StackGAN is conditioned on class labels (int32 [B]), got float inputs")
      if self.class_embedding == "learned":
        e = nn.Embed(self.num_classes, self.t_dim, embedding_init=nn.initializers.normal(1.0), name="embed")(cond)
      else:
        table = self.variable("constants", "class_embedding",
                              lambda: jax.random.normal(self.make_rng("params"), (self.num_classes, self.t_dim)))
        e = table.value[cond]
    else:
      e = cond
    e = e.astype(z.dtype)
    s1 = self.resolution // (self.upscale if self.stage == 2 else 1)
    image, mu, logvar = Stage1Generator(s1, self.channels, self.c_dim, self.gf_dim, name="stage1")(z, e, train)
    if self.stage == 1:
      return image, mu, logvar
    return Stage2Generator(self.channels, self.c_dim, self.gf_dim, self.r_num, self.upscale, name="stage2")(
        jax.lax.stop_gradient(image), e, train)


class ImageEncoder(nn.Module):
  """D's image encoder: [B, s, s, C] -> [B, 4, 4, F] (F = 8·df_dim at 64 and 256)."""
  resolution: int
  df_dim: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    n = _log2_steps(self.resolution / 4, "the discriminator's resolution / 4")
    if n < 1:
      raise ConfigError(f"model 'stackgan' needs images of at least 8x8, got {self.resolution}x{self.resolution}")
    for i in range(n):
      x = _down(self.df_dim * 2 ** i)(x)
      x = nn.leaky_relu(_batch_norm(train)(x) if i else x, 0.2)
    while x.shape[-1] > 8 * self.df_dim:     # Stage II at 256x256: 32·ndf -> 16·ndf -> 8·ndf
      x = nn.leaky_relu(_batch_norm(train)(_conv3(x.shape[-1] // 2)(x)), 0.2)
    return x


class CondLogits(nn.Module):
  """The official D_GET_LOGITS(bcondition=True): [h, tiled c] -> conv3x3 -> BN -> LeakyReLU -> 4x4/4 conv."""

  @nn.compact
  def __call__(self, h: jax.Array, c: jax.Array, train: bool) -> jax.Array:
    x = jnp.concatenate([h, _tile(c, h.shape[1]).astype(h.dtype)], -1)
    x = nn.leaky_relu(_batch_norm(train)(_conv3(h.shape[-1])(x)), 0.2)
    return nn.Conv(1, (4, 4), strides=(4, 4), padding="VALID", kernel_init=_W_INIT)(x).reshape(-1)


class UncondLogits(nn.Module):
  """D_GET_LOGITS(bcondition=False): the 4x4 stride-4 conv on the image code alone."""

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    return nn.Conv(1, (4, 4), strides=(4, 4), padding="VALID", kernel_init=_W_INIT)(h).reshape(-1)


class StackGANDiscriminator(nn.Module):
  """`encode` and the heads are separate methods because the official loss calls them separately:
  each D forward (real images, fakes) and each head call (real/matching, real/mismatched,
  fake/matching pairs) normalizes with its own batch statistics, as here."""
  resolution: int
  df_dim: int = 64
  uncond: bool = False

  def setup(self):
    self.encoder = ImageEncoder(self.resolution, self.df_dim)
    self.cond_head = CondLogits()
    if self.uncond:
      self.uncond_head = UncondLogits()

  def encode(self, x: jax.Array, train: bool = True) -> jax.Array:
    return self.encoder(x, train)

  def cond_logits(self, h: jax.Array, c: jax.Array, train: bool = True) -> jax.Array:
    return self.cond_head(h, c, train)

  def uncond_logits(self, h: jax.Array) -> jax.Array:
    return self.uncond_head(h)

  def __call__(self, x: jax.Array, c: jax.Array, train: bool = True):
    h = self.encode(x, train)
    return self.cond_logits(h, c, train), (self.uncond_logits(h) if self.uncond else None)


def _defaults() -> dict:
  # CUB / Oxford-102 (code/miscc/config.py): Z_DIM 100, TEXT.DIMENSION 1024, GAN.CONDITION_DIM 128,
  # GF_DIM 128, DF_DIM 64, R_NUM 4, TRAIN.COEFF.KL 2.0 (the paper's lambda is 1).
  return {"stage": 1, "z_dim": 100, "z_dist": "normal", "t_dim": 1024, "c_dim": 128, "g_width": 128,
          "d_width": 64, "r_num": 4, "upscale": 4, "kl_coeff": 2.0, "class_embedding": "learned",
          "lr_decay_steps": 0, "stage1_workdir": "", "num_captions": 16}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'stackgan' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w:
    raise ConfigError(f"model 'stackgan' needs square images, got {h}x{w}")
  if c.stage not in (1, 2):
    raise ConfigError(f"model.stage must be 1 or 2, got {c.stage}")
  if c.class_embedding not in CLASS_EMBEDDINGS:
    raise ConfigError(f"unknown model.class_embedding {c.class_embedding!r}; valid choices: "
                      f"{', '.join(CLASS_EMBEDDINGS)}")
  s1 = h // c.upscale if c.stage == 2 else h
  _log2_steps(c.upscale, "model.upscale")
  if s1 < 8 or _log2_steps(s1 / 4, "the Stage-I resolution / 4") < 1:
    raise ConfigError(f"model 'stackgan' needs a Stage-I resolution of 8, 16, 32, 64, ..., got {s1}"
                      + (f" (data.resolution {h} / model.upscale {c.upscale})" if c.stage == 2 else ""))
  g = StackGANGenerator(c.stage, h, ch, c.c_dim, c.g_width, c.r_num, c.upscale, spec.num_classes, c.t_dim,
                        c.class_embedding)
  return g, StackGANDiscriminator(h, c.d_width, uncond=c.stage == 2)


MODELS.register("stackgan")(ModelEntry(_defaults, _build, kind="text2image"))
