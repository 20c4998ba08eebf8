"""BigGAN fixture from the official code (ajbrock/BigGAN-PyTorch, BigGAN.py and layers.py).

Toy networks of the ImageNet 128x128 structure (launch_BigGAN_bs256x8.sh: --shared --hier, SN_eps 1e-6,
BN_eps 1e-5) at G_ch = D_ch = 4, dim_z 12 (6 chunks of 2), shared_dim 8, 5 classes, attention at 32 in G
and D, with seeded random weights (every parameter and buffer: u vectors, sv logs, stored BN statistics),
saved as utils.save_weights writes them (G.pth, D.pth, G_ema.pth: each net.state_dict()); outputs in
eval mode, as sample.py runs them with --G_eval_mode: G(z, G.shared(y)), G_ema likewise, D(x, y).
Also writes the full-size ImageNet 128 (G_ch = D_ch = 96, dim_z 120, shared_dim 128) names and shapes.
"""
import os

import numpy as np

from benchmarks.official import _torch_toy as toy

URL = "https://github.com/ajbrock/BigGAN-PyTorch"
TOY = {"resolution": 128, "G_ch": 4, "D_ch": 4, "dim_z": 12, "shared_dim": 8, "n_classes": 5,
       "G_attn": "32", "D_attn": "32", "hier": True, "G_shared": True, "SN_eps": 1e-6, "BN_eps": 1e-5}
FULL = {"resolution": 128, "G_ch": 96, "D_ch": 96, "dim_z": 120, "shared_dim": 128, "n_classes": 1000,
        "G_attn": "64", "D_attn": "64", "hier": True, "G_shared": True, "SN_eps": 1e-6, "BN_eps": 1e-5}


def _nets(model, s: dict):
  g = [model.Generator(**s, skip_init=True, no_optim=True) for _ in range(2)]
  d = model.Discriminator(**s, skip_init=True)
  return g[0], d, g[1]


def make(repo_path: str, out_dir: str) -> None:
  import torch
  toy.add_to_path(repo_path)
  import BigGAN as model
  torch.manual_seed(0)
  os.makedirs(out_dir, exist_ok=True)
  g, d, g_ema = _nets(model, TOY)
  for i, (name, net) in enumerate((("G", g), ("D", d), ("G_ema", g_ema))):
    toy.randomize(net, seed=200 + i)
    net.eval()
    torch.save(net.state_dict(), os.path.join(out_dir, f"{name}.pth"))
  rng = np.random.default_rng(0)
  n = 2
  z = rng.standard_normal((n, TOY["dim_z"])).astype(np.float32)
  y = np.array([0, 4], np.int64)
  x = rng.uniform(-1, 1, (n, 3, 128, 128)).astype(np.float32)
  with torch.no_grad():
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    images = g(zt, g.shared(yt)).numpy()
    images_ema = g_ema(zt, g_ema.shared(yt)).numpy()
    logits = d(torch.from_numpy(x), yt).numpy()[:, 0]
  nhwc = lambda a: np.transpose(a, (0, 2, 3, 1))  # noqa: E731
  toy.save_npz(out_dir, "inputs.npz", {"z": z, "y": y.astype(np.int32), "x": nhwc(x)})
  toy.save_npz(out_dir, "outputs.npz", {"G": nhwc(images), "G_ema": nhwc(images_ema), "D": logits})
  toy.write_manifest(out_dir, {
      "model": "biggan", "format": "biggan-pytorch",
      "official": {"repo": URL, "commit": toy.commit_of(repo_path), "file": "BigGAN.py, layers.py"},
      "toy": {**TOY, "weights": "seeded N(0, 0.1²), every parameter and buffer (variances |N(1, 0.1²)| + 0.2)",
              "mode": "eval"},
      "import_path": ".", "files": ["G.pth", "D.pth", "G_ema.pth"],
      "config": {"experiment": "experiments/biggan_imagenet128.py",
                 "overrides": {"model.g_width": 4, "model.d_width": 4, "model.z_dim": 12, "model.shared_dim": 8,
                               "model.attention": 32, "model.conditional": True},
                 "data": {"resolution": 128, "channels": 3, "num_classes": 5}},
      "inputs": "inputs.npz", "outputs_file": "outputs.npz",
      "outputs": [
          {"name": "G", "net": "generator", "params": "g_params", "inputs": ["z", "y"], "import_path": "G.pth",
           "official": "G(z, G.shared(y)), with G's own BN statistics and u vectors (G.pth imported alone: our state "
                       "has one set of G buffers, which the directory import takes from G_ema.pth)"},
          {"name": "G_ema", "net": "generator", "params": "ema_params", "inputs": ["z", "y"],
           "official": "G_ema(z, G_ema.shared(y))"},
          {"name": "D", "net": "discriminator", "params": "d_params", "inputs": ["x", "y"], "official": "D(x, y)"}],
      "tolerance": 1e-5})
  g, d, _ = _nets(model, FULL)
  toy.shapes_json(os.path.join(out_dir, "full_shapes.json"), {"G": g.state_dict(), "D": d.state_dict()})
