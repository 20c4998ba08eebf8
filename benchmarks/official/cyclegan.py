"""CycleGAN fixture from the official code (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py).

Toy networks (ngf = ndf = 4, resnet_6blocks, basic D, norm 'instance', 3 channels, 32x32) with seeded random
weights, saved as the official training script saves them (`latest_net_{G_A,G_B,D_A,D_B}.pth`, each
net.state_dict()), and their outputs on fixed images. The networks run as the official test.py runs them
(without .eval(), no --eval flag): InstanceNorm normalizes by each image's own statistics; with its
track_running_stats buffers (present at this commit, dropped by later versions' loader) left unused.
Also writes the full-size (resnet_9blocks, basic D, ngf = ndf = 64) names and shapes.
"""
import importlib.util
import os

import numpy as np

from benchmarks.official import _torch_toy as toy

URL = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
NETS = ("G_A", "G_B", "D_A", "D_B")


def _networks(repo_path: str):
  """models/networks.py alone (the package __init__ imports the whole training code)."""
  spec = importlib.util.spec_from_file_location("cyclegan_networks", os.path.join(repo_path, "models", "networks.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _build(net, ngf: int, ndf: int, which_g: str):
  g = [net.define_G(3, 3, ngf, which_g, norm="instance") for _ in range(2)]
  d = [net.define_D(3, ndf, "basic", norm="instance") for _ in range(2)]
  return dict(zip(NETS, g + d))


def make(repo_path: str, out_dir: str) -> None:
  import torch
  torch.manual_seed(0)
  net = _networks(repo_path)
  os.makedirs(out_dir, exist_ok=True)
  nets = _build(net, 4, 4, "resnet_6blocks")
  for i, name in enumerate(NETS):
    toy.randomize(nets[name], seed=100 + i)
    torch.save(nets[name].state_dict(), os.path.join(out_dir, f"latest_net_{name}.pth"))
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
  b = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
  with torch.no_grad():   # train mode as test.py; the forward only touches the unused running buffers
    out = {"G_A": nets["G_A"](torch.from_numpy(a)), "G_B": nets["G_B"](torch.from_numpy(b)),
           "D_A": nets["D_A"](torch.from_numpy(b)), "D_B": nets["D_B"](torch.from_numpy(a))}
  nhwc = lambda x: np.transpose(x, (0, 2, 3, 1))  # noqa: E731
  toy.save_npz(out_dir, "inputs.npz", {"real_A": nhwc(a), "real_B": nhwc(b)})
  toy.save_npz(out_dir, "outputs.npz", {"fake_B": nhwc(out["G_A"].numpy()), "fake_A": nhwc(out["G_B"].numpy()),
                                        "D_A_real_B": out["D_A"].numpy()[:, 0], "D_B_real_A": out["D_B"].numpy()[:, 0]})
  toy.write_manifest(out_dir, {
      "model": "cyclegan", "format": "cyclegan", "official": {"repo": URL, "commit": toy.commit_of(repo_path),
                                                              "file": "models/networks.py"},
      "toy": {"ngf": 4, "ndf": 4, "netG": "resnet_6blocks", "netD": "basic", "norm": "instance",
              "resolution": 32, "channels": 3, "weights": "seeded N(0, 0.1²), every parameter and buffer"},
      "import_path": ".", "files": [f"latest_net_{n}.pth" for n in NETS],
      "config": {"experiment": "experiments/cyclegan_horse2zebra.py:runlocal",
                 "overrides": {"model.g_width": 4, "model.d_width": 4, "model.g_blocks": 6}},
      "inputs": "inputs.npz", "outputs_file": "outputs.npz",
      "outputs": [
          {"name": "fake_B", "net": "generator", "params": "g_params", "key": "g_ab", "inputs": ["real_A"],
           "official": "netG_A(real_A)"},
          {"name": "fake_A", "net": "generator", "params": "g_params", "key": "g_ba", "inputs": ["real_B"],
           "official": "netG_B(real_B)"},
          {"name": "D_A_real_B", "net": "discriminator", "params": "d_params", "key": "d_b", "inputs": ["real_B"],
           "official": "netD_A(real_B) (D_A judges domain B)"},
          {"name": "D_B_real_A", "net": "discriminator", "params": "d_params", "key": "d_a", "inputs": ["real_A"],
           "official": "netD_B(real_A) (D_B judges domain A)"}],
      "tolerance": 1e-5})
  full = _build(net, 64, 64, "resnet_9blocks")
  toy.shapes_json(os.path.join(out_dir, "full_shapes.json"), {n: full[n].state_dict() for n in ("G_A", "D_A")})
