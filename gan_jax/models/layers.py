"""Layers shared by the architectures.

1. Spectral normalization, self-attention and conditional BatchNorm (SNGAN, SAGAN, BigGAN), at
   the end of this file.
2. Stride-s transposed convolution as stride-1 convolutions: same parameters, same math.

XLA:CPU computes a stride-2 transposed convolution (a convolution over the zero-dilated input)
and above all its gradients slowly: the backward pass of a DCGAN generator at 64x64 took 3.5 s
against 0.13 s for its forward. The "sub-pixel" form (Shi et al. 2016) gives the same function
with stride-1 convolutions only: along an axis, output phase r = o mod s sees just the kernel
taps t with (r + t - pad) divisible by s, reading input offset d = (r + t - pad) / s. Aligning
each phase's window on its own first offset, one stride-1 convolution to s*s*C_out channels
computes every phase (a 2x2 window for a 4x4 kernel, 3x3 for 5x5), and the phases interleave.

`ConvTranspose` and `Conv` declare the kernels of `nn.ConvTranspose` / `nn.Conv` (same shape,
name, init, and the transpose_kernel=False convention); the stride-1 kernel is a fixed 0/1 rearrangement of it built
inside the jitted function, so gradients reach the original parameter and checkpoints are
interchangeable. Values and gradients equal the plain layer up to float summation order
(tests/test_layers.py). `impl="xla"` runs the plain lax convolutions (the better choice
where the hardware runs it well, e.g. GPUs with cuDNN); "auto" picks sub-pixel on CPU only.

A strided convolution's input gradient is such a transposed convolution (flipped kernel):
`Conv` keeps XLA's forward and kernel gradient and computes the input gradient in sub-pixel
form (a custom VJP, itself differentiable, so R1/R2 double backward works). Rewriting the
whole strided convolution by space-to-depth instead was measured slower (DCGAN 64x64 step
2.60 s against 1.78 s with the plain discriminator; 1.45 s with this one).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gan_jax.errors import ConfigError

IMPLS = ("auto", "subpixel", "xla")
_DN = ("NHWC", "HWIO", "NHWC")


def resolve_impl(impl: str) -> str:
  """"auto" -> "subpixel" on CPU (where it is several times faster), "xla" on accelerators."""
  if impl not in IMPLS:
    raise ConfigError(f"model.conv_impl: unknown value {impl!r}; valid: {', '.join(IMPLS)}")
  if impl == "auto":
    return "subpixel" if jax.default_backend() == "cpu" else "xla"
  return impl


def transpose_padding(k: int, s: int, padding: str | tuple[int, int]) -> tuple[int, int]:
  """Before/after padding of the lhs-dilated input that `lax.conv_transpose` uses (its convention)."""
  if padding == "SAME":
    pad_len = k + s - 2
    pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
  elif padding == "VALID":
    pad_len = k + s - 2 + max(k - s, 0)
    pad_a = k - 1
  else:
    pad_a, pad_len = k - padding[0] - 1, 2 * k - 2 - padding[0] - padding[1]
  return pad_a, pad_len - pad_a


def _transpose_selection(k: int, s: int, pad_a: int) -> tuple[np.ndarray, list[int]]:
  """Per output phase r, the taps t that feed it read input offset d = (r + t - pad) / s.

  Returns S[a, r, t] = 1 where tap t sits at window position a = d - lo[r] of phase r, and
  lo[r], each phase's smallest offset: aligning every phase's window on its own first offset
  keeps the stride-1 kernel as small as the phase with the most taps (2 for k=4, s=2).
  """
  taps = [[(t, (r + t - pad_a) // s) for t in range(k) if (r + t - pad_a) % s == 0] for r in range(s)]
  lo = [min((d for _, d in tr), default=0) for tr in taps]
  width = max((max(d for _, d in tr) - lo[r] + 1 for r, tr in enumerate(taps) if tr), default=1)
  sel = np.zeros((width, s, k), np.float32)
  for r, tr in enumerate(taps):
    for t, d in tr:
      sel[d - lo[r], r, t] = 1.0
  return sel, lo


def _conv1(x, w, pads, precision=None):
  """Stride-1 NHWC/HWIO correlation with explicit (before, after) padding per spatial axis.

  Where the output is as large as the input ("SAME"-like padding) XLA's own gradients are
  good; where the padding makes it larger (a 2x2 kernel padded by 1 on each side, as the
  sub-pixel form of a 4x4 transposed convolution needs) XLA:CPU's kernel gradient drops to
  about 1 GFLOP/s, and `_conv_valid` takes over.
  """
  crop = [(max(0, -a), n - max(0, -b)) for (a, b), n in zip(pads, x.shape[1:3])]
  x = x[:, crop[0][0]:crop[0][1], crop[1][0]:crop[1][1]]
  pads = [(max(0, a), max(0, b)) for a, b in pads]
  if all(sum(p) == k - 1 for p, k in zip(pads, w.shape[:2])):
    return lax.conv_general_dilated(x, w, (1, 1), [tuple(p) for p in pads], dimension_numbers=_DN,
                                    precision=precision)
  x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  return _conv_valid(x, w, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_valid(x, w, precision=None):
  """Stride-1 VALID convolution whose kernel gradient is one matmul per tap.

  XLA:CPU computes the kernel gradient of a small-kernel convolution as another convolution
  at 1-80 GFLOP/s (1 GFLOP/s for a 2x2 kernel on a padded input); as a sum over the kh*kw taps
  of [N*H*W, C_in]^T @ [N*H*W, C_out] matmuls it runs at 70-170 GFLOP/s on the same shapes.
  """
  return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=_DN, precision=precision)


def _conv_valid_fwd(x, w, precision):
  return _conv_valid(x, w, precision), (x, w)


def _conv_valid_bwd(precision, res, g):
  x, w = res
  kh, kw = w.shape[:2]
  h, wd = g.shape[1:3]
  _, x_vjp = jax.vjp(lambda x: lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=_DN,
                                                        precision=precision), x)
  dw = jnp.stack([jnp.stack([_tap_product(x[:, a:a + h, b:b + wd], g, precision)
                             for b in range(kw)]) for a in range(kh)])
  return x_vjp(g)[0], dw.astype(w.dtype)


# Rows (N*H*W) from which XLA:CPU's contraction of a tap runs faster with the gradient as its left operand.
_TAP_SWAP_ROWS = 4096


def _tap_product(x: jax.Array, g: jax.Array, precision=None) -> jax.Array:
  """[N, H, W, C_in] x [N, H, W, C_out] -> [C_in, C_out], contracting N, H and W. With many rows
  (the sub-pixel kernel gradients of G's large layers) XLA:CPU runs g^T x, transposed, 1.2-2.8x
  faster than x^T g (DCGAN G at 64x64, batch 64: the 64 -> 12-phase last layer 235 -> 85 ms, 18x18
  128 -> 256 178 -> 104 ms); with few rows (6x6 layers) 10 % slower, so those keep x^T g."""
  if int(np.prod(g.shape[:3])) >= _TAP_SWAP_ROWS:
    return jnp.einsum("nhwo,nhwi->oi", g, x, precision=precision).T
  return jnp.einsum("nhwi,nhwo->io", x, g, precision=precision)


_conv_valid.defvjp(_conv_valid_fwd, _conv_valid_bwd)


def strided_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding="SAME",
                           precision=None) -> jax.Array:
  """`lax.conv_transpose(x, kernel, strides, padding)` (NHWC, HWIO, no kernel flip) by sub-pixel conv."""
  (kh, kw), (sh, sw) = kernel.shape[:2], strides
  if sh != sw:
    raise ValueError(f"strided_conv_transpose needs equal strides, got {tuple(strides)}")
  paddings = (padding,) * 2 if isinstance(padding, str) else padding
  pads = [transpose_padding(k, sh, p) for k, p in zip((kh, kw), paddings)]
  return _subpixel(x, kernel, sh, pads, precision)


def _subpixel(x: jax.Array, kernel: jax.Array, s: int, pads, precision=None) -> jax.Array:
  """y[o] = sum_t kernel[t] x_dilated[o + t - pad_before] per spatial axis (x dilated by s, padded
  by `pads` = [(before, after)] * 2): one stride-1 convolution to s*s phases, then interleaving."""
  kh, kw, cin, cout = kernel.shape
  out_len = [(n - 1) * s + 1 + pa + pb - k + 1 for n, k, (pa, pb) in zip(x.shape[1:3], (kh, kw), pads)]
  (sy, lo_y), (sx, lo_x) = _transpose_selection(kh, s, pads[0][0]), _transpose_selection(kw, s, pads[1][0])
  w = jnp.einsum("art,bsu,tuio->abirso", sy, sx, kernel.astype(jnp.float32)).astype(kernel.dtype)
  w = w.reshape(sy.shape[0], sx.shape[0], cin, s * s * cout)
  # Z[j, (r, c)] = sum_a w[a, r] x[j + a] over j in [min lo, coarse - 1 + max lo]; phase r of
  # the output is then Z[m + lo[r], r]: one stride-1 convolution, then per-phase slices.
  coarse = [-(-n // s) for n in out_len]
  conv_pads = []
  for m, n_in, lo, width in zip(coarse, x.shape[1:3], (lo_y, lo_x), (sy.shape[0], sx.shape[0])):
    z_len = m + max(lo) - min(lo)
    conv_pads.append((-min(lo), z_len - 1 + min(lo) + width - 1 - (n_in - 1)))
  z = _conv1(x, w, conv_pads, precision)
  z = z.reshape(*z.shape[:3], s, s, cout)
  my, mx = coarse
  phases = jnp.stack([jnp.stack([z[:, lo_y[ry] - min(lo_y):lo_y[ry] - min(lo_y) + my,
                                   lo_x[rx] - min(lo_x):lo_x[rx] - min(lo_x) + mx, ry, rx]
                                 for rx in range(s)], axis=3) for ry in range(s)], axis=3)
  # phases: [B, my, mx, ry, rx, C] -> [B, my, ry, mx, rx, C] -> [B, my*s, mx*s, C]
  y = phases.transpose(0, 1, 3, 2, 4, 5).reshape(x.shape[0], my * s, mx * s, cout)
  return y[:, :out_len[0], :out_len[1]]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv(x: jax.Array, kernel: jax.Array, stride: int, pads: tuple) -> jax.Array:
  """`lax.conv_general_dilated(x, kernel, (stride, stride), pads)`: XLA's forward and kernel
  gradient, and the input gradient (a transposed convolution, XLA:CPU's slow case) in sub-pixel form."""
  return lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=_DN)


def _strided_conv_fwd(x, kernel, stride, pads):
  return strided_conv(x, kernel, stride, pads), (x, kernel)


def _strided_conv_bwd(stride, pads, res, g):
  x, kernel = res
  # dx[j] = sum_t kernel[t] g_dilated[j - t + pad]: the flipped, channel-swapped kernel, with the
  # dilated-space padding that makes dx as long as x.
  flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
  t_pads = [(k - 1 - pa, n - (m - 1) * stride - 1 - (k - 1 - pa) + k - 1)
            for n, m, k, (pa, _) in zip(x.shape[1:3], g.shape[1:3], kernel.shape[:2], pads)]
  return _subpixel(g, flipped, stride, t_pads), _strided_kernel_grad(x, g, kernel.shape, stride, pads)


def _strided_kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: tuple, stride: int, pads: tuple) -> jax.Array:
  """dL/dkernel of a stride-s convolution: for each tap (a, b), the [N*H'*W', C_in]^T @ [N*H'*W', C_out]
  product of the input's stride-s view at offset (a, b) with the output gradient g. On XLA:CPU this
  ran DCGAN's discriminator kernel gradients in 0.6-0.8x the time of XLA's own (a convolution)."""
  kh, kw, cin, _ = kernel_shape
  h, w = g.shape[1:3]
  xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)])
  n = x.shape[0]
  taps = [[jnp.einsum("nhwi,nhwo->io", lax.slice(xp, (0, a, b, 0), (n, a + (h - 1) * stride + 1,
                                                                    b + (w - 1) * stride + 1, cin),
                                                 (1, stride, stride, 1)), g)
           for b in range(kw)] for a in range(kh)]
  return jnp.stack([jnp.stack(row) for row in taps]).astype(x.dtype)


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


class _Strided(nn.Module):
  """The fields, parameter names and shapes of `nn.Conv` / `nn.ConvTranspose` (NHWC, HWIO)."""
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str = "SAME"
  use_bias: bool = True
  kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
  bias_init: Callable[..., Any] = nn.initializers.zeros
  impl: str = "subpixel"

  def _kernel(self, x: jax.Array) -> jax.Array:
    return self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))

  def _bias(self, y: jax.Array) -> jax.Array:
    return y + self.param("bias", self.bias_init, (self.features,)) if self.use_bias else y


class ConvTranspose(_Strided):
  """`nn.ConvTranspose` (transpose_kernel=False); strided case by sub-pixel convolution."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self._kernel(x)
    if self.impl == "xla" or tuple(self.strides) == (1, 1):
      y = lax.conv_transpose(x, kernel, self.strides, self.padding, dimension_numbers=_DN)
    else:
      y = strided_conv_transpose(x, kernel, self.strides, self.padding)
    return self._bias(y)


class Conv(_Strided):
  """`nn.Conv`; with equal strides s > 1 the input gradient is computed in sub-pixel form."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self._kernel(x)
    if self.impl == "xla" or self.strides[0] != self.strides[1] or self.strides[0] == 1:
      y = lax.conv_general_dilated(x, kernel, self.strides, self.padding, dimension_numbers=_DN)
    else:
      pads = self.padding if not isinstance(self.padding, str) else lax.padtype_to_pads(
          x.shape[1:3], self.kernel_size, self.strides, self.padding)
      y = strided_conv(x, kernel, self.strides[0], tuple(tuple(p) for p in pads))
    return self._bias(y)


# Spectral norm, self-attention, conditional BatchNorm.
#
# Spectral normalization (Miyato et al. 2018) is flax's `nn.SpectralNorm` (with the initialization
# and the normalization of the power-iteration vectors as the PyTorch references, see `SpectralNorm`):
# W / sigma(W), sigma from one power iteration per call on the kernel reshaped to [fan_in, fan_out]
# (the transpose of PyTorch's [out, in·k·k] view: same singular values, the same u [1, out]); the vector
# u and the last sigma live in the "batch_stats" collection and are written only when `train` is true
# (the trainer makes the collection mutable in training steps only). Outside training the power
# iteration still runs from the stored u without storing it, as in BigGAN-PyTorch (measured equal,
# tests/test_official_importers.py); torch.nn.utils.spectral_norm instead reuses its stored u and v there,
# a sigma one iteration's progress apart.


class SpectralNorm(nn.SpectralNorm):
  """flax's SpectralNorm, except that the power iteration normalizes as PyTorch (`_l2_normalize`) and
  initialization stores the wrapped layer's weights as its initializer drew them. (flax's initializes
  through its weight transform and so stores W / sigma, about 1/sigma times the drawn weights, where the
  reference implementations store W: with Adam's absolute step sizes that changes training.) The u
  vectors and sigma are created from the drawn W."""

  @nn.compact
  def __call__(self, *args, update_stats: bool, **kwargs):
    if not self.is_initializing():
      return super().__call__(*args, update_stats=update_stats, **kwargs)
    out = self.layer_instance(*args, **kwargs)
    jax.tree_util.tree_map_with_path(functools.partial(self._spectral_normalize, update_stats=False),
                                     {"params": self.layer_instance.variables["params"]})
    return out

  def _spectral_normalize(self, path, vs, update_stats):
    """W / sigma, flax's power iteration (same variables: u [1, fan_out] and sigma, one step per call from
    the stored u, stored only when `update_stats`) with PyTorch's normalization (`_l2_normalize`). The
    result is in W's own dtype: with bf16 compute (precision=bfloat16) the power iteration and sigma run
    in float32 (the u vector is float32) and the layer computes in bf16 instead of being promoted."""
    value = jnp.asarray(vs)
    if value.ndim <= 1 or self.n_steps < 1:
      return value
    w = value.reshape(-1, value.shape[-1])
    name = self.layer_instance.name + "/" + "/".join(k.key for k in path[1:])
    u_var = self.variable(self.collection_name, name + "/u", jax.random.normal,
                          None if self.has_variable(self.collection_name, name + "/u") else self.make_rng("params"),
                          (1, w.shape[-1]), self.param_dtype)
    sigma_var = self.variable(self.collection_name, name + "/sigma", jnp.ones, (), self.param_dtype)
    u, sigma = u_var.value, None
    for _ in range(self.n_steps):
      u, sigma = power_iteration(w, u, self.epsilon)
    if update_stats:
      u_var.value, sigma_var.value = u, sigma
    return (w / jnp.where(sigma != 0, sigma, 1)).reshape(value.shape).astype(value.dtype)


def _l2_normalize(x: jax.Array, eps: float) -> jax.Array:
  """x / max(|x|, eps): PyTorch's F.normalize, as BigGAN-PyTorch's and torch.nn.utils' spectral norms
  normalize. (flax's x / sqrt(|x|² + eps) moved BigGAN's outputs by 1e-4 relative at its eps 1e-6.)"""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, keepdims=True), eps * eps))


def power_iteration(w: jax.Array, u: jax.Array, eps: float) -> tuple[jax.Array, jax.Array]:
  """One power-iteration step on w [n, m] (flax's [fan_in, fan_out] view) from u [1, m]: v = u w^T,
  u' = v w (each normalized), sigma = v w u'^T; returns (u', sigma), u' and v without gradients."""
  v = jax.lax.stop_gradient(_l2_normalize(u @ w.T, eps))
  u = jax.lax.stop_gradient(_l2_normalize(v @ w, eps))
  return u, (v @ w @ u.T)[0, 0]


def _sn(layer: nn.Module, use_sn: bool, eps: float):
  if not use_sn:
    return lambda x, train: layer(x)
  sn = SpectralNorm(layer, n_steps=1, epsilon=eps)
  return lambda x, train: sn(x, update_stats=train)


class SNDense(nn.Module):
  features: int
  use_bias: bool = True
  use_sn: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  sn_eps: float = 1e-12

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dense = nn.Dense(self.features, use_bias=self.use_bias, kernel_init=self.kernel_init, name="dense")
    return _sn(dense, self.use_sn, self.sn_eps)(x, train)


class SNConv(nn.Module):
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: Any = "SAME"
  use_bias: bool = True
  use_sn: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  feature_group_count: int = 1
  sn_eps: float = 1e-12

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = nn.Conv(self.features, self.kernel_size, strides=self.strides, padding=self.padding,
                   use_bias=self.use_bias, kernel_init=self.kernel_init,
                   feature_group_count=self.feature_group_count, name="conv")
    return _sn(conv, self.use_sn, self.sn_eps)(x, train)


class SNEmbed(nn.Module):
  """Class embedding [B] -> [B, features], spectrally normalized as a [classes, features] matrix
  (BigGAN's SNEmbedding, the projection discriminator's embedding)."""
  num_embeddings: int
  features: int
  use_sn: bool = True
  embedding_init: Callable = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
  sn_eps: float = 1e-12

  @nn.compact
  def __call__(self, y: jax.Array, train: bool) -> jax.Array:
    table = _Table(self.num_embeddings, self.features, self.embedding_init, name="embed")(None)
    if not self.use_sn:
      return jnp.take(table, y, axis=0)
    # The power iteration runs on the table as a [classes, features] matrix with u [1, classes], as
    # BigGAN-PyTorch's SNEmbedding and chainer's SNEmbedID hold it (flax's SpectralNorm would keep u
    # [1, features] and, one step per call from the stored u, reach another sigma). Variables u and sigma.
    init = self.is_initializing()
    u = self.variable("batch_stats", "u", lambda: jax.random.normal(self.make_rng("params"), (1, self.num_embeddings)))
    sigma_var = self.variable("batch_stats", "sigma", jnp.ones, (), jnp.float32)
    u_new, sigma = power_iteration(table.T, u.value, self.sn_eps)   # table.T: flax's [fan_in, fan_out] view
    if train and not init:
      u.value, sigma_var.value = u_new, sigma
    return jnp.take((table / jnp.where(sigma != 0, sigma, 1)).astype(table.dtype), y, axis=0)


class _Table(nn.Module):
  """An embedding table as a layer whose output is the table itself (param path embed/embedding,
  as nn.Embed's)."""
  num_embeddings: int
  features: int
  embedding_init: Callable

  @nn.compact
  def __call__(self, _) -> jax.Array:
    return self.param("embedding", self.embedding_init, (self.num_embeddings, self.features))


class SelfAttention(nn.Module):
  """Self-attention block of SAGAN (Zhang et al. 2019, sec. 3) as BigGAN-PyTorch's `Attention`:
  f = theta(x) and g = phi(x) with C/8 channels, h = g(x) with C/2, phi and g max-pooled 2x2
  (the official SAGAN code does the same, a 4x cheaper attention), beta = softmax over the pooled
  positions of theta·phi^T, o = 1x1 conv (C/2 -> C) of beta·h, out = x + gamma·o with gamma
  initialised to 0. All 1x1 convolutions are bias-free and spectrally normalized when `use_sn`."""
  use_sn: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  sn_eps: float = 1e-12

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    b, h, w, c = x.shape
    if c % 8 or h % 2 or w % 2:
      raise ValueError(f"SelfAttention needs channels divisible by 8 and even sizes, got {x.shape}")
    conv = functools.partial(SNConv, kernel_size=(1, 1), use_bias=False, use_sn=self.use_sn,
                             kernel_init=self.kernel_init, sn_eps=self.sn_eps)
    theta = conv(c // 8, name="theta")(x, train).reshape(b, h * w, c // 8)
    pool = lambda t: nn.max_pool(t, (2, 2), strides=(2, 2))  # noqa: E731
    phi = pool(conv(c // 8, name="phi")(x, train)).reshape(b, h * w // 4, c // 8)
    g = pool(conv(c // 2, name="g")(x, train)).reshape(b, h * w // 4, c // 2)
    # The softmax in float32 (bf16 compute keeps it there: logits of many positions).
    beta = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi).astype(jnp.float32), axis=-1).astype(x.dtype)
    o = conv(c, name="o")(jnp.einsum("bqk,bkc->bqc", beta, g).reshape(b, h, w, c // 2), train)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    return x + gamma * o


def bessel_running_var(bn: nn.BatchNorm, x: jax.Array) -> None:
  """After a training call of `bn` on `x`: its running variance as PyTorch's BatchNorm moves it, with
  the batch variance's Bessel correction n / (n - 1) (n values per channel), where flax's uses the
  biased batch variance. Adds (1 - momentum) · var / (n - 1) to the running variance flax just stored
  (same batch variance: E[x²] - E[x]², in float32, clipped at 0). No-op at initialization."""
  if bn.is_initializing() or bn.use_running_average:
    return
  axes = tuple(range(x.ndim - 1))
  xf = x.astype(jnp.float32)
  mean = jnp.mean(xf, axes)
  var = jnp.maximum(0.0, jnp.mean(jnp.square(xf), axes) - jnp.square(mean))
  n = x.size // x.shape[-1]
  running = bn.get_variable("batch_stats", "var")
  bn.put_variable("batch_stats", "var", running + (1.0 - bn.momentum) * var / max(n - 1, 1))


class ConditionalBatchNorm(nn.Module):
  """BatchNorm without its own affine, followed by a class-dependent one.

  `num_classes` > 0: `cond` is int labels [B]; per-class gain (init 1) and bias (init 0) tables
  (SNGAN-projection's categorical conditional BN). `num_classes` = 0: `cond` is a vector [B, D];
  gain = 1 + SNDense(C)(cond), bias = SNDense(C)(cond) (BigGAN's ccbn). Statistics are over the
  whole (global) batch: under jit on a sharded batch that is cross-replica BatchNorm for free.
  `bessel`: the running variance with PyTorch's n / (n - 1) correction (`bessel_running_var`)."""
  num_classes: int = 0
  use_sn: bool = True
  use_bias: bool = True
  momentum: float = 0.9
  epsilon: float = 1e-5
  sn_eps: float = 1e-12
  kernel_init: Callable = nn.initializers.lecun_normal()
  bessel: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array, train: bool) -> jax.Array:
    c = x.shape[-1]
    bn = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=self.epsilon,
                      use_scale=False, use_bias=False, name="bn")
    normalized = bn(x)
    if self.bessel:
      bessel_running_var(bn, x)
    x = normalized
    if self.num_classes:
      gain = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones, name="gain")(cond)
      bias = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros, name="bias")(cond)
    else:
      dense = functools.partial(SNDense, c, use_bias=self.use_bias, use_sn=self.use_sn,
                                kernel_init=self.kernel_init, sn_eps=self.sn_eps)
      gain = 1.0 + dense(name="gain")(cond, train)
      bias = dense(name="bias")(cond, train)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
    return x * gain.reshape(shape) + bias.reshape(shape)
