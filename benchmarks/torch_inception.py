"""PyTorch reference for the FID Inception: pytorch-fid's own `InceptionV3` module, for timing and
for the tests that compare gan_jax/metrics/inception.py with it.

Run:  python benchmarks/torch_inception.py [--batch 50 --steps 5 --warmup 2 --threads N --size 32]
prints one JSON line (images/s of pytorch-fid's forward: resize of size² inputs to 299,
scaling, pool3) on stdout. Random weights (the forward costs the same; the real file cannot be
downloaded here). Needs torch, pytorch-fid (`pip install pytorch-fid --no-deps`) and
torchvision's Python model code: where torchvision's compiled extension does not load against
the installed torch (a CUDA torchvision wheel next to a CPU torch), its pure-Python model
modules are imported without the package's __init__, which is all pytorch-fid uses. Never a
dependency of gan_jax.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import types


def import_torchvision_models():
  """torchvision.models, also where torchvision's C extension cannot load (see the docstring)."""
  try:
    import torchvision.models
    return torchvision.models
  except (ImportError, RuntimeError, OSError):
    pass
  spec = importlib.util.find_spec("torchvision")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError("torchvision is not installed")
  for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
    del sys.modules[name]
  package = types.ModuleType("torchvision")
  package.__path__ = list(spec.submodule_search_locations)
  package.__version__ = _installed_version("torchvision")
  sys.modules["torchvision"] = package
  package.models = importlib.import_module("torchvision.models")
  return package.models


def _installed_version(dist: str) -> str:
  from importlib.metadata import version
  return version(dist).split("+")[0]


def pytorch_fid_module():
  """pytorch_fid.inception, importable with or without a loadable torchvision extension."""
  import_torchvision_models()
  return importlib.import_module("pytorch_fid.inception")


def build_fid_inception(state_dict=None, output_blocks=(3,)):
  """pytorch-fid's InceptionV3 (its own constructor, fid_inception_v3 and FIDInception* blocks)
  loading `state_dict` instead of downloading the release file; with None, the random
  initialization of its network is kept (its own state_dict is loaded back)."""
  import torch
  pi = pytorch_fid_module()
  original = pi.load_state_dict_from_url

  def fake_download(url, progress=True, **kwargs):
    if state_dict is not None:
      return state_dict
    net = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in (("Mixed_5b", pi.FIDInceptionA(192, 32)), ("Mixed_5c", pi.FIDInceptionA(256, 64)),
                        ("Mixed_5d", pi.FIDInceptionA(288, 64)), ("Mixed_6b", pi.FIDInceptionC(768, 128)),
                        ("Mixed_6c", pi.FIDInceptionC(768, 160)), ("Mixed_6d", pi.FIDInceptionC(768, 160)),
                        ("Mixed_6e", pi.FIDInceptionC(768, 192)), ("Mixed_7b", pi.FIDInceptionE_1(1280)),
                        ("Mixed_7c", pi.FIDInceptionE_2(2048))):
      setattr(net, name, block)
    return net.state_dict()

  pi.load_state_dict_from_url = fake_download
  try:
    model = pi.InceptionV3(output_blocks=list(output_blocks))
  finally:
    pi.load_state_dict_from_url = original
  return model.eval().to(torch.float32)


# The modules of pytorch-fid's InceptionV3.blocks in order (None: its pooling layers).
STAGES = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None, "Conv2d_3b_1x1", "Conv2d_4a_3x3", None,
          "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
          "Mixed_7a", "Mixed_7b", "Mixed_7c", None]


def stage_modules(model) -> dict:
  """{torchvision name (Conv2d_1a_3x3, Mixed_5b, ...): module} of a pytorch-fid InceptionV3 built
  with all four output blocks."""
  modules = [m for block in model.blocks for m in block]
  if len(modules) != len(STAGES):
    raise ValueError("build the model with output_blocks=(0, 1, 2, 3) to reach every stage")
  return {name: m for name, m in zip(STAGES, modules) if name is not None}


def random_fid_state_dict(seed: int = 0, calibration_images: int = 2):
  """A seeded random state_dict of the FID Inception (pt_inception layout, fc included) whose
  BatchNorm statistics are those of random images, so every layer's activations are O(1):
  BN scales ~ U(0.5, 1.5), shifts ~ N(0, 0.1), fc ~ N(0, 0.01)."""
  import torch
  torch.manual_seed(seed)
  model = build_fid_inception(output_blocks=(0, 1, 2, 3))
  bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  with torch.no_grad():
    for bn in bns:
      bn.weight.uniform_(0.5, 1.5)
      bn.bias.normal_(0.0, 0.1)
      bn.reset_running_stats()
      bn.momentum = None          # cumulative average: the statistics of the calibration batch
    model.train()
    model(torch.rand(calibration_images, 3, 299, 299))
    model.eval()
  # model.blocks hold the modules of torchvision's Inception3 minus fc: rebuild the full layout.
  full = {}
  for name, module in stage_modules(model).items():
    full.update({f"{name}.{k}": v.clone() for k, v in module.state_dict().items()})
  g = torch.Generator().manual_seed(seed + 1)
  full["fc.weight"] = torch.randn(1008, 2048, generator=g) * 0.01
  full["fc.bias"] = torch.randn(1008, generator=g) * 0.01
  return full


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--batch", type=int, default=50)
  ap.add_argument("--size", type=int, default=32, help="input images are size x size, resized to 299 inside")
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
  args = ap.parse_args()
  import torch
  if args.threads:
    torch.set_num_threads(args.threads)
  model = build_fid_inception()
  x = torch.rand(args.batch, 3, args.size, args.size)
  with torch.inference_mode():
    for _ in range(args.warmup):
      model(x)
    t0 = time.perf_counter()
    for _ in range(args.steps):
      model(x)
    dt = time.perf_counter() - t0
  print(json.dumps({"impl": "torch", "network": "pytorch_fid.InceptionV3 (pool3)", "batch": args.batch,
                    "image_shape": [args.size, args.size, 3], "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "images_per_s": args.batch * args.steps / dt,
                    "load_avg_1m": os.getloadavg()[0]}))


if __name__ == "__main__":
  main()
