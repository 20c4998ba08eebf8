"""StyleGAN3, Karras et al. 2021 ("Alias-Free Generative Adversarial Networks"), configs T and R,
as NVlabs/stylegan3 builds them (`training/networks_stylegan3.py`, cfgs in `train.py`); the
discriminator is StyleGAN2's (gan_jax/models/stylegan2.py), as in the official code.

Every signal in the synthesis network is a band-limited continuous signal sampled on a grid
(sec. 2); the layers are designed so that no operation creates frequencies the grid cannot hold:

- Input (sec. 3.1, "Fourier features"; `SynthesisInput`): C sinusoids with fixed random
  frequencies uniform on the disc of radius f_c,0 (a Gaussian direction; the Gaussian's radius r
  mapped to f_c,0 · exp(-r²/4), whose square is uniform on [0, 1]), phases uniform, and a
  per-sample rotation + translation predicted from w by an affine layer initialised to the
  identity (bias (1, 0, 0, 0), weights 0); a user transform (3x3, inverse, w.r.t. the output image)
  composes with it: this is how translation equivariance is measured. Frequencies pushed beyond
  the band by the user transform are faded out linearly between f_c,0 and s/2. Sampled on a
  grid of `size` pixels at `sampling_rate` (the image spans [-0.5, 0.5] at the last layers), then
  mixed by a learned C x C matrix (weights N(0, 1) / sqrt(C)).
- Layers (sec. 3.2, fig. 4; `SynthesisLayer`): modulated convolution (1x1 for R, 3x3 for T, zero
  padded to the full output, so each layer grows the canvas by k-1 before the crop) with the
  official pre-normalization (weights to unit RMS per output channel, styles to unit RMS) and
  demodulation; the input scaled by 1/sqrt(magnitude EMA) (the running mean of E[x²], decay
  `magnitude_ema_beta`, updated in training only: the official "magnitude_ema"); then the filtered
  leaky ReLU (eq. 2, fig. 4b): bias, upsample by `up` with a Kaiser-windowed lowpass at the input
  cutoff, leaky ReLU · sqrt(2), clamp, lowpass at the output cutoff and downsample by `down`.
  The temporary rate is max(s_in, s_out) · 2 (`lrelu_upsampling`), the filters have 6 taps per
  unit of the lower rate (`filter_size`), padding as in appendix C.3 (symmetric sample positions).
  R: the downsampling filter of non-critically-sampled layers is radially symmetric (jinc ·
  Kaiser window, appendix F.2), so the nonlinearity is rotation equivariant.
- Schedule (sec. 3.2, fig. 4c; `layer_schedule`): N = `num_layers` layers plus ToRGB; cutoffs
  f_c and minimum stopbands f_t grow geometrically from (f_c,0, f_t,0) = (2, 2^2.1) to (R/2, R/2 ·
  2^0.3) over the first N - `num_critical` layers and stay there; the sampling rate of a layer is
  the smallest power of two >= 2 f_t (at most R), the transition half-width f_h = max(f_t, s/2) -
  f_c; canvases have `margin_size` extra pixels per side (the last two layers: R x R); channels
  min(round(channel_base / 2 / f_c), channel_max). The last two layers are critically sampled
  (f_c = s/2), which removes the aliasing at the top by sacrificing the stopband.
- ToRGB: 1x1 modulated convolution without demodulation (styles · 1/sqrt(C)), bias, no
  nonlinearity, no resampling; the image is scaled by `output_scale` 0.25.
- Mapping: StyleGAN2's network with 2 layers (train.py: `map = 2` unless cfg=stylegan2), w
  average decay 0.998 (the SG3 `MappingNetwork` default), broadcast to num_layers + 2 ws (input,
  layers, ToRGB); no style mixing (train.py leaves `style_mixing_prob` at its default 0 for SG3).

Official parameter counts, all matched (tests/test_model_stylegan3.py): FFHQ-U 256 (cbase 16384):
T G 23,320,443 / R G 15,779,565, D 24,001,089; FFHQ 1024: T G 22,313,167 / R G 15,093,151,
D 29,012,513; AFHQv2 512: T G 24,873,519 / R G 16,665,594, D 28,982,849.

Layout NHWC/HWIO as in gan_jax/models/stylegan_layers.py; official weights map one to one
(conv [O, I, k, k] -> [k, k, I, O], dense [O, I] -> [I, O], the input's mixing matrix too).
Left out: mixed precision (the official layers whose rate · 2^4 > R run in fp16) and the fused
CUDA kernel (the filtered leaky ReLU here is the official reference order, `_filtered_lrelu_ref`).
"""
from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry, layers
from gan_jax.models import stylegan2 as sg2
from gan_jax.models import stylegan_layers as sl

_DN = ("NHWC", "HWIO", "NHWC")

# --- filter design -----------------------------------------------------------------------------


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> np.ndarray | None:
  """A Kaiser-windowed lowpass (Kaiser 1974; sec. 3.2 and appendix C of the paper): None for one tap.

  Separable: the 1-D windowed sinc of `scipy.signal.firwin` (cutoff and transition band `width` in
  the units of the sampling rate `fs`, normalized to DC gain 1), applied along both axes.
  Radial (appendix F.2): the 2-D ideal radial lowpass, the jinc 2 f_c J1(2π f_c r) / (2 f_c r),
  here J1(2π f_c r) / (π r) in the same normalization, times the outer product of the Kaiser window
  that firwin would pick for this band, normalized to sum 1: [numtaps, numtaps].
  """
  if numtaps < 1:
    raise ValueError(f"numtaps must be >= 1, got {numtaps}")
  if numtaps == 1:
    return None
  import scipy.signal  # here: importing it costs every trainer start about 1.5 s
  import scipy.special
  if not radial:
    return scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs).astype(np.float32)
  t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
  r = np.hypot(*np.meshgrid(t, t))
  safe = np.where(r > 0, r, 1.0)
  # r -> 0: J1(x) ~ x / 2, so J1(2π f_c r) / (π r) -> f_c.
  f = np.where(r > 0, scipy.special.j1(2 * np.pi * cutoff * safe) / (np.pi * safe), cutoff)
  beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
  window = np.kaiser(numtaps, beta)
  f = f * np.outer(window, window)
  return (f / f.sum()).astype(np.float32)


def upfirdn_matrix(n: int, f: np.ndarray | None, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0),
                   gain: float = 1.0) -> np.ndarray:
  """1-D `upfirdn` of a length-n signal as a matrix [n_out, n]: insert up-1 zeros after every
  sample, pad (negative crops), convolve with f · gain (a true convolution, VALID), keep every
  down-th sample. Built by running the steps on the identity."""
  taps = np.ones(1) if f is None else np.asarray(f, np.float64)
  x = np.zeros((n * up, n))
  x[::up] = np.eye(n)
  p0, p1 = pad
  x = np.pad(x, ((max(p0, 0), max(p1, 0)), (0, 0)))
  x = x[max(-p0, 0):x.shape[0] - max(-p1, 0)]
  k = len(taps)
  y = sum(taps[::-1][t] * x[t:x.shape[0] - k + 1 + t] for t in range(k)) * gain
  return y[::down].astype(np.float32)


def _depthwise(x: jax.Array, kernel: np.ndarray, strides: tuple[int, int]) -> jax.Array:
  """VALID correlation of every channel of x [B, H, W, C] with one [kh, kw] kernel, strided."""
  c = x.shape[-1]
  k = jnp.broadcast_to(jnp.asarray(kernel, x.dtype)[:, :, None, None], (*kernel.shape, 1, c))
  return lax.conv_general_dilated(x, k, strides, "VALID", dimension_numbers=_DN, feature_group_count=c)


# Longest (upsampled) axis filtered by dense matrices under impl "auto"; longer ones by convolutions.
MATMUL_MAX_SIZE = 320


def upfirdn2d(x: jax.Array, f: np.ndarray | None, up: int = 1, down: int = 1,
              padding: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0, impl: str = "auto") -> jax.Array:
  """`upfirdn2d` on NHWC for a separable [k] or a full [k, k] filter (None: no filtering): insert
  up-1 zeros after every pixel, pad (x0, x1, y0, y1; negative crops), convolve with f · gain,
  keep every down-th pixel.

  impl "matmul": separable filters as one dense matrix per axis (`upfirdn_matrix`; resampling,
  padding and filtering in one GEMM each: on CPU far faster, forward and backward, than
  depthwise convolutions, and cheap while the axes are short). "conv": zero insertion and
  padding by `lax.pad`, then depthwise convolutions strided by `down` (a full 2-D filter, config
  R's radial one, always runs so). "auto": matmul up to MATMUL_MAX_SIZE upsampled pixels, else conv.
  """
  px0, px1, py0, py1 = padding
  f = None if f is None else np.asarray(f, np.float32)
  separable = f is None or f.ndim == 1
  if impl == "auto":
    impl = "matmul" if separable and max(x.shape[1], x.shape[2]) * up <= MATMUL_MAX_SIZE else "conv"
  if impl == "matmul" and separable:
    axis_gain = math.sqrt(gain)   # gain ** (ndim / 2) per axis
    mh = upfirdn_matrix(x.shape[1], f, up, down, (py0, py1), axis_gain)
    mw = upfirdn_matrix(x.shape[2], f, up, down, (px0, px1), axis_gain)
    x = jnp.einsum("oh,bhwc->bowc", jnp.asarray(mh, x.dtype), x)
    return jnp.einsum("ow,bhwc->bhoc", jnp.asarray(mw, x.dtype), x)
  zero = jnp.zeros((), x.dtype)
  x = lax.pad(x, zero, ((0, 0, 0), (py0, py1 + up - 1, up - 1), (px0, px1 + up - 1, up - 1), (0, 0, 0)))
  if f is None:
    return x[:, ::down, ::down]
  if separable:
    taps = f[::-1] * np.float32(math.sqrt(gain))   # flipped: a true convolution
    return _depthwise(_depthwise(x, taps[:, None], (down, 1)), taps[None, :], (1, down))
  return _depthwise(x, f[::-1, ::-1] * np.float32(gain), (down, down))


def filtered_lrelu(x: jax.Array, fu: np.ndarray | None, fd: np.ndarray | None, b: jax.Array, up: int, down: int,
                   padding: tuple[int, int, int, int], gain: float = math.sqrt(2), slope: float = 0.2,
                   clamp: float | None = None) -> jax.Array:
  """The alias-free nonlinearity (sec. 3.2, fig. 4b): x [B, H, W, C] + b, upsampled by `up`
  (zero insertion, `fu` with gain up², `padding` relative to the upsampled image), leaky ReLU
  (`slope`) · `gain`, clamp to ±clamp, then `fd` and decimation by `down`."""
  x = x + b.astype(x.dtype)
  x = upfirdn2d(x, fu, up=up, padding=padding, gain=up * up)
  x = jnp.where(x >= 0, x, x * slope) * gain
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return upfirdn2d(x, fd, down=down)


# --- the layer schedule --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Per layer i = 0..N (N = ToRGB; index 0 doubles as the input's): cutoff f_c, minimum stopband
  f_t, sampling rate s, transition half-width f_h, canvas size and channels."""
  cutoffs: np.ndarray
  stopbands: np.ndarray
  sampling_rates: np.ndarray
  half_widths: np.ndarray
  sizes: np.ndarray
  channels: np.ndarray


def layer_schedule(resolution: int, img_channels: int, channel_base: int, channel_max: int, num_layers: int = 14,
                   num_critical: int = 2, first_cutoff: float = 2.0, first_stopband: float = 2**2.1,
                   last_stopband_rel: float = 2**0.3, margin_size: int = 10) -> Schedule:
  """The geometric progression of cutoffs and stopbands of fig. 4c (sec. 3.2, appendix F.1)."""
  last_cutoff = resolution / 2
  last_stopband = last_cutoff * last_stopband_rel
  # 0 at the first layer, 1 from layer N - num_critical on.
  t = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1.0)
  cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** t
  stopbands = first_stopband * (last_stopband / first_stopband) ** t
  rates = np.exp2(np.ceil(np.log2(np.minimum(2 * stopbands, resolution))))
  half_widths = np.maximum(stopbands, rates / 2) - cutoffs
  sizes = rates + 2 * margin_size
  sizes[-2:] = resolution          # the last layer and ToRGB: the image itself, no margin
  channels = np.rint(np.minimum(channel_base / 2 / cutoffs, channel_max))
  channels[-1] = img_channels
  return Schedule(cutoffs, stopbands, rates, half_widths, sizes.astype(int), channels.astype(int))


# --- synthesis -----------------------------------------------------------------------------------


def fourier_frequencies(key: jax.Array, channels: int, bandwidth: float) -> jax.Array:
  """[C, 2] frequencies uniform on the disc of radius `bandwidth`: the direction of a 2-D standard
  normal, its radius r mapped to bandwidth · exp(-r²/4) (r² ~ Exp(1/2), so the squared radius is
  uniform on [0, bandwidth²]), the official draw."""
  f = jax.random.normal(key, (channels, 2))
  r = jnp.sqrt(jnp.sum(jnp.square(f), axis=1, keepdims=True))
  return f / (r * jnp.exp(jnp.square(r)) ** 0.25) * bandwidth


def fourier_features(freqs: jax.Array, phases: jax.Array, transforms: jax.Array, size: int, sampling_rate: float,
                     bandwidth: float) -> jax.Array:
  """sin(2π (<f', x> + φ')) · a on the size x size grid x = (j + 1/2 - size/2) / s (pixel centres):
  freqs [C, 2], phases [C], transforms [B, 3, 3] (inverse, w.r.t. the image: sampling x through
  T = [[A, t], [0, 1]] gives f' = f A, φ' = φ + <f, t>); a = clip(1 - (|f'| - f_c) / (s/2 - f_c), 0, 1)
  fades frequencies the transform pushed out of band. -> [B, size, size, C] (y rows, x columns)."""
  phases = phases[None] + jnp.einsum("cj,bj->bc", freqs, transforms[:, :2, 2])
  freqs = jnp.einsum("cj,bjk->bck", freqs, transforms[:, :2, :2])
  amplitudes = jnp.clip(1 - (jnp.linalg.norm(freqs, axis=2) - bandwidth) / (sampling_rate / 2 - bandwidth), 0, 1)
  grid = (jnp.arange(size, dtype=jnp.float32) + 0.5 - size / 2) / sampling_rate
  arg = (grid[None, None, :, None] * freqs[:, None, None, :, 0] + grid[None, :, None, None] * freqs[:, None, None, :, 1]
         + phases[:, None, None, :])
  return jnp.sin(2 * np.pi * arg) * amplitudes[:, None, None, :]


class SynthesisInput(nn.Module):
  """w [B, w_dim] (and an optional user transform [3, 3] or [B, 3, 3]) -> [B, size, size, C]."""
  channels: int
  size: int
  sampling_rate: float
  bandwidth: float

  @nn.compact
  def __call__(self, w: jax.Array, transform: jax.Array | None = None) -> jax.Array:
    c = self.channels
    weight = self.param("weight", nn.initializers.normal(1.0), (c, c))
    freqs = self.variable("consts", "freqs", lambda: fourier_frequencies(self.make_rng("params"), c, self.bandwidth))
    phases = self.variable("consts", "phases", lambda: jax.random.uniform(self.make_rng("params"), (c,)) - 0.5)
    # t = (r_c, r_s, t_x, t_y), the rotation part normalized to unit length: a rigid motion.
    t = sl.EqualizedDense(4, weight_init=0.0, bias_init=(1.0, 0.0, 0.0, 0.0), name="affine")(w.astype(jnp.float32))
    t = t / jnp.linalg.norm(t[:, :2], axis=1, keepdims=True)
    one, zero = jnp.ones_like(t[:, 0]), jnp.zeros_like(t[:, 0])
    rot = jnp.stack([jnp.stack([t[:, 0], -t[:, 1], zero], -1), jnp.stack([t[:, 1], t[:, 0], zero], -1),
                     jnp.stack([zero, zero, one], -1)], axis=1)
    shift = jnp.stack([jnp.stack([one, zero, -t[:, 2]], -1), jnp.stack([zero, one, -t[:, 3]], -1),
                       jnp.stack([zero, zero, one], -1)], axis=1)
    user = jnp.eye(3) if transform is None else jnp.asarray(transform, jnp.float32)
    # Rotate the image first, then translate, then the user transform (all inverse maps).
    transforms = rot @ shift @ jnp.broadcast_to(user, (w.shape[0], 3, 3))
    x = fourier_features(freqs.value, phases.value, transforms, self.size, self.sampling_rate, self.bandwidth)
    return (x @ (weight / math.sqrt(c))).astype(w.dtype)


def modulated_conv(x: jax.Array, weight: jax.Array, styles: jax.Array, demodulate: bool, input_gain: jax.Array,
                   padding: int) -> jax.Array:
  """StyleGAN3's `modulated_conv2d`: with demodulation, the weights are first scaled to unit RMS
  per output channel and the styles to unit RMS (over the whole [B, I] tensor), which keeps fp16
  in range and changes nothing else (demodulation removes both scales up to its eps); then
  StyleGAN2's modulation/demodulation, and `input_gain` (after demodulation, so not divided out)."""
  if demodulate:
    w32 = weight.astype(jnp.float32)
    weight = (w32 * lax.rsqrt(jnp.mean(jnp.square(w32), axis=(0, 1, 2), keepdims=True))).astype(weight.dtype)
    s32 = styles.astype(jnp.float32)
    styles = (s32 * lax.rsqrt(jnp.mean(jnp.square(s32)))).astype(styles.dtype)
  return sl.modulated_conv2d(x * input_gain.astype(x.dtype), weight, styles, padding=padding, demodulate=demodulate)


class SynthesisLayer(nn.Module):
  """One alias-free layer (or ToRGB): x [B, in_size, in_size, I], w [B, w_dim] -> [B, out_size, out_size, O]."""
  out_channels: int
  in_size: int
  out_size: int
  in_sampling_rate: int
  out_sampling_rate: int
  in_cutoff: float
  out_cutoff: float
  in_half_width: float
  out_half_width: float
  is_torgb: bool = False
  is_critically_sampled: bool = False
  conv_kernel: int = 3
  filter_size: int = 6
  lrelu_upsampling: int = 2
  use_radial_filters: bool = False
  conv_clamp: float | None = 256.0
  magnitude_ema_beta: float = 0.999

  @property
  def kernel(self) -> int:
    return 1 if self.is_torgb else self.conv_kernel

  def resampling(self) -> tuple[int, int, np.ndarray | None, np.ndarray | None, tuple[int, int, int, int]]:
    """(up, down, up filter, down filter, padding) of the filtered leaky ReLU."""
    tmp_rate = max(self.in_sampling_rate, self.out_sampling_rate) * (1 if self.is_torgb else self.lrelu_upsampling)
    up = int(round(tmp_rate / self.in_sampling_rate))
    down = int(round(tmp_rate / self.out_sampling_rate))
    if up * self.in_sampling_rate != tmp_rate or down * self.out_sampling_rate != tmp_rate:
      raise ValueError(f"sampling rates {self.in_sampling_rate}, {self.out_sampling_rate} do not divide {tmp_rate}")
    up_taps = self.filter_size * up if up > 1 and not self.is_torgb else 1
    down_taps = self.filter_size * down if down > 1 and not self.is_torgb else 1
    fu = lowpass_filter(up_taps, self.in_cutoff, 2 * self.in_half_width, tmp_rate)
    fd = lowpass_filter(down_taps, self.out_cutoff, 2 * self.out_half_width, tmp_rate,
                        radial=self.use_radial_filters and not self.is_critically_sampled)
    # Output size before decimation, minus the upsampled input (grown by the full convolution),
    # plus what the two filters consume; split so the samples sit symmetrically (appendix C.3).
    total = (self.out_size - 1) * down + 1 - (self.in_size + self.kernel - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2
    return up, down, fu, fd, (lo, total - lo, lo, total - lo)

  @nn.compact
  def __call__(self, x: jax.Array, w: jax.Array, train: bool = False) -> jax.Array:
    cin, k = x.shape[-1], self.kernel
    magnitude = self.variable("stats", "magnitude_ema", jnp.ones, ())
    if train and self.is_mutable_collection("stats"):
      current = jnp.mean(jnp.square(lax.stop_gradient(x).astype(jnp.float32)))
      magnitude.value = current + self.magnitude_ema_beta * (magnitude.value - current)
    styles = sl.EqualizedDense(cin, bias_init=1.0, name="affine")(w)
    if self.is_torgb:
      styles = styles * (1.0 / math.sqrt(cin * k * k))
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.out_channels))
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
    x = modulated_conv(x, weight, styles, not self.is_torgb, lax.rsqrt(magnitude.value), padding=k - 1)
    up, down, fu, fd, padding = self.resampling()
    gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), sl.LRELU_SLOPE)
    x = filtered_lrelu(x, fu, fd, bias, up, down, padding, gain, slope, self.conv_clamp)
    assert x.shape[1:] == (self.out_size, self.out_size, self.out_channels), x.shape
    return x


class SynthesisNetwork(nn.Module):
  """ws [B, num_layers + 2, w_dim] -> images [B, R, R, C]; `transform` [3, 3] (or [B, 3, 3]): the
  inverse transform of the output image applied to the Fourier features (identity: None)."""
  resolution: int
  img_channels: int
  channel_base: int = 32768
  channel_max: int = 512
  num_layers: int = 14
  num_critical: int = 2
  first_cutoff: float = 2.0
  first_stopband: float = 2**2.1
  last_stopband_rel: float = 2**0.3
  margin_size: int = 10
  output_scale: float = 0.25
  conv_kernel: int = 3
  filter_size: int = 6
  lrelu_upsampling: int = 2
  use_radial_filters: bool = False
  conv_clamp: float | None = 256.0
  magnitude_ema_beta: float = 0.999

  def schedule(self) -> Schedule:
    return layer_schedule(self.resolution, self.img_channels, self.channel_base, self.channel_max, self.num_layers,
                          self.num_critical, self.first_cutoff, self.first_stopband, self.last_stopband_rel,
                          self.margin_size)

  @nn.compact
  def __call__(self, ws: jax.Array, train: bool = False, transform: jax.Array | None = None) -> jax.Array:
    if ws.shape[1] != self.num_layers + 2:
      raise ValueError(f"synthesis with {self.num_layers} layers needs {self.num_layers + 2} ws, got {ws.shape[1]}")
    s = self.schedule()
    x = SynthesisInput(int(s.channels[0]), int(s.sizes[0]), float(s.sampling_rates[0]), float(s.cutoffs[0]),
                       name="input")(ws[:, 0], transform)
    for i in range(self.num_layers + 1):
      p = max(i - 1, 0)
      layer = SynthesisLayer(
          int(s.channels[i]), int(s.sizes[p]), int(s.sizes[i]), int(s.sampling_rates[p]), int(s.sampling_rates[i]),
          float(s.cutoffs[p]), float(s.cutoffs[i]), float(s.half_widths[p]), float(s.half_widths[i]),
          is_torgb=i == self.num_layers, is_critically_sampled=i >= self.num_layers - self.num_critical,
          conv_kernel=self.conv_kernel, filter_size=self.filter_size, lrelu_upsampling=self.lrelu_upsampling,
          use_radial_filters=self.use_radial_filters, conv_clamp=self.conv_clamp,
          magnitude_ema_beta=self.magnitude_ema_beta, name=f"L{i}_{int(s.sizes[i])}_{int(s.channels[i])}")
      x = layer(x, ws[:, i + 1], train)
    return x * self.output_scale


class StyleGAN3Generator(sg2.StyleGAN2Generator):
  """G(z, y=None, train=True, truncation_psi=1.0) = synthesis(mapping(z, y, train, truncation_psi));
  the mapping (w average, truncation, optional style mixing) is StyleGAN2's.
  `synthesis(ws, train, transform)` takes the user transform of the Fourier features."""
  num_layers: int = 14
  num_critical: int = 2
  margin_size: int = 10
  output_scale: float = 0.25
  conv_kernel: int = 3
  filter_size: int = 6
  lrelu_upsampling: int = 2
  use_radial_filters: bool = False
  magnitude_ema_beta: float = 0.999

  @property
  def num_ws(self) -> int:
    return self.num_layers + 2

  def setup(self):
    self.mapping_net = sg2.MappingNetwork(self.w_dim, self.num_classes, self.mapping_layers, self.mapping_lr_mul)
    self.synthesis_net = SynthesisNetwork(
        self.resolution, self.img_channels, self.channel_base, self.channel_max, self.num_layers, self.num_critical,
        margin_size=self.margin_size, output_scale=self.output_scale, conv_kernel=self.conv_kernel,
        filter_size=self.filter_size, lrelu_upsampling=self.lrelu_upsampling,
        use_radial_filters=self.use_radial_filters, conv_clamp=self.conv_clamp,
        magnitude_ema_beta=self.magnitude_ema_beta)
    self.w_avg = self.variable("stats", "w_avg", jnp.zeros, (self.w_dim,))

  def synthesis(self, ws: jax.Array, train: bool = True, transform: jax.Array | None = None) -> jax.Array:
    return self.synthesis_net(ws, train, transform)


def _defaults() -> dict:
  # cfg=stylegan3-t at 1024 (train.py): channel_base/max of G; D keeps --cbase/--cmax.
  return {"z_dim": 512, "z_dist": "normal", "w_dim": 512, "mapping_layers": 2, "mapping_lr_mul": 0.01,
          "channel_base": 32768, "channel_max": 512, "d_channel_base": 32768, "d_channel_max": 512,
          "num_layers": 14, "num_critical": 2, "margin_size": 10, "conv_kernel": 3, "filter_size": 6,
          "lrelu_upsampling": 2, "use_radial_filters": False, "conv_clamp": 256, "magnitude_ema_beta": 0.999,
          "style_mixing_prob": 0.0, "w_avg_beta": 0.998, "d_architecture": "resnet", "mbstd_group_size": 4,
          "mbstd_num_channels": 1, "conv_impl": "auto"}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "image":
    raise ConfigError(f"model 'stylegan3' needs image data, got {spec.kind} data")
  h, w, ch = spec.shape
  if h != w or h < 8 or h & (h - 1):
    raise ConfigError(f"model 'stylegan3' needs square images of a power-of-two size >= 8, got {h}x{w}")
  if c.conditional and spec.num_classes == 0:
    raise ConfigError("model.conditional needs a dataset with labels; this one has none (set model.conditional=False)")
  if c.d_architecture not in sg2.D_ARCHITECTURES:
    raise ConfigError(f"unknown model.d_architecture {c.d_architecture!r}; valid choices: "
                      f"{', '.join(sg2.D_ARCHITECTURES)}")
  if c.num_layers <= c.num_critical or c.num_critical < 0:
    raise ConfigError(f"model.num_layers ({c.num_layers}) must exceed model.num_critical ({c.num_critical}) >= 0")
  if c.conv_kernel not in (1, 3) or c.z_dim < 1 or c.w_dim < 1 or c.mapping_layers < 1:
    raise ConfigError("model.conv_kernel must be 1 or 3; model.z_dim, w_dim and mapping_layers >= 1")
  num_classes = spec.num_classes if c.conditional else 0
  clamp = float(c.conv_clamp) if c.conv_clamp else None
  g = StyleGAN3Generator(
      h, ch, num_classes, c.w_dim, c.mapping_layers, c.mapping_lr_mul, c.channel_base, c.channel_max, clamp,
      c.style_mixing_prob, c.w_avg_beta, num_layers=c.num_layers, num_critical=c.num_critical,
      margin_size=c.margin_size, conv_kernel=c.conv_kernel, filter_size=c.filter_size,
      lrelu_upsampling=c.lrelu_upsampling, use_radial_filters=c.use_radial_filters,
      magnitude_ema_beta=c.magnitude_ema_beta)
  d = sg2.StyleGAN2Discriminator(h, num_classes, c.d_channel_base, c.d_channel_max, c.d_architecture,
                                 c.mbstd_group_size, c.mbstd_num_channels, 8, 0.01, clamp,
                                 layers.resolve_impl(c.conv_impl))
  return g, d


MODELS.register("stylegan3")(ModelEntry(_defaults, _build, truncation="w"))
