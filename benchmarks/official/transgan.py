"""TransGAN fixture from the official code (VITA-Group/TransGAN: models_search/ViT_custom_rp.py Generator,
models_search/ViT_custom_scale2_rp_noise.py Discriminator, arguments from cfg.parse_args).

Toy networks (bottom_width 4, img_size 16, gf_dim 64, g_depth 1,1,1, latent_dim 16, df_dim 32, d_depth 1,
patch_size 2, norms ln, GELU) with seeded random weights, saved as train_derived.py's save_checkpoint
writes them (`checkpoint`: a dict with gen_state_dict, dis_state_dict, avg_gen_state_dict, the optimizer
states, epoch, fixed_z, ...), and their outputs in eval mode: G(z) and the averaged G(z), D(x, aug=False).
D's attention noise strengths are zero (their initial value): both codes draw fresh noise in every call,
so a nonzero strength makes the output random; their names and shapes are still mapped. The generator's
`x.get_device()` (-1 on CPU) is answered with "cpu" while it runs, and torch._six (gone from torch 2) is
stubbed for ViT_helper's import. Also writes the full-size CIFAR-10
networks' names and shapes (exps/cifar_train.py's model flags).
"""
import os

import numpy as np

from benchmarks.official import _torch_toy as toy

URL = "https://github.com/VITA-Group/TransGAN"
TOY = ["--bottom_width", "4", "--img_size", "16", "--gf_dim", "64", "--g_depth", "1,1,1", "--latent_dim", "16",
       "--df_dim", "32", "--d_depth", "1", "--patch_size", "2", "--g_norm", "ln", "--d_norm", "ln",
       "--gen_model", "ViT_custom_rp", "--dis_model", "ViT_custom_scale2_rp_noise"]
FULL = ["--bottom_width", "8", "--img_size", "32", "--gf_dim", "1024", "--g_depth", "5,4,2", "--latent_dim", "256",
        "--df_dim", "384", "--d_depth", "3", "--patch_size", "2", "--gen_model", "ViT_custom_rp",
        "--dis_model", "ViT_custom_scale2_rp_noise"]


def _nets(args):
  from models_search import ViT_custom_rp, ViT_custom_scale2_rp_noise
  return ViT_custom_rp.Generator(args=args), ViT_custom_scale2_rp_noise.Discriminator(args=args)


def _torch_six() -> None:
  """models_search/ViT_helper.py imports torch._six.container_abcs (removed in torch 2): collections.abc."""
  import collections.abc
  import sys
  import types
  if "torch._six" not in sys.modules:
    six = types.ModuleType("torch._six")
    six.container_abcs = collections.abc
    sys.modules["torch._six"] = six


def make(repo_path: str, out_dir: str) -> None:
  import torch
  _torch_six()
  toy.add_to_path(repo_path)
  import cfg
  args = _parse(cfg, TOY)
  torch.manual_seed(0)
  os.makedirs(out_dir, exist_ok=True)
  g, d = _nets(args)
  avg, _ = _nets(args)
  for i, net in enumerate((g, d, avg)):
    toy.randomize(net, seed=400 + i)
    net.eval()
  with torch.no_grad():
    for name, p in d.named_parameters():
      if name.endswith("noise_strength_1"):
        p.zero_()
  g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.99))
  d_opt = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.0, 0.99))
  rng = np.random.default_rng(0)
  z = rng.standard_normal((2, 16)).astype(np.float32)
  x = rng.uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
  torch.save({"epoch": 1, "gen_model": args.gen_model, "dis_model": args.dis_model,
              "gen_state_dict": g.state_dict(), "dis_state_dict": d.state_dict(),
              "avg_gen_state_dict": avg.state_dict(), "gen_optimizer": g_opt.state_dict(),
              "dis_optimizer": d_opt.state_dict(), "best_fid": 1e4, "path_helper": {"prefix": "logs/toy"},
              "fixed_z": torch.from_numpy(z)}, os.path.join(out_dir, "checkpoint"))
  get_device = torch.Tensor.get_device
  torch.Tensor.get_device = lambda t: "cpu" if get_device(t) < 0 else get_device(t)
  try:
    with torch.no_grad():
      images = g(torch.from_numpy(z), 0).numpy()
      images_avg = avg(torch.from_numpy(z), 0).numpy()
      logits = d(torch.from_numpy(x), aug=False).numpy()[:, 0]
  finally:
    torch.Tensor.get_device = get_device
  nhwc = lambda a: np.transpose(a, (0, 2, 3, 1))  # noqa: E731
  toy.save_npz(out_dir, "inputs.npz", {"z": z, "x": nhwc(x)})
  toy.save_npz(out_dir, "outputs.npz", {"G": nhwc(images), "G_avg": nhwc(images_avg), "D": logits})
  toy.write_manifest(out_dir, {
      "model": "transgan", "format": "transgan", "official": {"repo": URL, "commit": toy.commit_of(repo_path),
                                                              "file": "models_search/ViT_custom_rp.py, "
                                                                      "models_search/ViT_custom_scale2_rp_noise.py"},
      "toy": {"args": " ".join(TOY), "mode": "eval", "d_noise_strength": 0.0,
              "weights": "seeded N(0, 0.1²), every parameter and buffer but D's noise strengths (0)"},
      "import_path": "checkpoint", "files": ["checkpoint"],
      "config": {"experiment": "experiments/transgan_cifar10.py",
                 "overrides": {"model.bottom_width": 4, "model.g_embed_dim": 64, "model.g_depths": "1,1,1",
                               "model.z_dim": 16, "model.d_embed_dim": 32, "model.d_depth": 1, "model.patch_size": 2,
                               "model.g_tanh": False, "data.resolution": 16}},
      "inputs": "inputs.npz", "outputs_file": "outputs.npz",
      "outputs": [
          {"name": "G", "net": "generator", "params": "g_params", "inputs": ["z"], "official": "gen_net(z, epoch)"},
          {"name": "G_avg", "net": "generator", "params": "ema_params", "inputs": ["z"],
           "official": "avg_gen_net(z, epoch) (avg_gen_state_dict)"},
          {"name": "D", "net": "discriminator", "params": "d_params", "inputs": ["x"],
           "official": "dis_net(x, aug=False)"}],
      "tolerance": 1e-5})
  g, d = _nets(_parse(cfg, FULL))
  toy.shapes_json(os.path.join(out_dir, "full_shapes.json"), {"G": g.state_dict(), "D": d.state_dict()})


def _parse(cfg, argv):
  import sys
  saved, sys.argv = sys.argv, ["train.py", *argv]
  try:
    return cfg.parse_args()
  finally:
    sys.argv = saved
