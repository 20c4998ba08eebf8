"""StackGAN fixtures from the official code (hanzhanggit/StackGAN-Pytorch, code/model.py).

Toy Stage I (64x64) and Stage II (256x256) networks, Z_DIM 10, TEXT.DIMENSION 16, CONDITION_DIM 8,
GF_DIM 8, DF_DIM 4, R_NUM 2 (code/miscc/config.py's cfg set at run time; easydict stubbed when missing),
with seeded random weights, saved as miscc/utils.save_model writes them (netG_epoch_N.pth, whose Stage II
file holds STAGE1_G.*, and netD_epoch_last.pth), and their outputs in eval mode (trainer.sample runs
netG.eval()): G(text, noise) -> images, mu, logvar with the CA's epsilon drawn from a seeded torch
generator and saved (eps1: Stage I's CA, eps2: Stage II's); D's image code and its conditional (and, at
Stage II, unconditional) logits before the sigmoid, conditioned on mu. Two directories: OUT (Stage I) and
OUT_s2 (Stage II), tests/fixtures/official/stackgan and stackgan_s2 by default. Also the full-size CUB
networks' names and shapes (cfg's defaults).
"""
import os
import sys
import types

import numpy as np

from benchmarks.official import _torch_toy as toy

URL = "https://github.com/hanzhanggit/StackGAN-Pytorch"
TOY = {"Z_DIM": 10, "TEXT.DIMENSION": 16, "GAN.CONDITION_DIM": 8, "GAN.GF_DIM": 8, "GAN.DF_DIM": 4, "GAN.R_NUM": 2}
FULL = {"Z_DIM": 100, "TEXT.DIMENSION": 1024, "GAN.CONDITION_DIM": 128, "GAN.GF_DIM": 128, "GAN.DF_DIM": 64,
        "GAN.R_NUM": 4}


def _import(repo_path: str):
  try:
    import easydict  # noqa: F401
  except ImportError:   # code/miscc/config.py needs only EasyDict's attribute access
    stub = types.ModuleType("easydict")
    stub.EasyDict = type("EasyDict", (dict,), {"__getattr__": dict.__getitem__, "__setattr__": dict.__setitem__})
    sys.modules["easydict"] = stub
  toy.add_to_path(repo_path, "code")
  import model
  from miscc.config import cfg
  cfg.CUDA = False
  return cfg, model


def _set(cfg, values: dict) -> None:
  for key, v in values.items():
    node = cfg
    *parents, last = key.split(".")
    for p in parents:
      node = node[p]
    node[last] = v


def _logits(d, h, c):
  """The official heads' outputs before their sigmoid (a hook on the Sigmoid's input)."""
  seen = []
  out = {}
  for name in ("get_cond_logits", "get_uncond_logits"):
    head = getattr(d, name)
    if head is None:
      continue
    hook = head.outlogits[-1].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    head(h, c if name == "get_cond_logits" else None)
    hook.remove()
    out[name] = seen.pop().reshape(-1).numpy()
  return out


def _eps(seed: int, n: int, shape) -> list:
  """The CA's epsilons as the forward will draw them: torch's default generator from `seed`."""
  import torch
  torch.manual_seed(seed)
  return [torch.FloatTensor(*shape).normal_().numpy() for _ in range(n)]


def make(repo_path: str, out_dir: str) -> None:
  """Stage I into out_dir, Stage II into out_dir + "_s2"."""
  import torch
  cfg, model = _import(repo_path)
  dirs = {1: out_dir, 2: os.path.normpath(out_dir) + "_s2"}
  _set(cfg, TOY)
  rng = np.random.default_rng(0)
  commit = toy.commit_of(repo_path)
  for stage, res, n in ((1, 64, 2), (2, 256, 1)):
    out = dirs[stage]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(stage)
    g = model.STAGE1_G() if stage == 1 else model.STAGE2_G(model.STAGE1_G())
    d = model.STAGE1_D() if stage == 1 else model.STAGE2_D()
    toy.randomize(g, seed=300 + stage)
    toy.randomize(d, seed=310 + stage)
    g.eval()
    d.eval()
    torch.save(g.state_dict(), os.path.join(out, "netG_epoch_600.pth"))
    torch.save(d.state_dict(), os.path.join(out, "netD_epoch_last.pth"))
    text = rng.standard_normal((n, TOY["TEXT.DIMENSION"])).astype(np.float32)
    noise = rng.standard_normal((n, TOY["Z_DIM"])).astype(np.float32)
    x = rng.uniform(-1, 1, (n, 3, res, res)).astype(np.float32)
    eps = _eps(50 + stage, stage, (n, TOY["GAN.CONDITION_DIM"]))
    with torch.no_grad():
      torch.manual_seed(50 + stage)
      stage1_img, fake, mu, logvar = g(torch.from_numpy(text), torch.from_numpy(noise))
      h = d(torch.from_numpy(x))
      logits = _logits(d, h, mu)
    nhwc = lambda a: np.transpose(a, (0, 2, 3, 1))  # noqa: E731
    toy.save_npz(out, "inputs.npz", {"noise": noise, "text": text, "x": nhwc(x), "mu": mu.numpy(),
                                         **{f"eps{i + 1}": e for i, e in enumerate(eps)}})
    outputs = {"fake": nhwc(fake.numpy()), "mu": mu.numpy(), "logvar": logvar.numpy(), "d_code": nhwc(h.numpy()),
               "cond_logits": logits["get_cond_logits"]}
    if stage == 2:
      outputs.update(stage1_fake=nhwc(stage1_img.numpy()), uncond_logits=logits["get_uncond_logits"])
    toy.save_npz(out, "outputs.npz", outputs)
    g_inputs = ["noise", "text"]
    outs = [{"name": "fake", "net": "generator", "params": "g_params", "inputs": g_inputs, "index": 0,
             "official": "netG(text, noise)[1]"},
            {"name": "mu", "net": "generator", "params": "g_params", "inputs": g_inputs, "index": 1},
            {"name": "logvar", "net": "generator", "params": "g_params", "inputs": g_inputs, "index": 2},
            {"name": "d_code", "net": "discriminator", "params": "d_params", "method": "encode", "inputs": ["x"],
             "official": "netD(x)"},
            {"name": "cond_logits", "net": "discriminator", "params": "d_params", "method": "encode+cond_logits",
             "inputs": ["x", "mu"], "official": "netD.get_cond_logits(netD(x), mu) before its sigmoid"}]
    if stage == 2:
      outs.append({"name": "uncond_logits", "net": "discriminator", "params": "d_params",
                   "method": "encode+uncond_logits", "inputs": ["x"],
                   "official": "netD.get_uncond_logits(netD(x)) before its sigmoid"})
    toy.write_manifest(out, {
        "model": "stackgan", "format": "stackgan", "official": {"repo": URL, "commit": commit, "file": "code/model.py"},
        "toy": {**TOY, "stage": stage, "resolution": res, "mode": "eval",
                "weights": "seeded N(0, 0.1²), every parameter and buffer (variances |N(1, 0.1²)| + 0.2)"},
        "import_path": ".", "files": ["netG_epoch_600.pth", "netD_epoch_last.pth"],
        "config": {"experiment": "experiments/stackgan_cub.py" + (":stage=2" if stage == 2 else ""),
                   "overrides": {"model.z_dim": 10, "model.t_dim": 16, "model.c_dim": 8, "model.g_width": 8,
                                 "model.d_width": 4, "model.r_num": 2, "model.stage": stage}},
        # Stage II needs its Stage-I run for a workdir (model.stage1_workdir): read and compared only.
        **({"workdir": False} if stage == 2 else {}),
        "noise": {"ca_eps": [f"eps{i + 1}" for i in range(stage)],
                  "note": "the CA's epsilon of each stage, in call order (Stage I's, then Stage II's)"},
        "inputs": "inputs.npz", "outputs_file": "outputs.npz", "outputs": outs, "tolerance": 1e-5})
  _set(cfg, FULL)
  toy.shapes_json(os.path.join(dirs[1], "full_shapes.json"),
                  {"G": model.STAGE1_G().state_dict(), "D": model.STAGE1_D().state_dict()})
  toy.shapes_json(os.path.join(dirs[2], "full_shapes.json"),
                  {"G": model.STAGE2_G(model.STAGE1_G()).state_dict(), "D": model.STAGE2_D().state_dict()})
