"""TransGAN: Jiang, Chang & Wang 2021 ("TransGAN: Two Pure Transformers Can Make One Strong GAN,
and That Can Scale Up", NeurIPS 2021), as the official code VITA-Group/TransGAN builds its CIFAR-10
and STL-10 models: generator `models_search/ViT_custom_rp.py`, discriminator
`models_search/ViT_custom_scale2_rp_noise.py` (the multi-scale D of the final version), launched by
`exps/cifar_train.py` / `exps/stl_train.py`.

Generator (paper sec. 3.1, fig. 2):
- z [B, z_dim] -> linear to a bottom_width² token grid of embed_dim channels, plus a learned
  positional embedding (init N(0, 0.02²)).
- Stage 0: depths[0] transformer encoder blocks at embed_dim. Each further stage s: pixel-shuffle
  upsampling of the token map (2x the side, channels / 4: `pixel_shuffle`, PyTorch's
  nn.PixelShuffle(2) channel order), its own positional embedding, depths[s] blocks at
  embed_dim / 4^s. The resolution is bottom_width · 2^(stages - 1) (8 -> 16 -> 32 for CIFAR-10).
- Encoder block (pre-norm): x + MSA(norm(x)), x + MLP(norm(x)); MLP dim -> 4·dim -> dim with exact
  (erf) GELU; MSA with `heads` heads, q/k/v without bias, scale head_dim^-1/2, and the relative
  position bias of sec. 3.4 ("relative position encoding": a learned table of (2w-1)² x heads
  entries, init N(0, 0.02²), indexed by the offset of two tokens in a w x w grid; Swin's).
- Grid self-attention (sec. 3.2): with `g_window_size` = w > 0, a stage whose token map is larger
  than w x w attends within non-overlapping w x w windows only (the relative bias table then has
  the window's size); 0 (the default, the official CIFAR-10 / STL-10 models) attends over the
  whole token map at every stage (32 x 32 = 1024 tokens at CIFAR-10's last stage).
- To image: a 1x1 convolution (a dense layer on the tokens) to the image channels; tanh when
  `g_tanh` (the codebase's [-1, 1] contract). The official generator has no output activation
  (its samples are clamped only when saved): `g_tanh=False` is the official network.

Discriminator (sec. 3.3, fig. 3; the official multi-scale D), df = d_embed_dim, p = patch_size:
- Two patch embeddings of the image (strided convolutions with bias): p x p patches to 3·df/4
  channels and 2p x 2p patches to df/4 channels.
- The (R/p)² fine tokens plus a positional embedding pass `d_depth` blocks at 3·df/4; the token
  map is average-pooled 2x2, concatenated with the coarse patch tokens (-> df channels) and a
  second positional embedding, and passes `d_depth` blocks at df. Both stages attend over the
  whole map with a relative position bias of its size.
- A class token (init N(0, 0.02²)) is prepended, one last block without relative bias, the final
  norm, and a dense layer on the class token gives the logit.
- D's attention layers add per-token Gaussian noise with a learned strength (init 0) to their
  input (the `_noise` in the official file's name): x + n · s, n ~ N(0, 1) of shape [B, N, 1],
  drawn from the "noise" stream in every call.
- The D blocks use the activation `d_act` (the official default and CIFAR-10 setting: GELU; the
  paper's D figure shows leaky ReLU as an option).

Normalization: the paper (sec. 3.4, "modified normalization") replaces layer norm by token-wise
scaling in the generator; the official code has a choice per network, `g_norm` / `d_norm`: "ln"
(LayerNorm, eps 1e-5, as PyTorch) or "pn" (pixel norm over the channels of each token,
x / sqrt(mean x² + 1e-8), no parameters; the STL-10 script uses it in G and D). The official
CIFAR-10 script keeps the default "ln" in both, and so do we; "none" drops the norm (and, as the
official DisBlock, scales D's residual sums by sqrt(1/2)).

Initialization as the official run: the trainer's `weights_init` gives every Conv2d (G's to-RGB,
D's patch embeddings) a Xavier-uniform weight; D's `_init_weights` draws its dense weights from
N(0, 0.02²) (PyTorch's trunc_normal_ with the absolute bounds ±2, i.e. untruncated at this std)
with zero biases; G's dense layers keep PyTorch's default U(±1/sqrt(fan_in)) weight and bias, as
do the convolutions' biases; norms start at 1 and 0.

Conditional (not in the paper): a class embedding added to z in G, and the projection head
<embed(y), h_cls> added to D's logit (Miyato & Koyama 2018).

Parameter counts equal the official networks (tests/test_model_transgan.py): CIFAR-10
(bottom width 8, embed 1024, depths 5,4,2, z 256; D 384, depth 3, patch 2): G 83,312,495,
D 10,210,400; STL-10 (bottom width 12, depths 7,5,3, z 512, pixel norm): G 168,466,623, D 10,341,536.

Left out: bicubic upsampling (used only by the official 256x256 generators, whose cross-attention
to the latent is not built here either), DropPath/dropout (0 in every official script).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry
from gan_jax.models.sngan_resnet import check_spec

NORMS = ("ln", "pn", "none")
ACTS = ("gelu", "leakyrelu")

_D_DENSE = nn.initializers.normal(0.02)
_EMBED = nn.initializers.normal(0.02)
_XAVIER = nn.initializers.xavier_uniform()
# PyTorch's nn.Linear / nn.Conv2d default: weight and bias ~ U(±1/sqrt(fan_in)).
_TORCH_KERNEL = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _torch_bias(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


# ---------------------------------------------------------------------------- token-map operations

def pixel_shuffle(x: jax.Array, r: int = 2) -> jax.Array:
  """[B, H, W, C·r²] -> [B, r·H, r·W, C] with PyTorch's nn.PixelShuffle channel order (Shi et al.
  2016): out[b, r·h + i, r·w + j, c] = x[b, h, w, c·r² + i·r + j]."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, c // (r * r), r, r)
  return x.transpose(0, 1, 4, 2, 5, 3).reshape(b, h * r, w * r, c // (r * r))


def window_partition(x: jax.Array, w: int) -> jax.Array:
  """[B, H, W, C] -> [B·(H/w)·(W/w), w·w, C]: non-overlapping w x w windows, row-major inside."""
  b, h, wd, c = x.shape
  x = x.reshape(b, h // w, w, wd // w, w, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, w * w, c)


def window_reverse(windows: jax.Array, w: int, h: int, wd: int) -> jax.Array:
  """The inverse of `window_partition`: [B·(H/w)·(W/w), w·w, C] -> [B, H, W, C]."""
  c = windows.shape[-1]
  x = windows.reshape(-1, h // w, wd // w, w, w, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, h, wd, c)


def relative_position_index(w: int) -> np.ndarray:
  """[w², w²] int: the entry of the (2w-1)² relative-bias table for tokens i, j of a w x w grid,
  (dy + w - 1)·(2w - 1) + (dx + w - 1) with (dy, dx) = pos(i) - pos(j)."""
  ys, xs = np.divmod(np.arange(w * w), w)
  dy = ys[:, None] - ys[None, :] + w - 1
  dx = xs[:, None] - xs[None, :] + w - 1
  return dy * (2 * w - 1) + dx


def relative_position_bias(table: jax.Array, w: int) -> jax.Array:
  """table [(2w-1)², heads] -> bias [heads, w², w²], bias[:, i, j] = table[relative_position_index(w)[i, j]].

  Computed as two one-hot contractions over the row and column offsets instead of a gather: the
  same values, but the gradient (and the gradient penalty's second derivative) is a matmul rather
  than a scatter-add, which XLA:CPU compiles and runs several times faster."""
  heads = table.shape[-1]
  offsets = np.arange(w)[:, None] - np.arange(w)[None, :] + w - 1           # [w, w]: dy + w - 1
  onehot = jnp.asarray(np.eye(2 * w - 1, dtype=np.float32)[offsets], table.dtype)   # [w, w, 2w-1]
  t = table.reshape(2 * w - 1, 2 * w - 1, heads)
  bias = jnp.einsum("ija,klb,abh->hikjl", onehot, onehot, t)                 # [h, y_i, x_i, y_j, x_j]
  return bias.reshape(heads, w * w, w * w)


def _act(name: str):
  return (lambda x: nn.gelu(x, approximate=False)) if name == "gelu" else (lambda x: nn.leaky_relu(x, 0.2))


# ---------------------------------------------------------------------------- layers

class Norm(nn.Module):
  """Token-wise normalization over the channels: "ln", "pn" (pixel norm) or "none"."""
  kind: str = "ln"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kind == "ln":
      return nn.LayerNorm(epsilon=1e-5, name="ln")(x)
    if self.kind == "pn":
      xf = x.astype(jnp.float32)
      return (xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + 1e-8)).astype(x.dtype)
    return x


class Attention(nn.Module):
  """Multi-head self-attention over x [B', N, C] (Vaswani et al. 2017, eq. 1), with the relative
  position bias of a `window` x `window` grid when window > 0 (then N = window²), and D's learned
  input noise when `noise`."""
  heads: int
  window: int = 0
  noise: bool = False
  kernel_init: nn.initializers.Initializer = _TORCH_KERNEL
  torch_bias: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, c = x.shape
    if self.noise:
      strength = self.param("noise_strength", nn.initializers.zeros, ())
      draw = jax.random.normal(self.make_rng("noise"), (b, n, 1), x.dtype)
      self.sow("intermediates", "input_noise", draw)    # visible to tests with mutable=["intermediates"]
      x = x + draw * strength.astype(x.dtype)
    qkv = nn.Dense(3 * c, use_bias=False, kernel_init=self.kernel_init, name="qkv")(x)
    # The official split: [B, N, 3, heads, head_dim].
    q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.heads, c // self.heads), 2, 0)
    logits = jnp.einsum("bnhd,bmhd->bhnm", q, k).astype(jnp.float32) * (c // self.heads) ** -0.5
    if self.window:
      table = self.param("relative_position_bias", _EMBED, ((2 * self.window - 1) ** 2, self.heads))
      logits = logits + relative_position_bias(table, self.window).astype(jnp.float32)[None]
    attn = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("bhnm,bmhd->bnhd", attn, v).reshape(b, n, c)
    bias_init = _torch_bias(c) if self.torch_bias else nn.initializers.zeros
    return nn.Dense(c, kernel_init=self.kernel_init, bias_init=bias_init, name="proj")(out)


class Block(nn.Module):
  """Pre-norm transformer encoder block on tokens x [B, N, C]: x + MSA(norm(x)), x + MLP(norm(x)).

  `grid` (H, W) with `window` w < H: grid self-attention, MSA within each w x w window of the
  H x W token map; `window` 0: no relative position bias (D's last block, with its class token)."""
  heads: int
  window: int = 0
  grid: tuple[int, int] | None = None
  mlp_ratio: int = 4
  norm: str = "ln"
  act: str = "gelu"
  noise: bool = False
  d_init: bool = False      # D's initialization (N(0, 0.02²) dense weights, zero biases)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, n, c = x.shape
    kernel = _D_DENSE if self.d_init else _TORCH_KERNEL
    dense = lambda f, fan_in, name: nn.Dense(  # noqa: E731
        f, kernel_init=kernel, bias_init=nn.initializers.zeros if self.d_init else _torch_bias(fan_in), name=name)
    # The official DisBlock scales its residual sums by sqrt(1/2) when there is no norm.
    gain = math.sqrt(0.5) if self.norm == "none" and self.d_init else 1.0
    attention = Attention(self.heads, self.window, self.noise, kernel, not self.d_init, name="attn")
    h = Norm(self.norm, name="norm1")(x)
    if self.grid is not None and self.window and self.window < self.grid[0]:
      hh, ww = self.grid
      h = window_partition(h.reshape(b, hh, ww, c), self.window)
      h = window_reverse(attention(h), self.window, hh, ww).reshape(b, n, c)
    else:
      h = attention(h)
    x = (x + h) * gain
    h = Norm(self.norm, name="norm2")(x)
    h = dense(c, self.mlp_ratio * c, "fc2")(_act(self.act)(dense(self.mlp_ratio * c, c, "fc1")(h)))
    return (x + h) * gain


def _positional(module: nn.Module, name: str, n: int, c: int) -> jax.Array:
  return module.param(name, _EMBED, (n, c))


# ---------------------------------------------------------------------------- networks

class TransGANGenerator(nn.Module):
  channels: int = 3
  bottom_width: int = 8
  embed_dim: int = 1024
  depths: Sequence[int] = (5, 4, 2)
  heads: int = 4
  mlp_ratio: int = 4
  window_size: int = 0
  norm: str = "ln"
  act: str = "gelu"
  num_classes: int = 0
  tanh: bool = True

  @nn.compact
  def __call__(self, z: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    del train   # no train-mode behaviour (no BatchNorm, no dropout)
    if self.num_classes:
      if y is None:
        raise ValueError("a conditional generator needs labels y")
      z = z + nn.Embed(self.num_classes, z.shape[-1], embedding_init=_EMBED, name="class_embed")(y)
    s, c = self.bottom_width, self.embed_dim
    x = nn.Dense(s * s * c, kernel_init=_TORCH_KERNEL, bias_init=_torch_bias(z.shape[-1]), name="l1")(z)
    x = x.reshape(-1, s * s, c)
    for stage, depth in enumerate(self.depths):
      if stage:
        x = pixel_shuffle(x.reshape(-1, s, s, c)).reshape(-1, 4 * s * s, c // 4)
        s, c = 2 * s, c // 4
      x = x + _positional(self, f"pos_embed{stage}", s * s, c).astype(x.dtype)
      window = self.window_size if 0 < self.window_size < s else s
      for i in range(depth):
        x = Block(self.heads, window, (s, s), self.mlp_ratio, self.norm, self.act, name=f"stage{stage}_block{i}")(x)
    x = nn.Dense(self.channels, kernel_init=_XAVIER, bias_init=_torch_bias(c), name="to_rgb")(x)
    x = x.reshape(-1, s, s, self.channels)
    return jnp.tanh(x) if self.tanh else x


class TransGANDiscriminator(nn.Module):
  embed_dim: int = 384
  depth: int = 3
  heads: int = 4
  mlp_ratio: int = 4
  patch_size: int = 2
  norm: str = "ln"
  act: str = "gelu"
  num_classes: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None, train: bool = True) -> jax.Array:
    del train
    b, res, _, ch = x.shape
    p, df = self.patch_size, self.embed_dim
    block = lambda window, name: Block(self.heads, window, None, self.mlp_ratio, self.norm, self.act,  # noqa: E731
                                       noise=True, d_init=True, name=name)

    def patches(size, features, name):
      conv = nn.Conv(features, (size, size), strides=(size, size), padding="VALID", kernel_init=_XAVIER,
                     bias_init=_torch_bias(ch * size * size), name=name)
      out = conv(x)
      return out.reshape(b, -1, features)

    s1, s2 = res // p, res // (2 * p)
    h = patches(p, df // 4 * 3, "patch_embed1") + _positional(self, "pos_embed1", s1 * s1, df // 4 * 3)
    for i in range(self.depth):
      h = block(s1, f"stage0_block{i}")(h)
    h = nn.avg_pool(h.reshape(b, s1, s1, -1), (2, 2), (2, 2)).reshape(b, s2 * s2, -1)
    h = jnp.concatenate([h, patches(2 * p, df // 4, "patch_embed2")], axis=-1)
    h = h + _positional(self, "pos_embed2", s2 * s2, df)
    for i in range(self.depth):
      h = block(s2, f"stage1_block{i}")(h)
    cls = self.param("cls_token", _EMBED, (df,))
    h = jnp.concatenate([jnp.broadcast_to(cls.astype(h.dtype), (b, 1, df)), h], axis=1)
    h = block(0, "last_block")(h)
    h = Norm(self.norm, name="norm")(h)[:, 0]
    out = nn.Dense(1, kernel_init=_D_DENSE, name="head")(h)[:, 0]
    if self.num_classes:
      if y is None:
        raise ValueError("a conditional discriminator needs labels y")
      out = out + jnp.sum(nn.Embed(self.num_classes, df, embedding_init=_EMBED, name="class_embed")(y) * h, axis=-1)
    return out


def _defaults() -> dict:
  # The official CIFAR-10 launch settings (exps/cifar_train.py).
  return {"z_dim": 256, "z_dist": "normal", "bottom_width": 8, "g_embed_dim": 1024, "g_depths": "5,4,2",
          "g_heads": 4, "g_mlp_ratio": 4, "g_window_size": 0, "g_norm": "ln", "g_act": "gelu", "g_tanh": True,
          "d_embed_dim": 384, "d_depth": 3, "d_heads": 4, "d_mlp_ratio": 4, "patch_size": 2, "d_norm": "ln",
          "d_act": "gelu"}


def parse_depths(spec: str) -> tuple[int, ...]:
  try:
    depths = tuple(int(s) for s in str(spec).split(","))
  except ValueError:
    raise ConfigError(f"model.g_depths must be comma-separated integers (e.g. 5,4,2), got {spec!r}") from None
  if not depths or min(depths) < 1:
    raise ConfigError(f"model.g_depths needs one depth >= 1 per stage, got {spec!r}")
  return depths


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  res, ch = check_spec("transgan", c, spec)
  depths = parse_depths(c.g_depths)
  n = len(depths)
  for key, value, valid in (("g_norm", c.g_norm, NORMS), ("d_norm", c.d_norm, NORMS), ("g_act", c.g_act, ACTS),
                            ("d_act", c.d_act, ACTS)):
    if value not in valid:
      raise ConfigError(f"unknown model.{key} {value!r}; valid choices: {', '.join(valid)}")
  out = c.bottom_width * 2 ** (n - 1)
  if out != res:
    raise ConfigError(f"transgan with {n} stages from bottom_width {c.bottom_width} makes {out}x{out} images, "
                      f"the data is {res}x{res}")
  dims = [c.g_embed_dim // 4 ** i for i in range(n)]
  if c.g_embed_dim % 4 ** (n - 1) or any(d % c.g_heads for d in dims):
    raise ConfigError(f"model.g_embed_dim={c.g_embed_dim} must divide by 4^{n - 1} (pixel shuffle per stage) and "
                      f"every stage width {dims} by g_heads={c.g_heads}")
  if c.g_window_size:
    for i in range(n):
      side = c.bottom_width * 2 ** i
      if c.g_window_size < side and side % c.g_window_size:
        raise ConfigError(f"model.g_window_size={c.g_window_size} does not tile the {side}x{side} tokens of stage {i}")
  p, df = c.patch_size, c.d_embed_dim
  if p < 1 or res % (2 * p):
    raise ConfigError(f"model.patch_size={p}: the {res}x{res} images must divide into {2 * p}x{2 * p} patches")
  if df % 4 or (df // 4 * 3) % c.d_heads or df % c.d_heads:
    raise ConfigError(f"model.d_embed_dim={df} must divide by 4, and its 3/4 and whole by d_heads={c.d_heads}")
  nc = spec.num_classes if c.conditional else 0
  g = TransGANGenerator(ch, c.bottom_width, c.g_embed_dim, depths, c.g_heads, c.g_mlp_ratio, c.g_window_size,
                        c.g_norm, c.g_act, nc, c.g_tanh)
  d = TransGANDiscriminator(df, c.d_depth, c.d_heads, c.d_mlp_ratio, p, c.d_norm, c.d_act, nc)
  return g, d


MODELS.register("transgan")(ModelEntry(_defaults, _build))
