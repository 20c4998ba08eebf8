"""R3GAN fixture from the official code (brownvc/R3GAN: R3GAN/Networks.py wrapped by training/networks.py),
imported from the checkout at run time.

Toy networks as experiments/r3gan_cifar10.py:runlocal shapes them (16x16x3, widths 32 at 4x4, 8x8 and
16x16, 2 blocks per stage, cardinality 4, expansion 2, 64-d noise, conditional on 10 classes with
the train.py embedding dimensions: G 64, D widths[0]), no bfloat16 stages (FP16Stages []), with seeded
random weights (official initialization under a fixed torch seed, then every parameter +
N(0, 0.1²): the zero-initialized last convolution of every block and the biases matter too). Saved as
the official training loop saves a snapshot (`pickle.dump(dict(G, D, G_ema, training_set_kwargs,
cur_nimg, G_opt_state, D_opt_state))`; R3GAN's pickles name their classes by module path and carry
no source code), with the outputs of G, G_ema and D on fixed inputs (NHWC). Also the full-size
names and shapes of the CIFAR10 (conditional) and FFHQ-64 presets: `full_shapes.json`.
"""
import copy
import os
import pickle

import numpy as np

from benchmarks.official import _torch_toy as toy
from benchmarks.official.stylegan import _nhwc, _pkg_resources_shim, _seed_random

URL = "https://github.com/brownvc/R3GAN"
BATCH = 4
# train.py presets (WidthPerStage from 4x4 up, CardinalityPerStage, conditional as the README's commands).
FULL = {"cifar10": dict(widths=[768] * 4, cards=[96] * 4, c_dim=10, res=32),
        "ffhq64": dict(widths=[768, 768, 768, 768, 384], cards=[96, 96, 96, 96, 48], c_dim=0, res=64)}


def _networks(module, widths, cards, c_dim, res):
  kw = dict(CardinalityPerStage=cards, BlocksPerStage=[2] * len(widths), ExpansionFactor=2, FP16Stages=[],
            c_dim=c_dim, img_resolution=res)
  g_extra = dict(ConditionEmbeddingDimension=64) if c_dim else {}
  d_extra = dict(ConditionEmbeddingDimension=widths[0]) if c_dim else {}
  G = module.Generator(NoiseDimension=64, WidthPerStage=widths, **kw, **g_extra)
  D = module.Discriminator(WidthPerStage=widths[::-1], **{**kw, "CardinalityPerStage": cards[::-1],
                                                          "BlocksPerStage": [2] * len(widths)}, **d_extra)
  return G, D


def make(repo_path: str, out_dir: str) -> None:
  import torch
  toy.add_to_path(repo_path)
  _pkg_resources_shim()
  from training import networks
  os.makedirs(out_dir, exist_ok=True)
  torch.manual_seed(0)
  G, D = _networks(networks, [32, 32, 32], [4, 4, 4], 10, 16)
  _seed_random(G, 100)
  G_ema = copy.deepcopy(G)
  _seed_random(G_ema, 101)
  _seed_random(D, 102)
  G, G_ema, D = (n.eval().requires_grad_(False) for n in (G, G_ema, D))
  snapshot = dict(G=G, D=D, G_ema=G_ema, cur_nimg=0,
                  training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="toy",
                                           use_labels=True, max_size=1797, xflip=False, resolution=16),
                  G_opt_state=torch.optim.Adam(G.parameters()).state_dict(),
                  D_opt_state=torch.optim.Adam(D.parameters()).state_dict())
  with open(os.path.join(out_dir, "network-snapshot.pkl"), "wb") as f:
    pickle.dump(snapshot, f)

  rng = np.random.default_rng(1)
  z = rng.standard_normal((BATCH, 64)).astype(np.float32)
  y = (np.arange(BATCH) * 3 % 10).astype(np.int32)
  images = rng.uniform(-1, 1, (BATCH, 16, 16, 3)).astype(np.float32)
  c = torch.nn.functional.one_hot(torch.from_numpy(y).long(), 10).float()
  x = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))
  with torch.no_grad():
    outputs = {"img_ema": G_ema(torch.from_numpy(z), c), "img_g": G(torch.from_numpy(z), c), "d_logits": D(x, c)}
  toy.save_npz(out_dir, "inputs.npz", {"z": z, "y": y, "images": images})
  toy.save_npz(out_dir, "outputs.npz", {k: _nhwc(v) for k, v in outputs.items()})
  full = {}
  for name, p in FULL.items():
    g, d = _networks(networks, p["widths"], p["cards"], p["c_dim"], p["res"])
    full[f"{name}/G"], full[f"{name}/D"] = g.state_dict(), d.state_dict()
  toy.shapes_json(os.path.join(out_dir, "full_shapes.json"), full)
  toy.write_manifest(out_dir, {
      "model": "r3gan", "format": "r3gan", "files": ["network-snapshot.pkl"], "inputs": "inputs.npz",
      "outputs_file": "outputs.npz", "tolerance": 1e-5, "layout": "NHWC images and outputs",
      "outputs": [
          {"name": "img_ema", "net": "G", "weights": "ema_params", "inputs": ["z", "y"], "official": "G_ema(z, c)"},
          {"name": "img_g", "net": "G", "weights": "g_params", "inputs": ["z", "y"], "official": "G(z, c)"},
          {"name": "d_logits", "net": "D", "weights": "d_params", "inputs": ["images", "y"], "official": "D(img, c)"},
      ],
      "official": {"repo": URL, "commit": toy.commit_of(repo_path)},
      "config": {"experiment": "experiments/r3gan_cifar10.py:runlocal", "overrides": {"data.channels": 3}},
      "toy": {"WidthPerStage": [32, 32, 32], "CardinalityPerStage": [4, 4, 4], "BlocksPerStage": [2, 2, 2],
              "ExpansionFactor": 2, "NoiseDimension": 64, "c_dim": 10, "img_resolution": 16, "FP16Stages": [],
              "weights": "official init under torch.manual_seed(0), every parameter + N(0, 0.1²)"},
      "full_shapes": {"file": "full_shapes.json", "configs": {
          "cifar10": {"experiment": "experiments/r3gan_cifar10.py", "num_classes": 10},
          "ffhq64": {"experiment": "experiments/r3gan_ffhq64.py"}}},
  })
