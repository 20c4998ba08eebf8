"""The evaluation networks: parameter counts, preprocessing and pooling layers against direct
computations, weight files, streamed and sharded extraction, and (with torch) agreement with
pytorch-fid's InceptionV3 and torchvision's VGG-16 through the real conversion path."""
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, run_script

from gan_jax.errors import ConfigError
from gan_jax.metrics import features, inception, vgg

# Random weights at 1/8 width: a stand-in for the converted FID network in fast tests only.
TINY = 0.125


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_parameter_counts_equal_the_reference_networks():
  v = jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3)))
  # torchvision's Inception-v3 has 27,161,264 parameters (torchvision/models/inception.py,
  # Inception_V3_Weights.IMAGENET1K_V1 meta "num_params"). pytorch-fid's FID network drops AuxLogits
  # (768->128 1x1 BasicConv2d 98,560 + 128->768 5x5 BasicConv2d 2,459,136 + fc 769,000 = 3,326,696) and
  # has a 1008-way fc (2,065,392 instead of 2,049,000): 27,161,264 - 3,326,696 - 2,049,000 + 2,065,392.
  # pytorch-fid's module instantiated with torch 2.13 here counts the same 23,850,960 (and 34,432
  # BatchNorm running-statistic entries, num_batches_tracked excluded).
  assert _count(v["params"]) == 27_161_264 - 3_326_696 - 2_049_000 + 2_065_392 == 23_850_960
  assert _count(v["batch_stats"]) == 34_432
  out = jax.eval_shape(lambda v, x: inception.InceptionV3().apply(v, x, intermediates=True), v,
                       jax.ShapeDtypeStruct((2, 299, 299, 3), jnp.float32))
  assert out["pool3"].shape == (2, 2048) and out["logits_unbiased"].shape == (2, 1008)
  assert out["block0"].shape == (2, 73, 73, 64) and out["block1"].shape == (2, 35, 35, 192)
  assert out["block2"].shape == (2, 17, 17, 768) and out["Mixed_7c"].shape == (2, 8, 8, 2048)
  # torchvision's VGG-16 has 138,357,544 parameters (torchvision/models/vgg.py, VGG16_Weights.IMAGENET1K_V1
  # meta "num_params"); ours stops at fc2, without the 4096 x 1000 + 1000 class layer.
  p = jax.eval_shape(vgg.VGG16().init, jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))
  assert _count(p) == 138_357_544 - (4096 * 1000 + 1000)


def test_avg_pool_excludes_padding_and_max_pool_pads_with_minus_infinity():
  x = np.random.default_rng(0).standard_normal((1, 4, 5, 2)).astype(np.float32)
  ours = np.asarray(inception._avg_pool_3x3(jnp.asarray(x)))
  direct = np.zeros_like(x)
  for i in range(4):
    for j in range(5):
      win = x[0, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
      direct[0, i, j] = win.reshape(-1, 2).mean(axis=0)       # mean over the in-bounds pixels only
  np.testing.assert_allclose(ours, direct, rtol=1e-6, atol=1e-6)
  neg = -np.abs(x) - 1.0                                       # all negative: zero padding would win a max
  direct = np.zeros_like(neg)
  for i in range(4):
    for j in range(5):
      direct[0, i, j] = neg[0, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].reshape(-1, 2).max(axis=0)
  np.testing.assert_array_equal(np.asarray(inception._max_pool_3x3_s1(jnp.asarray(neg))), direct)


def test_adaptive_avg_pool_matches_torch_bins():
  rng = np.random.default_rng(1)
  for h in (1, 5, 7, 10, 14):
    x = rng.standard_normal((2, h, h, 3)).astype(np.float32)
    ours = np.asarray(vgg.adaptive_avg_pool(jnp.asarray(x), 7))
    direct = np.zeros((2, 7, 7, 3), np.float32)
    for i in range(7):
      for j in range(7):
        r0, r1 = int(np.floor(i * h / 7)), int(np.ceil((i + 1) * h / 7))
        c0, c1 = int(np.floor(j * h / 7)), int(np.ceil((j + 1) * h / 7))
        direct[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    np.testing.assert_allclose(ours, direct, rtol=1e-6, atol=1e-6)


def _bilinear_half_pixel(img: np.ndarray, out: int) -> np.ndarray:
  """torch F.interpolate(bilinear, align_corners=False) by its definition, for one [H, W] image."""
  h = img.shape[0]
  src = np.maximum((np.arange(out) + 0.5) * h / out - 0.5, 0.0)
  lo = np.minimum(np.floor(src).astype(int), h - 1)
  hi = np.minimum(lo + 1, h - 1)
  t = src - lo
  rows = img[lo] * (1 - t)[:, None] + img[hi] * t[:, None]
  return rows[:, lo] * (1 - t)[None, :] + rows[:, hi] * t[None, :]


def test_preprocessing_quantizes_resizes_and_scales_as_pytorch_fid():
  rng = np.random.default_rng(2)
  u = rng.integers(0, 256, (2, 8, 8, 1)).astype(np.float32)
  x = u / 127.5 - 1.0                                          # model range, as the data pipeline makes it
  np.testing.assert_array_equal(np.asarray(inception.quantize(jnp.asarray(x))), u)
  noisy = np.clip(x + rng.uniform(-0.45, 0.45, x.shape) / 127.5, -1, 1)   # within half a level: same uint8
  np.testing.assert_array_equal(np.asarray(inception.quantize(jnp.asarray(noisy))), u)
  out = np.asarray(inception.preprocess(jnp.asarray(x), size=19))
  assert out.shape == (2, 19, 19, 3) and np.array_equal(out[..., 0], out[..., 2])   # grey repeated
  for b in range(2):
    np.testing.assert_allclose(out[b, :, :, 1], 2 * _bilinear_half_pixel(u[b, :, :, 0] / 255.0, 19) - 1, atol=2e-6)
  same = np.asarray(inception.preprocess(jnp.asarray(x), size=8, resize="none"))
  np.testing.assert_allclose(same[..., 0], 2 * u[..., 0] / 255 - 1, atol=1e-6)
  with pytest.raises(ValueError, match="bilinear, none"):
    inception.preprocess(jnp.asarray(x), resize="bicubic")
  v = np.asarray(vgg.preprocess(jnp.asarray(x), size=16))
  expect = (_bilinear_half_pixel(u[0, :, :, 0] / 255.0, 16) - 0.456) / 0.224
  np.testing.assert_allclose(v[0, :, :, 1], expect, atol=1e-5)


def test_weight_files_round_trip_and_missing_file_message(tmp_path):
  path = str(tmp_path / "missing.msgpack")
  with pytest.raises(features.WeightsMissing) as e:
    features.load_inception(path)
  msg = str(e.value)
  assert isinstance(e.value, ConfigError) and "\n" not in msg
  assert path in msg and "pt_inception-2015-12-05-6726825d.pth" in msg
  assert "github.com/mseitzer/pytorch-fid/releases" in msg and "scripts/convert_weights.py --inception" in msg
  with pytest.raises(features.WeightsMissing, match="vgg16-397923af.pth"):
    features.load_vgg16(path)
  good = str(tmp_path / "inc.msgpack")
  features.save_weights(good, features.random_inception_variables(TINY), {"kind": "inception", "width": TINY})
  with pytest.raises(ConfigError, match="not 'vgg16'"):
    features.load_vgg16(good)
  bad = str(tmp_path / "bad.msgpack")
  features.save_weights(bad, features.random_inception_variables(TINY), {"kind": "inception", "width": 0.25})
  with pytest.raises(ConfigError, match="do not fit the network"):
    features.load_inception(bad)


def test_streamed_extraction_equals_one_shot_and_direct_apply(tmp_path):
  path = str(tmp_path / "inc.msgpack")
  variables = features.random_inception_variables(TINY, seed=1)
  features.save_weights(path, variables, {"kind": "inception", "width": TINY, "note": "random weights (test)"})
  net = features.load_inception(path)
  assert net.protocol["note"] == "random weights (test)" and net.protocol["width"] == TINY
  x = np.random.default_rng(3).uniform(-1, 1, (11, 16, 16, 3)).astype(np.float32)
  whole = features.extract(net, x, batch_size=4, progress=False)          # 3 batches, the last padded
  assert whole["pool3"].shape == (11, 256) and whole["logits_unbiased"].shape == (11, 1008)
  stream = list(features.iter_features(net, [x[:2], x[2:9], x[9:]], batch_size=4, progress=False))
  assert [len(s["pool3"]) for s in stream] == [4, 4, 3]
  np.testing.assert_array_equal(np.concatenate([s["pool3"] for s in stream]), whole["pool3"])
  direct = jax.jit(lambda v, x: inception.InceptionV3(width=TINY).apply(v, inception.preprocess(x)))(variables, x)
  np.testing.assert_allclose(whole["pool3"], np.asarray(direct["pool3"]), rtol=1e-5, atol=1e-5)
  bias = np.asarray(variables["params"]["fc"]["bias"])
  np.testing.assert_allclose(np.asarray(direct["logits"]) - np.asarray(direct["logits_unbiased"]),
                             np.broadcast_to(bias, (11, 1008)), atol=1e-5)


_SHARDED = r"""
import json, sys
import jax, numpy as np
from jax.sharding import Mesh
sys.path.insert(0, ROOT)
from gan_jax.metrics import features
features.save_weights(PATH, features.random_inception_variables(0.125, seed=2), {"kind": "inception", "width": 0.125})
net = features.load_inception(PATH)
x = np.random.default_rng(5).uniform(-1, 1, (13, 16, 16, 1)).astype(np.float32)
out = {}
for n in (1, 4, 8):
  mesh = Mesh(np.array(jax.devices()[:n]), ("data",))
  out[n] = features.extract(net, [x[:5], x[5:]], mesh=mesh, batch_size=6, progress=False)
ref = out[1]
print(json.dumps({"devices": jax.device_count(),
                  "diff": {n: max(float(np.abs(o[k] - ref[k]).max() / np.abs(ref[k]).max()) for k in ref)
                           for n, o in out.items()},
                  "rows": {n: len(o["pool3"]) for n, o in out.items()}}))
"""


@pytest.mark.slow
def test_sharded_extraction_over_8_devices_equals_1_device(tmp_path):
  code = _SHARDED.replace("ROOT", repr(ROOT)).replace("PATH", repr(str(tmp_path / "w.msgpack")))
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.strip().splitlines()[-1])
  assert res["devices"] == 8 and set(res["rows"].values()) == {13}
  # Batch 6 is rounded up to 8 on 4 and 8 devices: other padding, same features.
  assert max(res["diff"].values()) < 1e-5, res


# ---- agreement with the PyTorch reference implementations (test-only dependency) ----

def _torch_reference():
  pytest.importorskip("torch", reason="torch is not installed: the PyTorch reference comparison needs it")
  pytest.importorskip("pytorch_fid", reason="pytorch-fid is not installed (pip install pytorch-fid --no-deps)")
  path = os.path.join(ROOT, "benchmarks", "torch_inception.py")
  spec = importlib.util.spec_from_file_location("torch_inception", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  try:
    module.import_torchvision_models()
  except ImportError as e:
    pytest.skip(f"torchvision's model code is not available: {e}")
  return module


def _rel(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.slow
def test_inception_and_vgg16_agree_with_pytorch_through_the_converter(tmp_path):
  ti = _torch_reference()
  import torch
  torch.set_num_threads(2)
  # Seeded random weights (BN statistics calibrated on random images) in pytorch-fid's layout.
  inc_sd = ti.random_fid_state_dict(seed=0)
  torch.save(inc_sd, tmp_path / "inception_random.pth")
  tv = ti.import_torchvision_models()
  torch.manual_seed(1)
  vgg_t = tv.vgg16(weights=None).eval()
  with torch.no_grad():
    for m in vgg_t.modules():
      if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
        m.bias.normal_(0.0, 0.05)
  torch.save(vgg_t.state_dict(), tmp_path / "vgg16_random.pth")
  r = run_script("convert_weights.py", "--inception", str(tmp_path / "inception_random.pth"),
                 "--vgg16", str(tmp_path / "vgg16_random.pth"), "--out_dir", str(tmp_path / "w"))
  assert r.returncode == 0, r.stderr[-3000:]

  u = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)   # uint8 images, as PNGs
  x_ours = jnp.asarray(u, jnp.float32) / 127.5 - 1.0
  x_torch = torch.from_numpy(u).permute(0, 3, 1, 2).float() / 255.0               # pytorch-fid's ToTensor

  # Inception: pytorch-fid's own module (resize to 299, 2x-1 inside), every stage via hooks.
  model = ti.build_fid_inception(inc_sd, output_blocks=(0, 1, 2, 3))
  stages, acts = ti.stage_modules(model), {}
  for name, m in stages.items():
    m.register_forward_hook(lambda mod, i, o, name=name: acts.__setitem__(name, o.permute(0, 2, 3, 1).numpy()))
  with torch.no_grad():
    blocks = model(x_torch)
  net = features.load_inception(str(tmp_path / "w" / features.WEIGHTS["inception"].file))
  ours = jax.jit(lambda v, x: net.module.apply(v, net.preprocess(x), intermediates=True))(net.variables, x_ours)
  errors = {name: _rel(np.asarray(ours[name]), acts[name]) for name in stages}
  for i, name in enumerate(("block0", "block1", "block2")):
    errors[name] = _rel(np.asarray(ours[name]), blocks[i].permute(0, 2, 3, 1).numpy())
  pool3 = blocks[3].reshape(2, -1).numpy()
  errors["pool3"] = _rel(np.asarray(ours["pool3"]), pool3)
  errors["logits_unbiased"] = _rel(np.asarray(ours["logits_unbiased"]), pool3 @ inc_sd["fc.weight"].numpy().T)
  print("inception relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
  assert max(errors.values()) < 1e-4, errors
  assert np.abs(pool3).max() > 1e-2                # non-degenerate activations

  # VGG-16: torchvision's module; input as torch does it (bilinear to 224, ImageNet mean/std).
  vnet = features.load_vgg16(str(tmp_path / "w" / features.WEIGHTS["vgg16"].file))
  with torch.no_grad():
    xt = torch.nn.functional.interpolate(x_torch, size=(224, 224), mode="bilinear", align_corners=False)
    xt = (xt - torch.tensor(vgg.IMAGENET_MEAN)[:, None, None]) / torch.tensor(vgg.IMAGENET_STD)[:, None, None]
    pools, h = [], xt
    for layer in vgg_t.features:
      h = layer(h)
      if isinstance(layer, torch.nn.MaxPool2d):
        pools.append(h.permute(0, 2, 3, 1).numpy())
    h = torch.flatten(vgg_t.avgpool(h), 1)
    fc1 = vgg_t.classifier[1](vgg_t.classifier[0](h))
    fc2 = vgg_t.classifier[4](vgg_t.classifier[3](fc1))
  vo = jax.jit(lambda v, x: vnet.module.apply(v, vnet.preprocess(x), intermediates=True))(vnet.variables, x_ours)
  verr = {f"pool{i + 1}": _rel(np.asarray(vo[f"pool{i + 1}"]), p) for i, p in enumerate(pools)}
  verr["fc1_relu"] = _rel(np.asarray(vo["fc1_relu"]), fc1.numpy())
  verr["fc2_relu"] = _rel(np.asarray(vo["fc2_relu"]), fc2.numpy())
  print("vgg16 relative errors:", {k: f"{v:.1e}" for k, v in verr.items()})
  assert max(verr.values()) < 1e-4, verr
  assert (fc2.numpy() > 0).mean() > 0.05           # the compared features are not all zero
