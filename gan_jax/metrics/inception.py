"""The FID Inception-v3: the TF 2015-12-05 graph as pytorch-fid ports it, in Flax (NHWC).

Reference: mseitzer/pytorch-fid `src/pytorch_fid/inception.py` (`fid_inception_v3` and its
`FIDInceptionA`, `FIDInceptionC`, `FIDInceptionE_1`, `FIDInceptionE_2`), which patches
torchvision's `Inception3` (`torchvision/models/inception.py`) to reproduce the TF graph of
Heusel et al.'s TTUR code (`inception-2015-12-05.tgz`, pool_3 output). What differs from the
torchvision ImageNet network, and is reproduced here:
  - `fc` has 1008 outputs (the TF graph's classes), no auxiliary classifier;
  - the pool branches of Mixed_5b-d (InceptionA), Mixed_6b-e (InceptionC) and Mixed_7b
    (InceptionE_1) average-pool 3x3/1 with padding 1 *excluding* the padded zeros
    (`avg_pool2d(count_include_pad=False)`, TF semantics);
  - the pool branch of Mixed_7c (InceptionE_2) *max*-pools 3x3/1 with padding 1 (a quirk of the
    2015 graph kept for fidelity, pytorch-fid's comment says so).
Every convolution is torchvision's `BasicConv2d`: conv without bias, BatchNorm with eps 1e-3
(inference statistics), ReLU. pool3 = global average of Mixed_7c (8x8x2048 at 299²) -> 2048-d,
the FID/KID feature. IS uses `logits_unbiased` = pool3 · W_fc (no bias: improved-gan's
`inception_score.py` multiplies pool_3 by the `softmax/logits/MatMul` weight; torch-fidelity's
`logits_unbiased`, StyleGAN2-ADA's `no_output_bias=True`).

Input preprocessing (`preprocess`) follows pytorch-fid by default: images in [0, 1] are resized
to 299x299 with bilinear interpolation, half-pixel centres, no antialiasing (`F.interpolate(...,
mode="bilinear", align_corners=False)`, which `jax.image.resize(..., "bilinear", antialias=False)`
reproduces to float round-off, up- and downsampling), then scaled by 2x - 1. Generator output
in [-1, 1] is first quantized to 8 bits as a saved PNG would be (round((x + 1) · 127.5), clipped),
so generated and real images pass the same path; grey images are repeated to 3 channels.
`resize="none"` feeds images as they are (jax-fid's default; not comparable with pytorch-fid).
TTUR's own TF1 resize (no half-pixel centres) and clean-fid's PIL bicubic are not implemented.

`width` < 1 scales every channel count (tests and smoke runs with random weights only; the FID
network is width 1). All convolutions and matmuls run at `Precision.HIGHEST`, so TPUs and GPUs
do not drop to bfloat16 passes and the features stay comparable across platforms.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

NUM_CLASSES = 1008
FEATURES = 2048
IMAGE_SIZE = 299
RESIZE_CHOICES = ("bilinear", "none")
_HIGHEST = jax.lax.Precision.HIGHEST


def _scaled(width: float):
  return lambda c: max(1, int(round(c * width)))


def _pad(p) -> tuple[tuple[int, int], tuple[int, int]]:
  ph, pw = (p, p) if isinstance(p, int) else p
  return (ph, ph), (pw, pw)


class PointwiseConv(nn.Module):
  """A bias-free 1x1, stride-1 convolution computed as one matmul over [B·H·W, C]: nn.Conv's
  parameter ("kernel" [1, 1, C, O], same init), the same sums. XLA:CPU ran these shapes as a
  convolution at about 30 GFLOP/s against 160 as a matmul (scripts/benchmark.py --fid)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (1, 1, x.shape[-1], self.features))
    y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel[0, 0], precision=_HIGHEST)
    return y.reshape(*x.shape[:-1], self.features)


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv (no bias) -> BatchNorm(eps=1e-3, inference) -> ReLU."""
  features: int
  kernel: tuple[int, int] | int = 1
  strides: int = 1
  padding: tuple[int, int] | int = 0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = (self.kernel, self.kernel) if isinstance(self.kernel, int) else self.kernel
    if k == (1, 1) and self.strides == 1 and _pad(self.padding) == ((0, 0), (0, 0)):
      x = PointwiseConv(self.features, name="conv")(x)
    else:
      x = nn.Conv(self.features, k, strides=(self.strides, self.strides), padding=_pad(self.padding),
                  use_bias=False, precision=_HIGHEST, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """avg_pool2d(3, stride 1, padding 1, count_include_pad=False): TF's SAME average pool."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s1(x: jax.Array) -> jax.Array:
  """max_pool2d(3, stride 1, padding 1): padded with -inf (torch and lax.reduce_window alike)."""
  return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  """Mixed_5b-d (pytorch-fid FIDInceptionA): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(no pad count)-1x1."""
  pool_features: int
  width: float

  @nn.compact
  def __call__(self, x):
    c = _scaled(self.width)
    b1 = BasicConv(c(64), name="branch1x1")(x)
    b5 = BasicConv(c(48), name="branch5x5_1")(x)
    b5 = BasicConv(c(64), 5, padding=2, name="branch5x5_2")(b5)
    b3 = BasicConv(c(64), name="branch3x3dbl_1")(x)
    b3 = BasicConv(c(96), 3, padding=1, name="branch3x3dbl_2")(b3)
    b3 = BasicConv(c(96), 3, padding=1, name="branch3x3dbl_3")(b3)
    bp = BasicConv(c(self.pool_features), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a (torchvision InceptionB): 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2."""
  width: float

  @nn.compact
  def __call__(self, x):
    c = _scaled(self.width)
    b3 = BasicConv(c(384), 3, strides=2, name="branch3x3")(x)
    bd = BasicConv(c(64), name="branch3x3dbl_1")(x)
    bd = BasicConv(c(96), 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = BasicConv(c(96), 3, strides=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b-e (pytorch-fid FIDInceptionC): factorized 7x7 branches (1x7 / 7x1), avgpool(no pad count)-1x1."""
  channels_7x7: int
  width: float

  @nn.compact
  def __call__(self, x):
    c = _scaled(self.width)
    c7 = c(self.channels_7x7)
    b1 = BasicConv(c(192), name="branch1x1")(x)
    b7 = BasicConv(c7, name="branch7x7_1")(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(c(192), (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c7, name="branch7x7dbl_1")(x)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(c(192), (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(c(192), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a (torchvision InceptionD): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""
  width: float

  @nn.compact
  def __call__(self, x):
    c = _scaled(self.width)
    b3 = BasicConv(c(192), name="branch3x3_1")(x)
    b3 = BasicConv(c(320), 3, strides=2, name="branch3x3_2")(b3)
    b7 = BasicConv(c(192), name="branch7x7x3_1")(x)
    b7 = BasicConv(c(192), (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(c(192), (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(c(192), 3, strides=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (FIDInceptionE_1, avg pool excluding padding) and Mixed_7c (FIDInceptionE_2, max pool)."""
  pool: str
  width: float

  @nn.compact
  def __call__(self, x):
    c = _scaled(self.width)
    b1 = BasicConv(c(320), name="branch1x1")(x)
    b3 = BasicConv(c(384), name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(c(384), (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(c(384), (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
    bd = BasicConv(c(448), name="branch3x3dbl_1")(x)
    bd = BasicConv(c(384), 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(c(384), (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(c(384), (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
    if self.pool == "avg":
      p = _avg_pool_3x3(x)
    else:   # the 2015 graph's Mixed_7c: max pool 3x3/1, padding 1
      p = _max_pool_3x3_s1(x)
    bp = BasicConv(c(192), name="branch_pool")(p)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FC(nn.Module):
  """The 2048 -> 1008 classifier; returns (logits, logits without the bias)."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.num_classes))
    bias = self.param("bias", nn.initializers.zeros, (self.num_classes,))
    unbiased = jnp.dot(x, kernel, precision=_HIGHEST)
    return unbiased + bias, unbiased


class InceptionV3(nn.Module):
  """x: [B, H, W, 3] preprocessed (see `preprocess`; 299x299 for FID) -> {"pool3" [B, 2048],
  "logits" [B, 1008], "logits_unbiased" [B, 1008]}; with intermediates=True also every stem
  layer and Mixed block output, and pytorch-fid's output blocks "block0".."block2" (after the
  first and second max pools, after Mixed_6e)."""
  width: float = 1.0
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, x: jax.Array, intermediates: bool = False) -> dict[str, jax.Array]:
    c, w, out = _scaled(self.width), self.width, {}

    def keep(name, value):
      if intermediates:
        out[name] = value
      return value

    x = keep("Conv2d_1a_3x3", BasicConv(c(32), 3, strides=2, name="Conv2d_1a_3x3")(x))
    x = keep("Conv2d_2a_3x3", BasicConv(c(32), 3, name="Conv2d_2a_3x3")(x))
    x = keep("Conv2d_2b_3x3", BasicConv(c(64), 3, padding=1, name="Conv2d_2b_3x3")(x))
    x = keep("block0", _max_pool_3x3_s2(x))
    x = keep("Conv2d_3b_1x1", BasicConv(c(80), name="Conv2d_3b_1x1")(x))
    x = keep("Conv2d_4a_3x3", BasicConv(c(192), 3, name="Conv2d_4a_3x3")(x))
    x = keep("block1", _max_pool_3x3_s2(x))
    x = keep("Mixed_5b", InceptionA(32, w, name="Mixed_5b")(x))
    x = keep("Mixed_5c", InceptionA(64, w, name="Mixed_5c")(x))
    x = keep("Mixed_5d", InceptionA(64, w, name="Mixed_5d")(x))
    x = keep("Mixed_6a", InceptionB(w, name="Mixed_6a")(x))
    x = keep("Mixed_6b", InceptionC(128, w, name="Mixed_6b")(x))
    x = keep("Mixed_6c", InceptionC(160, w, name="Mixed_6c")(x))
    x = keep("Mixed_6d", InceptionC(160, w, name="Mixed_6d")(x))
    x = keep("Mixed_6e", InceptionC(192, w, name="Mixed_6e")(x))
    if intermediates:
      out["block2"] = x
    x = keep("Mixed_7a", InceptionD(w, name="Mixed_7a")(x))
    x = keep("Mixed_7b", InceptionE("avg", w, name="Mixed_7b")(x))
    x = keep("Mixed_7c", InceptionE("max", w, name="Mixed_7c")(x))
    pool3 = x.mean(axis=(1, 2))
    logits, unbiased = FC(self.num_classes, name="fc")(pool3)
    out.update(pool3=pool3, logits=logits, logits_unbiased=unbiased)
    return out


def quantize(images: jax.Array) -> jax.Array:
  """[-1, 1] model range -> the 8-bit values a saved PNG holds (as floats 0..255):
  round((x + 1) · 127.5) clipped to [0, 255] (StyleGAN2-ADA's x · 127.5 + 128 truncated)."""
  return jnp.clip(jnp.floor((images + 1.0) * 127.5 + 0.5), 0.0, 255.0)


def preprocess(images: jax.Array, size: int = IMAGE_SIZE, resize: str = "bilinear",
               quantize_input: bool = True) -> jax.Array:
  """images [B, H, W, 1 or 3] in [-1, 1] -> network input [B, size, size, 3] in [-1, 1], as
  pytorch-fid: [0, 1] -> bilinear resize to size² (align_corners=False, no antialias) -> 2x - 1."""
  if resize not in RESIZE_CHOICES:
    raise ValueError(f"resize must be one of {', '.join(RESIZE_CHOICES)}, got {resize!r}")
  x = images.astype(jnp.float32)
  x = quantize(x) / 255.0 if quantize_input else (x + 1.0) / 2.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if resize == "bilinear" and x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "bilinear", antialias=False)
  return 2.0 * x - 1.0


# ---- weights: pytorch-fid's state_dict (numpy arrays) -> our variables ----

def _basic_conv(sd: dict[str, np.ndarray], prefix: str) -> tuple[dict, dict]:
  w = sd[f"{prefix}.conv.weight"]                       # [O, I, kh, kw] -> [kh, kw, I, O]
  params = {"conv": {"kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0))},
            "bn": {"scale": sd[f"{prefix}.bn.weight"], "bias": sd[f"{prefix}.bn.bias"]}}
  stats = {"bn": {"mean": sd[f"{prefix}.bn.running_mean"], "var": sd[f"{prefix}.bn.running_var"]}}
  return params, stats


def variables_from_torch(state_dict: dict[str, np.ndarray]) -> dict:
  """pytorch-fid's FID Inception state_dict (tensors as float32 numpy arrays, keys as in
  `pt_inception-2015-12-05-6726825d.pth`) -> {"params", "batch_stats"} of InceptionV3.
  Every BasicConv2d prefix (`Mixed_5b.branch1x1`, ...) becomes the same path here."""
  sd = {k: np.asarray(v, np.float32) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
  params, stats, used = {}, {}, set()
  for key in sd:
    if key.endswith(".conv.weight"):
      prefix = key[: -len(".conv.weight")]
      p, s = _basic_conv(sd, prefix)
      node_p, node_s = params, stats
      for part in prefix.split("."):
        node_p, node_s = node_p.setdefault(part, {}), node_s.setdefault(part, {})
      node_p.update(p)
      node_s.update(s)
      used.update(f"{prefix}.{n}" for n in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                            "bn.running_var"))
  params["fc"] = {"kernel": np.ascontiguousarray(sd["fc.weight"].T), "bias": sd["fc.bias"]}
  used.update({"fc.weight", "fc.bias"})
  unused = sorted(set(sd) - used)
  if unused:
    raise ValueError(f"not an FID Inception state_dict: unexpected keys {unused[:5]}")
  return {"params": params, "batch_stats": stats}


def check_variables(variables: dict, width: float = 1.0) -> None:
  """Raises ValueError naming the first path whose shape differs from InceptionV3(width)."""
  expected = jax.eval_shape(InceptionV3(width=width).init, jax.random.PRNGKey(0),
                            jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3)))
  flat_e = {jax.tree_util.keystr(p): v.shape for p, v in jax.tree_util.tree_leaves_with_path(expected)}
  flat_g = {jax.tree_util.keystr(p): np.shape(v) for p, v in jax.tree_util.tree_leaves_with_path(variables)}
  for k in sorted(set(flat_e) | set(flat_g)):
    if flat_e.get(k) != flat_g.get(k):
      raise ValueError(f"Inception weights do not fit the network at {k}: "
                       f"file {flat_g.get(k)}, network {flat_e.get(k)}")
