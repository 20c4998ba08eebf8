"""StyleGAN building blocks (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), as NVlabs/stylegan2-ada-pytorch defines them (`training/networks.py`,
`torch_utils/ops/{upfirdn2d,conv2d_resample,bias_act}.py`); shared by the StyleGAN generations.

Layout is NHWC with HWIO kernels. Parameter names and initial values follow the official
layers, so their weights map one to one (kernel [O, I, kh, kw] there -> [kh, kw, I, O] here):

- Equalized learning rate (Karras et al. 2018, sec. 4.1): weights are stored ~ N(0, 1) (divided
  by `lr_mul` for dense layers) and scaled at run time by `lr_mul / sqrt(fan_in)`; biases are
  stored as their initial value and scaled by `lr_mul` (`FullyConnectedLayer`, `Conv2dLayer`).
- `bias_act`: bias, activation, gain (sqrt(2) for leaky ReLU 0.2, 1 for linear), clamp to
  +-conv_clamp, in that order (`bias_act.py`, `activation_funcs`).
- FIR resampling with the separable [1, 3, 3, 1] filter, normalized to unit sum (`setup_filter`),
  gain up^2 when upsampling (`upfirdn2d.upsample2d` / `downsample2d`); the padding each resampling
  convolution uses is `conv2d_resample`'s.
- Modulated convolution with demodulation (StyleGAN2 sec. 2.2, eq. 1-3, `modulated_conv2d`) in its
  non-fused form (scale activations before and after a shared-weight convolution), the form the
  official code trains with (`fused_modconv = not training`); equal to per-sample weights
  w'_ijk = s_i w_ijk / sqrt(sum_ik (s_i w_ijk)^2 + 1e-8) (tests/test_model_stylegan2.py).
- Noise inputs: per-pixel N(0, 1) noise, one channel broadcast over features, times a learned
  scalar strength initialised to 0 (`SynthesisLayer`), drawn from `make_rng("noise")`.
- Minibatch standard deviation (Karras et al. 2018, sec. 3; `MinibatchStdLayer`): groups of
  `min(group_size, N)` samples, `num_channels` feature groups.

Convolutions that upsample are true convolutions (the official layers pass flip_weight=False
when up > 1) and all others correlations, so official kernels load without flipping.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gan_jax.models import layers

_DN = ("NHWC", "HWIO", "NHWC")
LRELU_SLOPE = 0.2
ACT_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2.0)}   # bias_act.activation_funcs[...].def_gain


def bias_act(x: jax.Array, b: jax.Array | None, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> jax.Array:
  """x + b (over the last axis), activation, times `gain` * the activation's default gain, clamp."""
  if b is not None:
    x = x + b
  if act == "lrelu":
    x = nn.leaky_relu(x, LRELU_SLOPE)
  elif act != "linear":
    raise ValueError(f"unknown activation {act!r}")
  x = x * (ACT_GAIN[act] * gain)
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


def setup_filter(f: Sequence[float] = (1, 3, 3, 1)) -> np.ndarray:
  """The 1-D taps of a separable FIR filter, scaled so the 2-D filter sums to 1."""
  f = np.asarray(f, np.float32)
  return f / f.sum()


def _fir_axis(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
  """VALID convolution (flipped taps: `upfirdn2d` with flip_filter=False) along one spatial axis."""
  k = len(taps)
  n = x.shape[axis] - k + 1
  flipped = taps[::-1]
  out = 0.0
  for t in range(k):
    out = out + float(flipped[t]) * lax.slice_in_dim(x, t, t + n, axis=axis)
  return out


def upfirdn2d(x: jax.Array, f: np.ndarray, up: int = 1, down: int = 1,
              padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0) -> jax.Array:
  """`upfirdn2d.upfirdn2d` for a separable filter on NHWC: insert up-1 zeros after every pixel,
  pad (x0, x1, y0, y1; negative crops), filter with `f` ⊗ `f` * gain, keep every down-th pixel."""
  b, h, w, c = x.shape
  if up > 1:
    x = x.reshape(b, h, 1, w, 1, c)
    x = jnp.pad(x, ((0, 0), (0, 0), (0, up - 1), (0, 0), (0, up - 1), (0, 0))).reshape(b, h * up, w * up, c)
  px0, px1, py0, py1 = padding
  x = jnp.pad(x, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
  x = x[:, max(-py0, 0):x.shape[1] - max(-py1, 0), max(-px0, 0):x.shape[2] - max(-px1, 0)]
  taps = np.asarray(f, np.float32) * np.float32(math.sqrt(gain))   # gain ** (ndim / 2) per axis
  x = _fir_axis(_fir_axis(x, taps, 1), taps, 2)
  return x[:, ::down, ::down]


def upsample2d(x: jax.Array, f: np.ndarray, up: int = 2) -> jax.Array:
  """`upfirdn2d.upsample2d`: [B, H, W, C] -> [B, up·H, up·W, C]."""
  fw = len(f)
  p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
  return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def downsample2d(x: jax.Array, f: np.ndarray, down: int = 2) -> jax.Array:
  """`upfirdn2d.downsample2d`: [B, H, W, C] -> [B, H/down, W/down, C]."""
  fw = len(f)
  p0, p1 = (fw - down + 1) // 2, (fw - down) // 2
  return upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))


def conv2d_resample(x: jax.Array, w: jax.Array, f: np.ndarray | None = None, up: int = 1, down: int = 1,
                    padding: int = 0, impl: str = "xla") -> jax.Array:
  """`conv2d_resample.conv2d_resample` with the official layers' kernel orientation (see the
  module docstring) for up or down in {1, 2}; `padding` is relative to the upsampled image.

  up=2: transposed stride-2 convolution, then the FIR filter (gain 4); down=2: the FIR filter,
  then a stride-2 convolution (1x1 kernels: downsample first); otherwise a plain convolution.
  `impl`: "subpixel" computes the strided convolutions' slow XLA:CPU parts with the sub-pixel
  forms of gan_jax/models/layers.py (same math), "xla" with plain lax convolutions.
  """
  kh, kw = w.shape[:2]
  if kh != kw or up not in (1, 2) or down not in (1, 2) or (up > 1 and down > 1):
    raise ValueError(f"conv2d_resample supports square kernels and one of up/down in (1, 2), "
                     f"got {w.shape}, {up}, {down}")
  k = kw
  p0 = p1 = padding
  if up > 1:
    fw = len(f)
    p0 += (fw + up - 1) // 2 - (k - 1)
    p1 += (fw - up) // 2 - (k - up)
    assert p0 >= 0 and p1 >= 0, (p0, p1)
    wf = jnp.flip(w, (0, 1))   # true convolution: correlation with the flipped kernel
    if impl == "xla":
      y = lax.conv_transpose(x, wf, (up, up), "VALID", dimension_numbers=_DN)
    else:
      y = layers.strided_conv_transpose(x, wf, (up, up), "VALID")
    return upfirdn2d(y, f, padding=(p0, p1, p0, p1), gain=up * up)
  if down > 1:
    fw = len(f)
    p0 += (fw - down + 1) // 2
    p1 += (fw - down) // 2
    if k == 1:
      x = upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))
      return lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=_DN)
    x = upfirdn2d(x, f, padding=(p0, p1, p0, p1))
    if impl == "xla":
      return lax.conv_general_dilated(x, w, (down, down), "VALID", dimension_numbers=_DN)
    return layers.strided_conv(x, w, down, ((0, 0), (0, 0)))
  return lax.conv_general_dilated(x, w, (1, 1), [(p0, p1), (p0, p1)], dimension_numbers=_DN)


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """x / sqrt(mean(x^2) + eps) over the features (the mapping network's input normalization)."""
  return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class EqualizedDense(nn.Module):
  """`FullyConnectedLayer`: y = act(x @ (W · lr_mul/sqrt(fan_in)) + b · lr_mul) · gain.

  `weight_init` scales the stored N(0, 1) weights (0: StyleGAN3's Fourier-feature affine starts
  at its bias); `bias_init` is a scalar or one value per feature."""
  features: int
  use_bias: bool = True
  activation: str = "linear"
  lr_mul: float = 1.0
  bias_init: float | tuple[float, ...] = 0.0
  weight_init: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fan_in = x.shape[-1]

    def init(key, shape):
      w = jax.random.normal(key, shape) / self.lr_mul
      return w if self.weight_init == 1 else w * self.weight_init

    w = self.param("weight", init, (fan_in, self.features))
    bias_init = nn.initializers.constant(np.asarray(self.bias_init, np.float32))
    b = self.param("bias", bias_init, (self.features,)) if self.use_bias else None
    y = x @ (w * (self.lr_mul / math.sqrt(fan_in)))
    return bias_act(y, None if b is None else b * self.lr_mul, self.activation)


class EqualizedConv(nn.Module):
  """`Conv2dLayer`: equalized-lr k x k convolution (weights ~ N(0, 1), run-time gain
  1/sqrt(I·k²)), optional FIR up/down-sampling by 2, bias, activation, clamp; `gain` scales
  the output and the clamp (the residual blocks' sqrt(0.5))."""
  features: int
  kernel_size: int
  use_bias: bool = True
  activation: str = "linear"
  up: int = 1
  down: int = 1
  resample_filter: tuple = (1, 3, 3, 1)
  conv_clamp: float | None = None
  impl: str = "xla"

  @nn.compact
  def __call__(self, x: jax.Array, gain: float = 1.0) -> jax.Array:
    k, cin = self.kernel_size, x.shape[-1]
    w = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    x = conv2d_resample(x, w * (1.0 / math.sqrt(cin * k * k)), setup_filter(self.resample_filter),
                        up=self.up, down=self.down, padding=k // 2, impl=self.impl)
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, b, self.activation, gain=gain, clamp=clamp)


def modulated_conv2d(x: jax.Array, w: jax.Array, styles: jax.Array, noise: jax.Array | None = None,
                     up: int = 1, padding: int = 0, f: np.ndarray | None = None, demodulate: bool = True,
                     impl: str = "xla") -> jax.Array:
  """StyleGAN2's weight (de)modulation, non-fused: x [B, H, W, I], w [k, k, I, O], styles [B, I].

  Equals a per-sample convolution with w'[b] = w * styles[b, i], each output channel scaled to
  unit L2 norm over (k, k, I) when `demodulate` (eps 1e-8); `noise` is added after demodulation.
  """
  x = x * styles[:, None, None, :].astype(x.dtype)
  x = conv2d_resample(x, w.astype(x.dtype), f, up=up, padding=padding, impl=impl)
  if demodulate:
    # sum_{k,k,i} (w s_i)^2 = sum_i s_i^2 sum_{k,k} w^2 : [B, O]
    # In float32 whatever the compute dtype (a sum of k·k·I squares).
    s32, w32 = styles.astype(jnp.float32), w.astype(jnp.float32)
    dcoefs = lax.rsqrt(jnp.square(s32) @ jnp.sum(jnp.square(w32), axis=(0, 1)) + 1e-8)
    x = x * dcoefs[:, None, None, :].astype(x.dtype)
  if noise is not None:
    x = x + noise.astype(x.dtype)
  return x


def minibatch_stddev(x: jax.Array, group_size: int | None = 4, num_channels: int = 1) -> jax.Array:
  """`MinibatchStdLayer` on NHWC: appends `num_channels` feature maps holding, for each group of
  G = min(group_size, N) samples (sample i is in group i mod N/G) and each of `num_channels`
  channel groups, the mean over channels and pixels of the standard deviation over the group."""
  n, h, w, c = x.shape
  g = min(group_size, n) if group_size is not None else n
  if n % g:
    raise ValueError(f"minibatch stddev: batch {n} is not divisible by the group size {g}")
  f = num_channels
  y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)   # statistics in float32
  y = y - jnp.mean(y, axis=0)
  y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)   # [n, H, W, F, c]
  y = jnp.mean(y, axis=(1, 2, 4))                         # [n, F]
  y = jnp.tile(y, (g, 1))[:, None, None, :]               # sample i gets group i mod n
  return jnp.concatenate([x, jnp.broadcast_to(y, (n, h, w, f)).astype(x.dtype)], axis=-1)
