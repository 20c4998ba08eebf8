"""StyleGAN3 (gan_jax/models/stylegan3.py) and the equivariance metrics (gan_jax/metrics/equivariance.py):
parameter counts and the layer schedule of the official configurations, the filters against their
closed forms, the resampling, the filtered leaky ReLU and the Fourier features against direct
computations, translation equivariance against a StyleGAN2 generator, and the trainer end to end."""
import concurrent.futures
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from conftest import experiment, read_jsonl, run_script

from gan_jax.errors import ConfigError
from gan_jax.metrics import equivariance as eq
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models import stylegan2 as sg2
from gan_jax.models import stylegan3 as sg3


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _models(res=16, channels=1, **model):
  c = model_config("stylegan3")
  c.update(**model)
  return build_models(c, DataSpec("image", (res, res, channels)))


# --- parameter counts and the schedule ----------------------------------------------------------

# Official counts: NVlabs/stylegan3 @ c233a91, training/networks_stylegan3.py `Generator` and
# training/networks_stylegan2.py `Discriminator` built with the kwargs train.py derives for
# --cfg=stylegan3-t / stylegan3-r (z_dim = w_dim = 512, mapping num_layers 2; R: channel_base and
# channel_max doubled, conv_kernel 1, use_radial_filters; D with --cbase and --cmax 512), --cbase
# 16384 for FFHQ-U 256 and the default 32768 otherwise, instantiated with torch 2.13 (CPU) in a
# scratch directory and counted as sum(p.numel() for p in module.parameters()): parameters only,
# not buffers (w_avg, magnitude_ema, the input's freqs/phases/transform, the filters).
OFFICIAL = {
    # name: (resolution, cbase, R config, G params, D params)
    "t-ffhqu-256": (256, 16384, False, 23_320_443, 24_001_089),
    "r-ffhqu-256": (256, 16384, True, 15_779_565, 24_001_089),
    "t-ffhq-1024": (1024, 32768, False, 22_313_167, 29_012_513),
    "r-ffhq-1024": (1024, 32768, True, 15_093_151, 29_012_513),
    "t-afhqv2-512": (512, 32768, False, 24_873_519, 28_982_849),
    "r-afhqv2-512": (512, 32768, True, 16_665_594, 28_982_849),
}


def _official_kwargs(base, radial):
  return dict(channel_base=base * (2 if radial else 1), channel_max=1024 if radial else 512, d_channel_base=base,
              conv_kernel=1 if radial else 3, use_radial_filters=radial)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_parameter_counts_equal_the_official_networks(name):
  res, base, radial, g_count, d_count = OFFICIAL[name]
  g, d = _models(res, 3, **_official_kwargs(base, radial))
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, 512)), train=False))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((4, res, res, 3)), train=False))
  assert _count(gv["params"]) == g_count
  assert _count(dv["params"]) == d_count
  assert _count(gv["params"]["mapping_net"]) == 2 * (512 * 512 + 512)      # 2 mapping layers
  assert g.num_ws == 16 and gv["stats"]["w_avg"].shape == (512,)
  assert set(gv) == {"params", "stats", "consts"}                          # buffers are not parameters


def test_schedule_and_layers_of_the_ffhqu256_t_config():
  """Sizes, rates, channels and paddings as the official network prints them (its layer names
  L{i}_{size}_{channels} and `padding` attributes), and the closed forms of fig. 4c."""
  s = sg3.layer_schedule(256, 3, 16384, 512)
  assert list(s.sizes) == [36, 36, 36, 52, 52, 84, 84, 148, 148, 148, 276, 276, 276, 256, 256]
  assert list(s.channels) == [512] * 7 + [362, 256, 181, 128, 91, 64, 64, 3]
  assert list(s.sampling_rates) == [16] * 3 + [32] * 2 + [64] * 2 + [128] * 3 + [256] * 5
  ratio = s.cutoffs[1:13] / s.cutoffs[:12]
  np.testing.assert_allclose(ratio, (128 / 2) ** (1 / 12), rtol=1e-12)       # geometric to f_c = R/2
  np.testing.assert_allclose(s.cutoffs[12:], 128.0)
  np.testing.assert_allclose(s.stopbands[12:], 128 * 2**0.3)
  np.testing.assert_allclose(s.half_widths, np.maximum(s.stopbands, s.sampling_rates / 2) - s.cutoffs)
  assert np.all(s.cutoffs[13:] == s.sampling_rates[13:] / 2)                # critically sampled at the end
  g, _ = _models(256, 3, channel_base=16384)
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((1, 512)), train=False))
  names = {k for k in gv["params"]["synthesis_net"] if k != "input"}
  assert names == {f"L{i}_{s.sizes[i]}_{s.channels[i]}" for i in range(15)} and "L7_148_362" in names
  p = gv["params"]["synthesis_net"]
  assert p["L3_52_512"]["weight"].shape == (3, 3, 512, 512) and p["L14_256_3"]["weight"].shape == (1, 1, 64, 3)
  assert p["input"]["weight"].shape == (512, 512) and p["input"]["affine"]["weight"].shape == (512, 4)
  layer = lambda i, **kw: sg3.SynthesisLayer(  # noqa: E731
      int(s.channels[i]), int(s.sizes[max(i - 1, 0)]), int(s.sizes[i]), int(s.sampling_rates[max(i - 1, 0)]),
      int(s.sampling_rates[i]), s.cutoffs[max(i - 1, 0)], s.cutoffs[i], s.half_widths[max(i - 1, 0)],
      s.half_widths[i], **kw)
  # (up, down, taps up, taps down, padding) of the official layers L0, L3, L13, L14.
  for i, (up, down, tu, td, pad) in {0: (2, 2, 12, 12, (9, 8, 9, 8)), 3: (4, 2, 24, 12, (-6, -9, -6, -9)),
                                     13: (2, 2, 12, 12, (-11, -12, -11, -12)), 14: (1, 1, 0, 0, (0, 0, 0, 0))}.items():
    kw = dict(is_torgb=i == 14, is_critically_sampled=i >= 12)
    u, dn, fu, fd, padding = layer(i, **kw).resampling()
    assert (u, dn, padding) == (up, down, pad), i
    assert (0 if fu is None else len(fu), 0 if fd is None else len(fd)) == (tu, td), i


# --- filters -------------------------------------------------------------------------------------

def _response(h, f, fs):
  """Zero-phase frequency response of a symmetric FIR at frequency f: sum_n h[n] cos(2π f (n - c) / fs)."""
  n = np.arange(len(h)) - (len(h) - 1) / 2
  return np.sum(h * np.cos(2 * np.pi * f * n / fs))


@pytest.mark.parametrize("numtaps,cutoff,half_width,fs", [(12, 2.0, 2.29, 32), (12, 8.0, 1.85, 32),
                                                          (24, 4.76, 3.24, 64), (12, 64.0, 64.0, 256)])
def test_kaiser_lowpass_meets_its_specification(numtaps, cutoff, half_width, fs):
  """Unit DC gain; the windowed sinc is about -6 dB (0.5) at the cutoff (these filters are short:
  within 0.1), near 1 in the passband and below Kaiser's attenuation bound A = 2.285 (N-1) Δω + 7.95
  dB (kaiser_atten) beyond the stopband."""
  h = sg3.lowpass_filter(numtaps, cutoff, 2 * half_width, fs)
  assert h.shape == (numtaps,)
  np.testing.assert_allclose(h, h[::-1], atol=1e-7)
  np.testing.assert_allclose(np.sum(h), 1.0, rtol=1e-6)
  assert abs(_response(h, cutoff, fs) - 0.5) < 0.1
  atten = 2.285 * (numtaps - 1) * np.pi * (2 * half_width / (fs / 2)) + 7.95
  bound = 10 ** (-atten / 20)
  for f in np.linspace(cutoff + half_width, fs / 2, 20):
    assert abs(_response(h, f, fs)) < 3 * bound + 2e-3, f
  assert abs(_response(h, cutoff - half_width, fs) - 1.0) < 3 * bound + 2e-3
  assert sg3.lowpass_filter(1, cutoff, 1.0, fs) is None


def test_radial_lowpass_is_rotation_symmetric_and_the_separable_one_is_not():
  """Appendix F.2: the jinc-based filter's 2-D response depends on |f| only (up to the window);
  the separable filter's response along the diagonal is the product of two 1-D ones."""
  numtaps, cutoff, width, fs = 12, 8.0, 2 * 3.7, 32
  h = sg3.lowpass_filter(numtaps, cutoff, width, fs, radial=True)
  assert h.shape == (12, 12)
  np.testing.assert_allclose(np.sum(h), 1.0, rtol=1e-6)
  np.testing.assert_allclose(h, h.T, atol=1e-7)
  np.testing.assert_allclose(h, h[::-1, ::-1], atol=1e-7)
  n = np.arange(numtaps) - (numtaps - 1) / 2

  def resp2(f2, fx, fy):
    return np.sum(f2 * np.cos(2 * np.pi * (fy * n[:, None] + fx * n[None, :]) / fs))

  sep = np.outer(*(2 * [sg3.lowpass_filter(numtaps, cutoff, width, fs)]))
  for rho in (2.0, cutoff, 11.0):
    axis, diag = resp2(h, rho, 0), resp2(h, rho / math.sqrt(2), rho / math.sqrt(2))
    assert abs(axis - diag) < 0.06, (rho, axis, diag)
  # At |f| = cutoff the separable filter passes the diagonal far more than the axis direction.
  assert resp2(sep, cutoff / math.sqrt(2), cutoff / math.sqrt(2)) - resp2(sep, cutoff, 0) > 0.3
  # The jinc itself: J1(2π f_c r) / (π r) -> f_c at r = 0 (odd taps put a sample at the centre).
  odd = sg3.lowpass_filter(13, cutoff, width, fs, radial=True)
  r = (np.arange(13) - 6) / fs
  rr = np.hypot(*np.meshgrid(r, r))
  win = np.kaiser(13, scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(13, width / (fs / 2))))
  with np.errstate(invalid="ignore", divide="ignore"):
    jinc = np.where(rr > 0, scipy.special.j1(2 * np.pi * cutoff * rr) / (np.pi * rr), cutoff)
  ref = jinc * np.outer(win, win)
  np.testing.assert_allclose(odd, ref / ref.sum(), rtol=1e-5, atol=1e-7)


# --- resampling, filtered leaky ReLU, modulated convolution ---------------------------------------

def _np_upfirdn(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
  """Zero insertion, padding (negative crops), 2-D convolution (scipy) with f ⊗ f (or f) · gain, decimation."""
  n, h, w, c = x.shape
  z = np.zeros((n, h * up, w * up, c))
  z[:, ::up, ::up] = x
  px0, px1, py0, py1 = pad
  z = np.pad(z, ((0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0)), (0, 0)))
  z = z[:, max(-py0, 0):z.shape[1] - max(-py1, 0), max(-px0, 0):z.shape[2] - max(-px1, 0)]
  f2 = (np.ones((1, 1)) if f is None else np.outer(f, f) if f.ndim == 1 else f) * gain
  out = np.stack([np.stack([scipy.signal.convolve(z[b, :, :, k], f2, mode="valid") for k in range(c)], -1)
                  for b in range(n)])
  return out[:, ::down, ::down]


@pytest.mark.parametrize("impl", ["matmul", "conv"])
def test_upfirdn2d_matches_a_direct_computation(impl):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 20, 20, 3)).astype(np.float32)
  f1 = sg3.lowpass_filter(12, 3.0, 4.0, 32)
  f2 = sg3.lowpass_filter(12, 3.0, 4.0, 32, radial=True)
  cases = [(f1, 2, 1, (9, 8, 9, 8), 4.0), (f1, 1, 2, (0, 0, 0, 0), 1.0), (sg3.lowpass_filter(24, 3.0, 4.0, 64), 4, 1,
           (-6, -9, -6, -9), 16.0), (f2, 1, 2, (1, 2, 0, 3), 1.0), (None, 1, 1, (-2, -1, 1, 0), 1.0)]
  ys = jax.jit(lambda x: [sg3.upfirdn2d(x, f, up=up, down=down, padding=pad, gain=gain, impl=impl)
                          for f, up, down, pad, gain in cases])(x)
  for y, (f, up, down, pad, gain) in zip(ys, cases):
    np.testing.assert_allclose(y, _np_upfirdn(x, f, up, down, pad, gain), rtol=1e-4, atol=1e-5)


def test_filtered_lrelu_matches_a_direct_computation():
  """Eq. 2 / fig. 4b as the official reference order: bias, upsample (gain up²), leaky ReLU · sqrt(2),
  clamp, downsample."""
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 10, 10, 4)).astype(np.float32) * 3
  b = rng.standard_normal(4).astype(np.float32)
  fu, fd = sg3.lowpass_filter(12, 4.0, 5.0, 32), sg3.lowpass_filter(12, 5.0, 4.0, 32)
  pad = (9, 8, 9, 8)
  y, to_rgb = jax.jit(lambda x, b: (sg3.filtered_lrelu(x, fu, fd, b, 2, 2, pad, clamp=2.5), sg3.filtered_lrelu(
      x, None, None, b, 1, 1, (0, 0, 0, 0), gain=1.0, slope=1.0)))(x, b)
  t = _np_upfirdn(x + b, fu, up=2, pad=pad, gain=4.0)
  t = np.clip(np.where(t >= 0, t, 0.2 * t) * math.sqrt(2), -2.5, 2.5)
  ref = _np_upfirdn(t, fd, down=2)
  assert y.shape == ref.shape == (2, 8, 8, 4)   # (10·2 + 17 - 11 - 11) // 2 + 1
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
  # ToRGB form: no filters, slope 1, gain 1: x + b.
  np.testing.assert_allclose(to_rgb, x + b, rtol=1e-6)


def test_modulated_conv_equals_demodulated_per_sample_weights_times_the_input_gain():
  """The pre-normalizations leave the demodulated weights w_ijk s_i / sqrt(sum_ik (w s)^2) unchanged;
  the magnitude gain scales the input after demodulation."""
  rng = np.random.default_rng(2)
  x = rng.standard_normal((3, 5, 5, 4)).astype(np.float32)
  w = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
  s = rng.uniform(0.3, 2.0, (3, 4)).astype(np.float32)
  y = jax.jit(lambda x, w, s: sg3.modulated_conv(x, w, s, True, jnp.asarray(0.5), padding=2))(x, w, s)
  wn = w[None] * s[:, None, None, :, None]
  wn = wn / np.sqrt(np.sum(wn**2, axis=(1, 2, 3), keepdims=True))
  xp = np.pad(0.5 * x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  ref = sum(np.einsum("nhwi,nio->nhwo", xp[:, a:a + 7, c:c + 7], wn[:, a, c]) for a in range(3) for c in range(3))
  assert y.shape == (3, 7, 7, 6)                                    # full convolution: the canvas grows by k-1
  np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


# --- Fourier features -----------------------------------------------------------------------------

def test_fourier_frequencies_are_uniform_on_the_disc():
  f = np.asarray(sg3.fourier_frequencies(jax.random.PRNGKey(0), 20_000, 3.0))
  r2 = np.sum(f**2, axis=1) / 9.0
  assert r2.max() <= 1.0
  # Uniform on the disc: |f|²/bw² ~ U(0, 1), and the angle uniform.
  np.testing.assert_allclose(np.quantile(r2, [0.1, 0.25, 0.5, 0.75, 0.9]), [0.1, 0.25, 0.5, 0.75, 0.9], atol=0.015)
  hist = np.histogram(np.arctan2(f[:, 1], f[:, 0]), bins=8, range=(-np.pi, np.pi))[0]
  np.testing.assert_allclose(hist / len(f), 1 / 8, atol=0.01)


def test_fourier_features_match_a_direct_computation():
  rng = np.random.default_rng(3)
  freqs = rng.uniform(-2, 2, (5, 2)).astype(np.float32)
  phases = rng.uniform(-0.5, 0.5, 5).astype(np.float32)
  a = 0.4
  m = np.array([[[math.cos(a), math.sin(a), 0.1], [-math.sin(a), math.cos(a), -0.2], [0, 0, 1]], np.eye(3)],
               np.float32)
  size, rate, bw = 12, 8.0, 2.0
  features = jax.jit(sg3.fourier_features, static_argnums=(3, 4, 5))
  y = np.asarray(features(freqs, phases, m, size, rate, bw))
  grid = (np.arange(size) + 0.5 - size / 2) / rate
  for b in range(2):
    f2 = freqs @ m[b, :2, :2]
    ph = phases + freqs @ m[b, :2, 2]
    amp = np.clip(1 - (np.linalg.norm(f2, axis=1) - bw) / (rate / 2 - bw), 0, 1)
    for i in range(size):
      for j in range(size):       # row i is y, column j is x
        ref = np.sin(2 * np.pi * (grid[j] * f2[:, 0] + grid[i] * f2[:, 1] + ph)) * amp
        np.testing.assert_allclose(y[b, i, j], ref, rtol=1e-4, atol=1e-5)
  # Translating by t through the transform is sampling the same sinusoids at x - t.
  t = np.array([0.3, -0.1], np.float32)
  freqs = 0.7 * freqs                                              # |f| < 2: all in band, amplitude 1
  shifted = np.eye(3, dtype=np.float32)[None]
  shifted[0, :2, 2] = -t
  y1 = features(freqs, phases, shifted, size, rate, bw)
  ref = np.sin(2 * np.pi * ((grid[None, :, None] - t[0]) * freqs[:, 0] + (grid[:, None, None] - t[1]) * freqs[:, 1]
                            + phases))
  np.testing.assert_allclose(y1[0], ref, rtol=1e-4, atol=1e-5)


# --- the generator -------------------------------------------------------------------------------

# The official margin of 10 pixels: with 4, zeros padded in at the canvas borders reach the image
# within 4 layers and EQ-T (unit RMS) falls from ~70 to ~35 dB.
TOY = dict(z_dim=16, w_dim=16, channel_base=128, channel_max=16, num_layers=4, d_channel_base=128, d_channel_max=16,
           conv_impl="xla", magnitude_ema_beta=0.5)
Z = jax.random.normal(jax.random.PRNGKey(0), (4, 16))


def _input_features(gv, w):
  """The toy generator's SynthesisInput (16 channels, 36x36 canvas at rate 16, bandwidth 2) alone."""
  v = {"params": gv["params"]["synthesis_net"]["input"], "consts": gv["consts"]["synthesis_net"]["input"]}
  return sg3.SynthesisInput(16, 36, 16.0, 2.0).apply(v, w)


@pytest.fixture(scope="module")
def toy():
  """A toy 16x16 StyleGAN3-T (4 layers of <= 16 channels + ToRGB, 36x36 canvases) and its variables."""
  g, d = _models(16, 1, **TOY)
  gv = jax.jit(lambda: g.init({"params": jax.random.PRNGKey(0)}, Z, train=False))()
  return g, d, gv


def test_generator_shapes_contract_and_training_state(toy):
  g, d, gv = toy
  assert g.num_ws == 6 and gv["consts"]["synthesis_net"]["input"]["freqs"].shape == (16, 2)

  @jax.jit
  def run(gv):
    x = g.apply(gv, Z, train=False)
    ws = g.apply(gv, Z, None, False, method="mapping")
    img = g.apply(gv, ws, False, method="synthesis")
    (xt, upd) = g.apply(gv, Z, train=True, mutable=["stats"])
    ws_t, _ = g.apply(gv, Z, None, True, method="mapping", mutable=["stats"])
    return x, ws, img, xt, upd, ws_t, _input_features(gv, ws[:, 0])

  x, ws, img, xt, upd, ws_t, feats = jax.tree.map(np.asarray, run(gv))
  assert x.shape == (4, 16, 16, 1) and bool(np.all(np.isfinite(x)))
  assert ws.shape == (4, 6, 16)
  np.testing.assert_allclose(x, img, rtol=1e-6, atol=1e-6)          # G = synthesis ∘ mapping
  np.testing.assert_allclose(ws_t, np.broadcast_to(ws_t[:, :1], ws_t.shape))   # no style mixing by default
  # Training updates each layer's magnitude EMA (beta 0.5 here) from E[x²] of its input, before use.
  stats = upd["stats"]["synthesis_net"]
  assert set(gv["stats"]["synthesis_net"]) == {k for k in gv["params"]["synthesis_net"] if k != "input"}
  l0 = next(k for k in stats if k.startswith("L0_"))
  np.testing.assert_allclose(stats[l0]["magnitude_ema"], 0.5 * float(np.mean(feats**2)) + 0.5, rtol=1e-5)
  for k in stats:
    assert float(gv["stats"]["synthesis_net"][k]["magnitude_ema"]) == 1.0
  # The magnitude gain changes training-mode outputs only through the updated EMA.
  assert float(np.max(np.abs(xt - x))) > 1e-4
  logits = jax.jit(d.apply)(jax.jit(d.init)(jax.random.PRNGKey(1), x), x)
  assert logits.shape == (4,)


def test_fourier_input_starts_as_the_identity_transform(toy):
  """The input affine starts at (1, 0, 0, 0): no rotation, no translation, whatever w is."""
  g, _, gv = toy
  p = gv["params"]["synthesis_net"]["input"]
  np.testing.assert_array_equal(p["affine"]["weight"], 0.0)
  np.testing.assert_array_equal(p["affine"]["bias"], [1.0, 0.0, 0.0, 0.0])

  @jax.jit
  def run(gv, w):
    c, p = gv["consts"]["synthesis_net"]["input"], gv["params"]["synthesis_net"]["input"]
    ref = sg3.fourier_features(c["freqs"], c["phases"], jnp.broadcast_to(jnp.eye(3), (2, 3, 3)), 36, 16.0, 2.0)
    return _input_features(gv, w), ref @ (p["weight"] / 4.0)

  feats, expected = run(gv, jax.random.normal(jax.random.PRNGKey(5), (2, 16)))
  np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_bad_configurations_raise_config_errors():
  with pytest.raises(ConfigError, match="power-of-two"):
    _models(24, 1)
  with pytest.raises(ConfigError, match="needs image data"):
    build_models(model_config("stylegan3"), DataSpec("vector", (2,)))
  with pytest.raises(ConfigError, match="num_critical"):
    _models(16, 1, num_layers=2, num_critical=2)
  with pytest.raises(ConfigError, match="conv_kernel"):
    _models(16, 1, conv_kernel=5)


# --- translation equivariance ---------------------------------------------------------------------

def test_equivariance_helpers_against_direct_computations():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((2, 16, 16, 1))
  z, m = eq.integer_translation(x, 3 / 16, -2 / 16)
  ref = np.zeros_like(x)
  ref[:, :14, 3:] = x[:, 2:, :13]                                   # content moves right 3, up 2
  np.testing.assert_array_equal(z, ref)
  assert m.sum() == 2 * 14 * 13
  # Lanczos-3 shifts a band-limited signal (0.1 cycles/pixel) to its analytic shift on the valid pixels.
  h = w = 24
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  sig = lambda dx, dy: np.sin(2 * np.pi * (0.1 * (xx - dx) + 0.07 * (yy - dy)))[None, :, :, None]  # noqa: E731
  tx, ty = 2.3 / w, -1.6 / h
  z, m = eq.fractional_translation(sig(0, 0), tx, ty)
  valid = m[0, :, :, 0] > 0
  assert valid.sum() == (w - 5) * (h - 5)                          # the 6-tap footprint inside the image
  np.testing.assert_allclose(z[0, :, :, 0][valid], sig(2.3, -1.6)[0, :, :, 0][valid], atol=0.02)
  assert np.abs(z[0, :, :, 0][valid] - sig(-2.3, 1.6)[0, :, :, 0][valid]).max() > 0.5    # the direction matters
  assert eq.masked_psnr(np.zeros((1, 4)), np.full((1, 4), 0.02), np.ones((1, 4))) == pytest.approx(40.0)


class FourierStyleGAN2(nn.Module):
  """StyleGAN2's skip generator with its 4x4 constant replaced by (untransformed-by-w) Fourier
  features at rate 4, bandwidth 2: the paper's config B (table 2), the StyleGAN2 whose input can
  be translated, for the EQ-T comparison."""
  resolution: int = 16
  channel_base: int = 256
  channel_max: int = 16

  @nn.compact
  def __call__(self, ws, transform=None):
    ch = lambda r: sg2.channels(r, self.channel_base, self.channel_max)  # noqa: E731
    x = sg3.SynthesisInput(ch(4), 4, 4.0, 2.0, name="input")(ws[:, 0], transform)
    img, i = None, 1
    for r in (8, 16):
      x, img = sg2.SynthesisBlock(ch(r), r, 1, first=False, impl="xla", name=f"b{r}")(x, img, ws[:, i:i + 3])
      i += 2
    return img


def _eq_t(apply, ws, fractional=False):
  """EQ-T raw, and with each generator's images rescaled to unit RMS (PSNR depends on the scale)."""
  rms = float(np.sqrt(np.mean(np.square(np.asarray(apply(ws[0], np.eye(3, dtype=np.float32)))))))
  key = jax.random.PRNGKey(7)
  raw = eq.translation_equivariance(apply, ws, key, fractional=fractional)
  return raw, eq.translation_equivariance(lambda w, m: apply(w, m) / rms, ws, key, fractional=fractional)


def test_stylegan3_is_translation_equivariant_and_stylegan2_is_not(toy):
  """EQ-T (integer shifts) and EQ-T_frac at initialization on 3 batches of 4 latents: the alias-free
  toy generator vs a StyleGAN2 of similar size (both with unit-RMS images: > 40 dB apart)."""
  g, _, gv = toy
  ws = [jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(i), (4, 1, 16)), (4, 6, 16)) for i in range(3)]
  sg3_apply = jax.jit(lambda w, m: g.apply(gv, w, False, m, method="synthesis"))
  f = FourierStyleGAN2()
  ws2 = [w[:, :6] for w in ws]
  fv = jax.jit(lambda: f.init({"params": jax.random.PRNGKey(0), "noise": jax.random.PRNGKey(1)}, ws2[0]))()
  sg2_apply = jax.jit(lambda w, m: f.apply(fv, w, m, rngs={"noise": jax.random.PRNGKey(2)}))
  t3, t3n = _eq_t(sg3_apply, ws)
  t2, t2n = _eq_t(sg2_apply, ws2)
  f3, f3n = _eq_t(sg3_apply, ws, fractional=True)
  print(f"EQ-T at init: StyleGAN3-T {t3:.1f} dB ({t3n:.1f} at unit RMS), StyleGAN2+Fourier {t2:.1f} ({t2n:.1f}); "
        f"EQ-T_frac StyleGAN3-T {f3:.1f} ({f3n:.1f})")
  assert t3n > 55 and f3n > 45
  assert t2n < 30
  assert t3n - t2n > 30


def test_experiment_configs(load_config):
  c = load_config("experiments/stylegan3_ffhqu256.py")
  assert (c.model.name, c.model.channel_base, c.model.channel_max, c.model.conv_kernel) == ("stylegan3", 16384, 512, 3)
  assert (c.batch_size, c.reg.r1, c.reg.pl_weight, c.model.style_mixing_prob, c.model.mbstd_group_size) == \
      (64, 1.0, 0.0, 0.0, 4)
  assert (c.optim.g.lr, c.optim.d.lr, c.optim.g.b1, c.optim.g.b2) == (0.0025, 0.0025, 0.0, 0.99)
  assert c.ema.halflife_kimg == 20.0 and c.model.magnitude_ema_beta == pytest.approx(0.5 ** (64 / 20000))
  r = load_config("experiments/stylegan3_ffhqu256.py:cfg=stylegan3-r,resolution=1024")
  assert (r.model.channel_base, r.model.channel_max, r.model.d_channel_base, r.model.conv_kernel) == \
      (65536, 1024, 32768, 1)
  assert r.model.use_radial_filters and (r.batch_size, r.reg.r1, r.optim.d.lr, r.ema.halflife_kimg) == \
      (32, 32.8, 0.002, 10.0)
  with pytest.raises(ConfigError, match="stylegan3-t, stylegan3-r"):
    load_config("experiments/stylegan3_ffhqu256.py:cfg=stylegan2")


# --- the trainer end to end ------------------------------------------------------------------------

def trained_eq_t(workdir: str) -> float:
  """EQ-T (dB) of the EMA generator of a finished StyleGAN3 run on 2 batches of 8 latents."""
  from gan_jax.train.loop import load_run

  config, _, _, gan, _, state, _ = load_run(workdir)
  g = gan.generator
  variables = {"params": state.ema_params if state.ema_params is not None else state.g_params, **state.g_vars}
  z = [jax.random.normal(jax.random.PRNGKey(100 + i), (8, config.model.z_dim)) for i in range(2)]
  ws = [jax.jit(lambda v, z: g.apply(v, z, None, False, method="mapping"))(variables, zi) for zi in z]
  apply = jax.jit(lambda w, m: g.apply(variables, w, False, m, method="synthesis"))
  return eq.translation_equivariance(apply, ws, jax.random.PRNGKey(7))


@pytest.mark.slow
def test_four_devices_equal_one(tmp_path):
  """The first 2 steps of the runlocal config (R1 applied at step 0) give the same metrics on 4
  simulated devices as on 1. Both runs go in parallel (compilation is mostly single-threaded)."""
  spec = experiment("stylegan3_ffhqu256") + ":runlocal"
  common = ["--config.log_every=1", "--config.sample_every=0", "--config.ckpt_every=100", "--config.total_steps=2",
            "--config.eval.every=0"]
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {n: pool.submit(run_script, "train.py", "--config", spec, *common, f"--workdir={tmp}", devices=n,
                              timeout=1800)
               for n, tmp in ((1, tmp_path / "one"), (4, tmp_path / "four"))}
    results = {n: f.result() for n, f in futures.items()}
  for r in results.values():
    assert r.returncode == 0, r.stderr[-3000:]
  one = {r["step"]: r for r in read_jsonl(os.path.join(tmp_path / "one", "metrics.jsonl")) if "d_loss" in r}
  four = {r["step"]: r for r in read_jsonl(os.path.join(tmp_path / "four", "metrics.jsonl")) if "d_loss" in r}
  assert set(one) == set(four) and len(one) >= 1
  for step in one:
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1"):
      if key in one[step]:
        assert np.isfinite(one[step][key]), key
        np.testing.assert_allclose(four[step][key], one[step][key], rtol=2e-3, atol=1e-5, err_msg=f"{key}@{step}")
  assert any(one[s].get("r1", 0) != 0 for s in one)


@pytest.mark.slow
def test_runlocal_learns_digits_and_stays_equivariant(tmp_path):
  """The runlocal config (lazy R1, EMA, magnitude EMAs) through scripts/train.py: digit_fd falls
  clearly within 100 steps, and the trained EMA generator's EQ-T stays high (its 24x24 canvases,
  margin 4, bound it below the toy generator's at init; see TOY)."""
  spec = experiment("stylegan3_ffhqu256") + ":runlocal"
  workdir = tmp_path / "one"
  r = run_script("train.py", "--config", spec, f"--workdir={workdir}", "--config.log_every=25",
                 "--config.sample_every=100", "--config.ckpt_every=100", "--config.total_steps=100",
                 "--config.eval.every=100", timeout=3600)
  assert r.returncode == 0, r.stderr[-3000:]
  fd = {x["step"]: x["digit_fd"] for x in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "digit_fd" in x}
  assert set(fd) == {0, 100}
  assert fd[100] < 0.6 * fd[0], fd
  assert os.path.exists(workdir / "samples" / "step_00000100.png")
  eqt = trained_eq_t(str(workdir))
  print(f"EQ-T after 100 steps: {eqt:.1f} dB")
  assert eqt > 25
