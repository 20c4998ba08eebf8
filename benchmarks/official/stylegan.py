"""StyleGAN2-ADA and StyleGAN3 (T, R) fixtures from the official code (NVlabs/stylegan2-ada-pytorch,
NVlabs/stylegan3), imported from the checkout at run time.

Toy networks with seeded random weights (default initialization under a fixed torch seed, then every
parameter + N(0, 0.1²), so biases, noise strengths and affine offsets all matter; W averages and
magnitude EMAs randomized likewise), saved as the official training loop saves a snapshot
(`pickle.dump(dict(training_set_kwargs, G, D, G_ema, augment_pipe=None))`) with the persistence
layer's embedded module source removed (`module_src` is None in every object's metadata), and the
outputs of the networks on fixed inputs: mapping (ws, and truncated ws), G_ema with noise_mode
'const', G with noise_mode 'none', D on fixed images. Outputs and images are stored NHWC.
Also the official full-size networks' tensor names and shapes (no weights): `full_shapes.json`.
"""
import os
import pickle

import numpy as np

from benchmarks.official import _torch_toy as toy

URLS = {"stylegan2-ada": "https://github.com/NVlabs/stylegan2-ada-pytorch",
        "stylegan3": "https://github.com/NVlabs/stylegan3"}
BATCH = 4


def _seed_random(module, seed: int, buffers: bool = True) -> None:
  """Every parameter + N(0, 0.1²); w_avg ~ N(0, 0.1²); magnitude_ema ~ 1 + |N(0, 0.3²)|; filters and
  Fourier frequencies/phases as the official code drew or designed them."""
  import torch
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for _, p in module.named_parameters():
      p.add_(torch.randn(p.shape, generator=g) * 0.1)
    for name, b in module.named_buffers() if buffers else ():
      if name.endswith("w_avg"):
        b.copy_(torch.randn(b.shape, generator=g) * 0.1)
      elif name.endswith("magnitude_ema"):
        b.copy_(1 + torch.randn(b.shape, generator=g).abs() * 0.3)


def _strip_sources() -> None:
  """The persistence layer pickles each class's module source; the fixture must not contain it."""
  from torch_utils import persistence
  for cls in persistence._decorators:
    cls._orig_module_src = None


def _toy_networks(make_g, make_d):
  """(G, G_ema, D) in eval mode: official initialization under fixed seeds, then `_seed_random`."""
  import torch
  torch.manual_seed(0)
  G = make_g()
  _seed_random(G, 100)
  G_ema = _ema_copy(G, 101)
  torch.manual_seed(2)
  D = make_d()
  _seed_random(D, 102)
  return tuple(net.eval().requires_grad_(False) for net in (G, G_ema, D))


def _ema_copy(G, seed: int):
  """G_ema as a snapshot holds it: a copy of G (the training loop copies G's buffers into it every step)
  whose parameters differ."""
  import copy
  G_ema = copy.deepcopy(G)
  _seed_random(G_ema, seed, buffers=False)
  return G_ema


def _nhwc(t) -> np.ndarray:
  a = t.detach().cpu().numpy()
  return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def _save_snapshot(out_dir: str, name: str, G, D, G_ema, resolution: int, use_labels: bool) -> None:
  _strip_sources()
  snapshot = dict(training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="toy",
                                           use_labels=use_labels, max_size=1797, xflip=False, resolution=resolution),
                  G=G, D=D, G_ema=G_ema, augment_pipe=None)
  with open(os.path.join(out_dir, name), "wb") as f:
    pickle.dump(snapshot, f)
  with open(os.path.join(out_dir, name), "rb") as f:
    assert b"import torch" not in f.read(), "module source left in the pickle"


def _run(G, D, G_ema, z_dim: int, c_dim: int, resolution: int, channels: int, seed: int):
  """Inputs (z, labels y, images NHWC) and outputs of the official networks (eval mode)."""
  import torch
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((BATCH, z_dim)).astype(np.float32)
  y = (np.arange(BATCH) * 3 % max(c_dim, 1)).astype(np.int32)
  images = rng.uniform(-1, 1, (BATCH, resolution, resolution, channels)).astype(np.float32)
  zt = torch.from_numpy(z)
  ct = torch.nn.functional.one_hot(torch.from_numpy(y).long(), c_dim).float() if c_dim else None
  xt = torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))
  with torch.no_grad():
    out = {
        "ws": G_ema.mapping(zt, ct),
        "ws_psi": G_ema.mapping(zt, ct, truncation_psi=0.7),
        "img_ema_const": G_ema(zt, ct, noise_mode="const"),
        "img_g_none": G(zt, ct, noise_mode="none"),
        "d_logits": D(xt, ct)[:, 0],
    }
  return {"z": z, "y": y, "images": images}, {k: _nhwc(v) for k, v in out.items()}


OUTPUTS = [
    {"name": "ws", "net": "G.mapping", "weights": "ema_params", "inputs": ["z", "y"],
     "official": "G_ema.mapping(z, c)"},
    {"name": "ws_psi", "net": "G.mapping", "weights": "ema_params", "inputs": ["z", "y"],
     "kwargs": {"truncation_psi": 0.7}, "official": "G_ema.mapping(z, c, truncation_psi=0.7)"},
    {"name": "img_ema_const", "net": "G", "weights": "ema_params", "inputs": ["z", "y"], "noise": "const",
     "official": "G_ema(z, c, noise_mode='const')"},
    {"name": "img_g_none", "net": "G", "weights": "g_params", "inputs": ["z", "y"], "noise": "none",
     "official": "G(z, c, noise_mode='none')"},
    {"name": "d_logits", "net": "D", "weights": "d_params", "inputs": ["images", "y"], "official": "D(img, c)"},
]


def _finish(out_dir, repo_path, fmt, model, toy_settings, experiment, overrides, G, D, G_ema, full_shapes,
            full_configs):
  c_dim, res, ch = toy_settings["c_dim"], toy_settings["img_resolution"], toy_settings["img_channels"]
  _save_snapshot(out_dir, "network-snapshot.pkl", G, D, G_ema, res, c_dim > 0)
  inputs, outputs = _run(G, D, G_ema, toy_settings["z_dim"], c_dim, res, ch, seed=1)
  toy.save_npz(out_dir, "inputs.npz", inputs)
  toy.save_npz(out_dir, "outputs.npz", outputs)
  toy.shapes_json(os.path.join(out_dir, "full_shapes.json"), full_shapes)
  toy.write_manifest(out_dir, {
      "model": model, "format": fmt, "files": ["network-snapshot.pkl"], "inputs": "inputs.npz",
      "outputs_file": "outputs.npz",
      "outputs": [o if fmt == "stylegan2-ada" else {k: v for k, v in o.items() if k != "noise"} for o in OUTPUTS],
      "tolerance": 1e-5, "layout": "NHWC images and outputs",
      "official": {"repo": URLS[fmt], "commit": toy.commit_of(repo_path)},
      "config": {"experiment": experiment, "overrides": overrides},
      "toy": {**toy_settings, "weights": "official init under torch.manual_seed(0), every parameter + N(0, 0.1²); "
              "w_avg ~ N(0, 0.1²), magnitude_ema ~ 1 + |N(0, 0.3²)|"},
      "full_shapes": {"file": "full_shapes.json", "configs": full_configs},
  })


def stylegan2_ada(repo_path: str, out_dir: str) -> None:
  """Toy: 16x16x1 digits-shaped, 10 classes, z = w = 32, 2 mapping layers, channel_base 256, max 32."""
  toy.add_to_path(repo_path)
  from training import networks
  os.makedirs(out_dir, exist_ok=True)
  s = dict(z_dim=32, w_dim=32, c_dim=10, img_resolution=16, img_channels=1, mapping_layers=2, channel_base=256,
           channel_max=32, conv_clamp=256, mbstd_group_size=4)

  G, G_ema, D = _toy_networks(
      lambda: networks.Generator(z_dim=32, c_dim=10, w_dim=32, img_resolution=16, img_channels=1,
                                 mapping_kwargs=dict(num_layers=2),
                                 synthesis_kwargs=dict(channel_base=256, channel_max=32, num_fp16_res=0,
                                                       conv_clamp=256)),
      lambda: networks.Discriminator(c_dim=10, img_resolution=16, img_channels=1, channel_base=256, channel_max=32,
                                     num_fp16_res=0, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4)))
  overrides = {"model.conditional": True, "model.z_dim": 32, "model.w_dim": 32, "model.mapping_layers": 2,
               "model.channel_base": 256, "model.channel_max": 32}
  _finish(out_dir, repo_path, "stylegan2-ada", "stylegan2_ada", s, "experiments/stylegan2_ffhq256.py:runlocal",
          overrides, G, D, G_ema, _stylegan2_full(networks), {
              "ffhq1024": {"experiment": "experiments/stylegan2_ffhq256.py:cfg=stylegan2,resolution=1024"},
              "cifar10": {"experiment": "experiments/stylegan2_ffhq256.py:cfg=stylegan2,resolution=32",
                          "overrides": {"model.conditional": True, "model.mapping_layers": 2,
                                        "model.d_architecture": "orig", "model.mbstd_group_size": 32},
                          "num_classes": 10}})


def _stylegan2_full(networks) -> dict:
  """Published configurations (train.py cfg_specs): FFHQ 1024 config F (cfg stylegan2: fmaps 1, map 8) and
  CIFAR-10 conditional (cfg cifar: fmaps 1, map 2, 32x32, 10 classes, D architecture 'orig')."""
  out = {}
  for name, kw, dkw in (("ffhq1024", dict(c_dim=0, img_resolution=1024, map=8), dict(architecture="resnet", mbstd=4)),
                          ("cifar10", dict(c_dim=10, img_resolution=32, map=2), dict(architecture="orig", mbstd=32))):
    G = networks.Generator(z_dim=512, c_dim=kw["c_dim"], w_dim=512, img_resolution=kw["img_resolution"],
                           img_channels=3, mapping_kwargs=dict(num_layers=kw["map"]),
                           synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256))
    D = networks.Discriminator(c_dim=kw["c_dim"], img_resolution=kw["img_resolution"], img_channels=3,
                               channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
                               architecture=dkw["architecture"], epilogue_kwargs=dict(mbstd_group_size=dkw["mbstd"]))
    out[f"{name}/G"], out[f"{name}/D"] = G.state_dict(), D.state_dict()
  return out


def _pkg_resources_shim() -> None:
  """stylegan3's conv2d_gradfix imports pkg_resources.parse_version, gone from recent setuptools."""
  import sys
  import types
  try:
    import pkg_resources  # noqa: F401
  except ImportError:
    from packaging.version import parse
    sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)


def _stylegan3(repo_path: str, out_dir: str, cfg: str) -> None:
  """Toy (cfg T as experiments/stylegan3_ffhqu256.py:runlocal): 16x16x1, 10 classes, z = w = 32, 4 layers,
  margin 4, G channel_base 256, max 32 (R: 512, 64, 1x1 convolutions, radial filters); D 512 / 64."""
  toy.add_to_path(repo_path)
  _pkg_resources_shim()
  from training import networks_stylegan2, networks_stylegan3
  os.makedirs(out_dir, exist_ok=True)
  r = cfg == "r"
  s = dict(z_dim=32, w_dim=32, c_dim=10, img_resolution=16, img_channels=1, mapping_layers=2,
           channel_base=512 if r else 256, channel_max=64 if r else 32, num_layers=4, margin_size=4,
           conv_kernel=1 if r else 3, use_radial_filters=r, magnitude_ema_beta=0.5 ** (32 / 20_000),
           d_channel_base=512, d_channel_max=64, conv_clamp=256, mbstd_group_size=4)

  G, G_ema, D = _toy_networks(
      lambda: networks_stylegan3.Generator(
          z_dim=32, c_dim=10, w_dim=32, img_resolution=16, img_channels=1, mapping_kwargs=dict(num_layers=2),
          channel_base=s["channel_base"], channel_max=s["channel_max"], num_layers=4, margin_size=4, num_fp16_res=0,
          conv_clamp=256, conv_kernel=s["conv_kernel"], use_radial_filters=r,
          magnitude_ema_beta=s["magnitude_ema_beta"]),
      lambda: networks_stylegan2.Discriminator(c_dim=10, img_resolution=16, img_channels=1, channel_base=512,
                                               channel_max=64, num_fp16_res=0, conv_clamp=256,
                                               epilogue_kwargs=dict(mbstd_group_size=4)))
  overrides = {"model.conditional": True}
  if r:
    overrides.update({"model.channel_base": 512, "model.channel_max": 64, "model.conv_kernel": 1,
                      "model.use_radial_filters": True})
  experiment = "experiments/stylegan3_ffhqu256.py:runlocal" + (",cfg=stylegan3-r" if r else "")
  _finish(out_dir, repo_path, "stylegan3", f"stylegan3_{cfg}", s, experiment, overrides, G, D, G_ema,
          _stylegan3_full(networks_stylegan2, networks_stylegan3, r),
          {"ffhq1024": {"experiment": "experiments/stylegan3_ffhqu256.py:resolution=1024"
                        + (",cfg=stylegan3-r" if r else "")}})


def _stylegan3_full(networks_stylegan2, networks_stylegan3, r: bool) -> dict:
  """FFHQ 1024 (cbase 32768; R doubles G's channel_base and channel_max, 1x1 convolutions, radial filters)."""
  G = networks_stylegan3.Generator(
      z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3, mapping_kwargs=dict(num_layers=2),
      channel_base=65536 if r else 32768, channel_max=1024 if r else 512, num_fp16_res=4, conv_clamp=256,
      conv_kernel=1 if r else 3, use_radial_filters=r, magnitude_ema_beta=0.5 ** (32 / 20_000))
  D = networks_stylegan2.Discriminator(c_dim=0, img_resolution=1024, img_channels=3, channel_base=32768,
                                       channel_max=512, num_fp16_res=4, conv_clamp=256,
                                       epilogue_kwargs=dict(mbstd_group_size=4))
  return {"ffhq1024/G": G.state_dict(), "ffhq1024/D": D.state_dict()}


def stylegan3_t(repo_path: str, out_dir: str) -> None:
  _stylegan3(repo_path, out_dir, "t")


def stylegan3_r(repo_path: str, out_dir: str) -> None:
  _stylegan3(repo_path, out_dir, "r")
