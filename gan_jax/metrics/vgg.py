"""VGG-16 (Simonyan & Zisserman 2015, configuration "D") up to its second fully connected layer:
the 4096-d features of the precision/recall metric (Kynkäänniemi et al. 2019).

Layers as torchvision's `vgg16` (`torchvision/models/vgg.py`, cfg "D"): thirteen 3x3 convolutions
(stride 1, padding 1, bias, ReLU) in five stages of 64, 128, 256, 512, 512 channels with
2, 2, 3, 3, 3 layers, each stage followed by a 2x2/2 max pool; adaptive average pooling to 7x7
(the identity at 224x224 input); flatten in torch's (C, H, W) order; fc1 25088 -> 4096, ReLU;
fc2 4096 -> 4096, ReLU. The feature is fc2 after its ReLU (torch-fidelity's `fc2_relu`; the
dropout layers are identities at inference). fc3 (the ImageNet classes) is not used.

Weights: torchvision's ImageNet file `vgg16-397923af.pth` (a state_dict), converted with
scripts/convert_weights.py. NVIDIA's metric (the paper's `vgg16.pkl`, StyleGAN2-ADA's TorchScript
`vgg16.pt`) uses a different VGG-16 weight file whose preprocessing is baked into the TorchScript
program; it is not converted here, so precision/recall values are torchvision-VGG numbers
(torch-fidelity's protocol), close to but not identical with NVIDIA's.

Preprocessing (`preprocess`), torch-fidelity's for VGG-16 except the resize filter: 8-bit
quantization (as a saved PNG), [0, 1], bilinear resize to 224x224 with half-pixel centres and no
antialiasing (torch `F.interpolate(bilinear, align_corners=False)`; torch-fidelity uses TF1's
resize), then ImageNet mean/std normalization. fc1's kernel is stored permuted to NHWC flattening
order by the converter, so no transpose happens at run time.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.metrics.inception import quantize

FEATURES = 4096
IMAGE_SIZE = 224
STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HIGHEST = jax.lax.Precision.HIGHEST


def conv_names() -> list[str]:
  return [f"conv{s + 1}_{i + 1}" for s, stage in enumerate(STAGES) for i in range(len(stage))]


def adaptive_avg_pool(x: jax.Array, out: int) -> jax.Array:
  """torch's AdaptiveAvgPool2d((out, out)) on NHWC: bin i covers [floor(i·H/out), ceil((i+1)·H/out))."""
  h, w = x.shape[1:3]
  if (h, w) == (out, out):
    return x
  rows = []
  for i in range(out):
    r0, r1 = (i * h) // out, -((-(i + 1) * h) // out)
    cols = [x[:, r0:r1, (j * w) // out:-((-(j + 1) * w) // out)].mean(axis=(1, 2)) for j in range(out)]
    rows.append(jnp.stack(cols, axis=1))
  return jnp.stack(rows, axis=1)


class VGG16(nn.Module):
  """x: [B, H, W, 3] preprocessed (224x224 for the metric) -> {"fc2_relu" [B, 4096]}; with
  intermediates=True also each stage's pooled output ("pool1".."pool5") and "fc1_relu".
  `widths` (13 conv channel counts) and `fc_features` default to VGG-16's; smaller values exist
  for tests with random weights only."""
  widths: tuple[int, ...] = tuple(c for stage in STAGES for c in stage)
  fc_features: int = FEATURES

  @nn.compact
  def __call__(self, x: jax.Array, intermediates: bool = False) -> dict[str, jax.Array]:
    out, names, k = {}, conv_names(), 0
    for s, stage in enumerate(STAGES):
      for _ in stage:
        x = nn.relu(nn.Conv(self.widths[k], (3, 3), padding=((1, 1), (1, 1)), precision=_HIGHEST,
                            name=names[k])(x))
        k += 1
      x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
      if intermediates:
        out[f"pool{s + 1}"] = x
    x = adaptive_avg_pool(x, 7).reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.fc_features, precision=_HIGHEST, name="fc1")(x))
    if intermediates:
      out["fc1_relu"] = x
    out["fc2_relu"] = nn.relu(nn.Dense(self.fc_features, precision=_HIGHEST, name="fc2")(x))
    return out


def preprocess(images: jax.Array, size: int = IMAGE_SIZE, quantize_input: bool = True) -> jax.Array:
  """images [B, H, W, 1 or 3] in [-1, 1] -> [B, size, size, 3], ImageNet-normalized."""
  x = images.astype(jnp.float32)
  x = quantize(x) / 255.0 if quantize_input else (x + 1.0) / 2.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "bilinear", antialias=False)
  return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def variables_from_torch(state_dict: dict[str, np.ndarray]) -> dict:
  """torchvision vgg16 state_dict (numpy arrays; keys features.{0,2,5,...}.weight/bias,
  classifier.{0,3,6}.weight/bias) -> {"params"} of VGG16 (classifier.6, the class layer, dropped).
  Conv layers are taken in index order, so any width of the same topology converts."""
  sd = {k: np.asarray(v, np.float32) for k, v in state_dict.items()}
  conv_idx = sorted(int(k.split(".")[1]) for k in sd if k.startswith("features.") and k.endswith(".weight"))
  names = conv_names()
  if len(conv_idx) != len(names) or not all(f"classifier.{i}.weight" in sd for i in (0, 3)):
    raise ValueError(f"not a VGG-16 state_dict: {len(conv_idx)} conv layers (need {len(names)}), "
                     f"keys {sorted(sd)[:4]}...")
  params = {}
  for name, i in zip(names, conv_idx):
    params[name] = {"kernel": np.ascontiguousarray(sd[f"features.{i}.weight"].transpose(2, 3, 1, 0)),
                    "bias": sd[f"features.{i}.bias"]}
  w1 = sd["classifier.0.weight"]                    # [O, C·7·7], input flattened as (C, H, W)
  c = params[names[-1]]["kernel"].shape[-1]
  w1 = w1.reshape(w1.shape[0], c, 7, 7).transpose(2, 3, 1, 0).reshape(49 * c, w1.shape[0])
  params["fc1"] = {"kernel": np.ascontiguousarray(w1), "bias": sd["classifier.0.bias"]}
  params["fc2"] = {"kernel": np.ascontiguousarray(sd["classifier.3.weight"].T), "bias": sd["classifier.3.bias"]}
  return {"params": params}


def module_for(variables: dict) -> VGG16:
  """The VGG16 whose widths fit `variables` (the converted file's shapes)."""
  p = variables["params"]
  return VGG16(widths=tuple(int(p[n]["kernel"].shape[-1]) for n in conv_names()),
               fc_features=int(p["fc2"]["kernel"].shape[-1]))
