"""BigGAN training-step fixture from the official code (ajbrock/BigGAN-PyTorch: train_fns.py
`GAN_training_function`, losses.py, utils.py `ortho`, `ema`, `prepare_z_y`, BigGAN.py `G_D`).

  python benchmarks/official/make_fixtures.py --repo PATH_TO_BigGAN-PyTorch biggan_step

Starts from a toy checkpoint of the ImageNet model's structure at 32x32 (the official networks with
--shared --hier, G_ch = D_ch = 4, dim_z 8 in 4 chunks, shared_dim 8, 5 classes, self-attention at 8x8
in G (D_arch[32] tags no block 8), SN_eps 1e-6, BN_eps 1e-5; seeded random weights and buffers as the
forward fixture's, saved as utils.save_weights writes them: G.pth, D.pth, G_ema.pth in the fixture),
smaller than the forward fixture's 128x128 toy so that the test compiles our step in seconds, and runs
STEPS iterations of the official training function itself,
`train_fns.GAN_training_function(G, D, G_D(G, D), z_, y_, ema, state_dict, config)`, called as train.py's
loop calls it (`state_dict['itr'] += 1`, G, D and G_ema put in train mode, then
`train(x, y)`), with the official Adam optimizers the networks build (betas (0, 0.999), adam_eps 1e-6
as launch_BigGAN_bs256x8.sh), hinge loss, `num_D_steps` 2 (each D step on its own real batch, with its
own `z_.sample_(); y_.sample_()`), `split_D` off (D on [fakes; reals] in one call), `toggle_grads` on,
G_ortho 1e-4 (utils.ortho with G.shared blacklisted), fp16 off, and the EMA (`utils.ema`, state-dict
keys: weights and buffers) with decay EMA_DECAY and `start_itr` EMA_START, so the first iteration
copies G and the later ones average. The EMA object is built before G_ema's weights are loaded, as
train.py builds it before `utils.load_weights` on --resume.

What the frameworks cannot share is fed: `z_.sample_` and `y_.sample_` are replaced at run time by
draws from a list (N(0, 1) latents, uniform classes: the official distributions), so every call gets
the next of the saved draws, in the official order (per iteration: D step 0, D step 1, G step).
Reals are 16x16 uint8 images upsampled 2x (nearest) to 32x32 and mapped to [-1, 1] in float32, so
the fixture stores them small; labels are uniform.

Saves (tests/fixtures/official/biggan_step/): inputs.npz (x_u8 [STEPS, n_D, B, 16, 16, 3] uint8,
y [STEPS, n_D, B], d_z [STEPS, n_D, B, z], d_y [STEPS, n_D, B], g_z [STEPS, B, z], g_y [STEPS, B]),
after.npz (the official state dicts after the steps, float32, "G/<key>", "D/<key>" with buffers
(u vectors, sv logs, BN statistics), "G_ema/<key>" weights only: our state has one set of G buffers),
losses.npz (per iteration and D step: D_loss_real, D_loss_fake [STEPS, n_D]; G_loss [STEPS]) and
manifest.json. `time_official` times the same iteration at our runlocal width; `our_config` gives the
matching gan_jax config. Needs torch; the tests do not.
"""
import os

import numpy as np

from benchmarks.official import _torch_toy as toy
from benchmarks.official.biggan import TOY, URL

START = "."                   # the starting checkpoint's directory, relative to this fixture's
TOY32 = {**TOY, "resolution": 32, "dim_z": 8, "G_attn": "8", "D_attn": "8"}
STEPS = 3
N_D = 2                       # num_D_steps
BATCH = 4
SMALL = 16                    # reals are SMALL x SMALL, upsampled to 32
EMA_DECAY = 0.5               # large enough that each step's weights show in G_ema
EMA_START = 2                 # iteration 1 copies G into G_ema (itr < start_itr), 2 and 3 average
TRAIN = {"G_lr": 1e-4, "D_lr": 4e-4, "G_B1": 0.0, "G_B2": 0.999, "D_B1": 0.0, "D_B2": 0.999, "adam_eps": 1e-6}
LOOP = {"batch_size": BATCH, "num_D_steps": N_D, "num_D_accumulations": 1, "num_G_accumulations": 1,
        "toggle_grads": True, "split_D": False, "D_ortho": 0.0, "G_ortho": 1e-4, "ema": True}


def _stub_unused_imports() -> None:
  """train_fns.py and utils.py import torchvision (sample sheets, datasets) and datasets.py h5py, none of
  which the training function calls: where they do not import (a torchvision build that does not match
  torch, no h5py), empty stand-ins are registered so the official modules load."""
  import importlib
  import sys
  import types

  def stub(name):
    m = types.ModuleType(name)
    def anything(attr):   # any class or function the modules name at import
      if attr.startswith("__"):
        raise AttributeError(attr)
      return type(attr, (), {})
    m.__getattr__ = anything
    m.__path__ = []
    sys.modules[name] = m
    parent, _, child = name.rpartition(".")
    if parent:
      setattr(sys.modules[parent], child, m)

  for root, subs in (("torchvision", ("transforms", "datasets", "datasets.utils", "utils")), ("h5py", ())):
    try:
      importlib.import_module(root)
    except Exception:   # noqa: BLE001 (a broken build raises RuntimeError, not ImportError)
      for name in (root, *(f"{root}.{s}" for s in subs)):
        stub(name)


def _official(repo_path: str):
  import torch
  _stub_unused_imports()
  toy.add_to_path(repo_path)
  import BigGAN
  import train_fns
  import utils
  return torch, BigGAN, train_fns, utils


def _draws(rng: np.random.Generator, steps: int, batch: int, z_dim: int, classes: int) -> dict:
  return {"x_u8": rng.integers(0, 256, (steps, N_D, batch, SMALL, SMALL, 3), dtype=np.uint8),
          "y": rng.integers(0, classes, (steps, N_D, batch)).astype(np.int32),
          "d_z": rng.standard_normal((steps, N_D, batch, z_dim)).astype(np.float32),
          "d_y": rng.integers(0, classes, (steps, N_D, batch)).astype(np.int32),
          "g_z": rng.standard_normal((steps, batch, z_dim)).astype(np.float32),
          "g_y": rng.integers(0, classes, (steps, batch)).astype(np.int32)}


def reals(x_u8: np.ndarray, resolution: int = 32) -> np.ndarray:
  """uint8 [..., s, s, 3] -> float32 [..., r, r, 3] in [-1, 1] (nearest upsampling), as the test computes it."""
  f = resolution // x_u8.shape[-2]
  x = np.repeat(np.repeat(x_u8, f, axis=-3), f, axis=-2)
  return (x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


class _Run:
  """The official objects of train.py (G, D, G_ema, G_D, z_, y_, ema, state_dict) and its training function."""

  def __init__(self, repo_path: str, settings: dict, batch: int, g_sd=None, d_sd=None, ema_sd=None):
    torch, BigGAN, train_fns, utils = _official(repo_path)
    self.torch = torch
    s = {**settings, **TRAIN}
    self.G = BigGAN.Generator(**s, skip_init=g_sd is not None)
    self.D = BigGAN.Discriminator(**s, skip_init=d_sd is not None)
    self.G_ema = BigGAN.Generator(**s, skip_init=True, no_optim=True)
    if g_sd is not None:
      self.G.load_state_dict(g_sd)
      self.D.load_state_dict(d_sd)
    self.ema = utils.ema(self.G, self.G_ema, EMA_DECAY, EMA_START)   # copies G into G_ema ...
    if ema_sd is not None:
      self.G_ema.load_state_dict(ema_sd)                             # ... then --resume loads G_ema
    self.z_, self.y_ = utils.prepare_z_y(batch, self.G.dim_z, settings["n_classes"], device="cpu")
    self.queue = []
    self.z_.sample_ = lambda: self.z_.copy_(self.queue.pop(0)[0])
    self.y_.sample_ = lambda: self.y_.copy_(self.queue.pop(0)[1])
    self.state_dict = {"itr": 0}
    config = {**LOOP, "batch_size": batch}
    self.train = train_fns.GAN_training_function(self.G, self.D, BigGAN.G_D(self.G, self.D), self.z_, self.y_,
                                                 self.ema, self.state_dict, config)

  def iteration(self, x: np.ndarray, y: np.ndarray, zs: list, ys: list) -> dict:
    """train.py's loop body: x [n_D · B, 3, H, W], y [n_D · B]; zs/ys the draws of the D steps and the G step."""
    torch = self.torch
    for z, yy in zip(zs, ys):   # z_.sample_() then y_.sample_() pop one pair's halves
      self.queue += [(torch.from_numpy(z), None), (None, torch.from_numpy(yy.astype(np.int64)))]
    self.state_dict["itr"] += 1
    self.G.train()
    self.D.train()
    self.G_ema.train()
    out = self.train(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
    assert not self.queue
    return out


def _record(losses_module):
  """Wraps losses.discriminator_loss to log every D step's terms (the training function returns the last only)."""
  log = []
  inner = losses_module.discriminator_loss

  def logged(dis_fake, dis_real):
    real, fake = inner(dis_fake, dis_real)
    log.append((float(real.item()), float(fake.item())))
    return real, fake
  losses_module.discriminator_loss = logged
  return log


def _state(module, buffers: bool = True) -> dict:
  sd = module.state_dict() if buffers else dict(module.named_parameters())
  return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in sd.items() if v.is_floating_point()}


def make(repo_path: str, out_dir: str) -> None:
  torch, *_ = _official(repo_path)
  import losses
  torch.manual_seed(0)
  os.makedirs(out_dir, exist_ok=True)
  start = os.path.normpath(os.path.join(out_dir, START))
  _start_checkpoint(repo_path, start)
  sds = {n: torch.load(os.path.join(start, f"{n}.pth"), map_location="cpu") for n in ("G", "D", "G_ema")}
  run = _Run(repo_path, TOY32, BATCH, sds["G"], sds["D"], sds["G_ema"])
  d_log = _record(losses)
  draws = _draws(np.random.default_rng(11), STEPS, BATCH, run.G.dim_z, TOY32["n_classes"])
  g_losses = []
  for i in range(STEPS):
    x = np.transpose(reals(draws["x_u8"][i]), (0, 1, 4, 2, 3)).reshape(N_D * BATCH, 3, 32, 32)
    zs = list(draws["d_z"][i]) + [draws["g_z"][i]]
    ys = list(draws["d_y"][i]) + [draws["g_y"][i]]
    out = run.iteration(np.ascontiguousarray(x), draws["y"][i].reshape(-1), zs, ys)
    g_losses.append(out["G_loss"])
  after = {**{f"G/{k}": v for k, v in _state(run.G).items()}, **{f"D/{k}": v for k, v in _state(run.D).items()},
           **{f"G_ema/{k}": v for k, v in _state(run.G_ema, buffers=False).items()}}
  toy.save_npz(out_dir, "inputs.npz", draws)
  toy.save_npz(out_dir, "after.npz", after)
  d = np.array(d_log, np.float64).reshape(STEPS, N_D, 2)
  toy.save_npz(out_dir, "losses.npz", {"D_loss_real": d[..., 0], "D_loss_fake": d[..., 1],
                                       "G_loss": np.array(g_losses, np.float64)})
  experiment, overrides = our_config()
  toy.write_manifest(out_dir, {
      "model": "biggan", "kind": "train_step", "format": "biggan-pytorch", "start": START,
      "inputs": "inputs.npz", "after": "after.npz", "losses": "losses.npz", "steps": STEPS, "batch": BATCH,
      "num_D_steps": N_D, "ema_decay": EMA_DECAY, "ema_start": EMA_START, "train": TRAIN, "loop": LOOP,
      "tolerance": 1e-4,
      "files": ["G.pth", "D.pth", "G_ema.pth"], "toy": TOY32,
      "layout": "x_u8 uint8 NHWC 16x16, upsampled 2x nearest and mapped x / 127.5 - 1 (float32); "
                "[step, D step, batch, ...]; after.npz: official state-dict keys, G_ema weights only",
      "official": {"repo": URL, "commit": toy.commit_of(repo_path),
                   "code": "train_fns.py GAN_training_function (called as train.py's loop calls it), losses.py "
                           "hinge, utils.py ortho / ema / prepare_z_y, BigGAN.py G_D and the networks' Adam"},
      "config": {"experiment": experiment, "overrides": overrides},
  })


def _start_checkpoint(repo_path: str, out_dir: str) -> None:
  """G.pth, D.pth, G_ema.pth of the TOY32 networks with seeded random weights and buffers (as the forward fixture)."""
  torch, BigGAN, _, _ = _official(repo_path)
  from benchmarks.official.biggan import _nets
  torch.manual_seed(0)
  for i, (name, net) in enumerate(zip(("G", "D", "G_ema"), _nets(BigGAN, TOY32))):
    toy.randomize(net, seed=300 + i)
    torch.save(net.state_dict(), os.path.join(out_dir, f"{name}.pth"))


def our_config(runlocal: bool = False) -> tuple[str, dict]:
  """(experiment, overrides): the gan_jax config of the parity run (the TOY32 networks at BATCH),
  or with `runlocal` the one `time_official` times (experiments/biggan_imagenet128.py:runlocal, batch 32)."""
  common = {"n_critic": N_D, "optim.g.lr": TRAIN["G_lr"], "optim.d.lr": TRAIN["D_lr"], "optim.g.eps": 1e-6,
            "optim.d.eps": 1e-6, "reg.ortho": LOOP["G_ortho"], "ema.decay": EMA_DECAY, "ema.start_step": EMA_START}
  if runlocal:
    return "experiments/biggan_imagenet128.py:runlocal", {**common, "batch_size": 32}
  return "experiments/biggan_imagenet128.py", {
      **common, "batch_size": BATCH, "data.resolution": 32, "model.g_width": 4, "model.d_width": 4, "model.z_dim": 8,
      "model.shared_dim": 8, "model.attention": 8, "model.conditional": True}


RUNLOCAL = {"resolution": 32, "G_ch": 4, "D_ch": 4, "dim_z": 120, "shared_dim": 128, "n_classes": 10,
            "G_attn": "16", "D_attn": "16", "hier": True, "G_shared": True, "SN_eps": 1e-6, "BN_eps": 1e-5}


def time_official(repo_path: str, batch: int = 32, steps: int = 10, warmup: int = 2) -> dict:
  """Median seconds of one official training iteration (2 D steps + G step with ortho, EMA) at our
  runlocal width (experiments/biggan_imagenet128.py:runlocal: 32x32, G_ch = D_ch = 4, dim_z 120,
  shared_dim 128, hier, attention at 16, 10 classes; the official N(0, 0.02)... ortho init) on CPU, real
  batch `batch` per D step, torch's default thread count."""
  torch, *_ = _official(repo_path)
  torch.manual_seed(0)
  run = _Run(repo_path, {**RUNLOCAL, "G_init": "ortho", "D_init": "ortho"}, batch)
  rng = np.random.default_rng(0)
  x = np.ascontiguousarray(rng.uniform(-1, 1, (N_D * batch, 3, 32, 32)).astype(np.float32))
  y = rng.integers(0, 10, N_D * batch)
  def latents():
    return ([rng.standard_normal((batch, run.G.dim_z)).astype(np.float32) for _ in range(N_D + 1)],
            [rng.integers(0, 10, batch) for _ in range(N_D + 1)])

  return {**toy.timed_iterations(torch, repo_path, batch, steps, warmup, lambda zs, ys: run.iteration(x, y, zs, ys),
                                 latents),
          "config": "experiments/biggan_imagenet128.py:runlocal"}
