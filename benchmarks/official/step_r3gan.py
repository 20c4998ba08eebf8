"""R3GAN training-step fixture and timing from the official code (brownvc/R3GAN: training/loss.py
`R3GANLoss` over R3GAN/Trainer.py `AdversarialTraining`, the per-iteration logic of
training/training_loop.py), imported from the checkout at run time.

  python benchmarks/official/make_fixtures.py --repo PATH_TO_R3GAN_CHECKOUT r3gan_step

`training_loop.training_loop` is one monolithic function (dataset, logging, snapshots and the loop),
so `_Trainer.iteration` reproduces one pass of its `while True` body by calling the official pieces in
the official order: the schedules (`training_loop.cosine_decay_with_warmup` of the images seen before the iteration:
lr, beta2, gamma, EMA half-life), then per phase, D first and G second, `opt.zero_grad`, `requires_grad_`,
`R3GANLoss.accumulate_gradients(phase, real_img, real_c, gen_z, gamma, gain)` on the phase's own real
batch, labels and latents, the lr and betas `(0, beta2)` written into the Adam param groups, `opt.step()`;
then the G_ema update (`ema_beta = 0.5 ** (batch / max(cur_ema_nimg, 1e-8))`, parameters lerped, buffers
copied). The multi-GPU gradient all-reduce is left out (one process: it only reassigns `param.grad`), and
so is the augmentation pipe (`--aug=0`: the loss's preprocessor is the identity).

The networks start from tests/fixtures/official/r3gan/network-snapshot.pkl (the forward-parity toy:
experiments/r3gan_cifar10.py:runlocal shapes, 16x16x3, 10 classes), read by relative path. The
settings are those of `our_config(BATCH, SCHEDULE_IMAGES, EMA_FINAL_IMAGES)`: runlocal's Adam (beta1 0,
eps 1e-8, lr 1e-3 -> 2.5e-4, beta2 0.9 -> 0.99), gamma 0.05 -> 0.005, EMA half-life 0 -> 8 images,
with every cosine over 8 images (`schedule.kimg` 0.008) so that each schedule is at its base, midway
and final value in the STEPS iterations of BATCH images. Saved (tests/fixtures/official/r3gan_step/): inputs.npz
(per iteration and phase: reals NHWC, labels, latents), after.npz (G, D, G_ema parameters after the
iterations, official names, float32; the resampling kernels are constant and left out), losses.npz
(per iteration: the D phase's adversarial loss, R1 and R2 means, the G phase's loss, and the
schedules' values) and manifest.json with the official commit.

`time_official(repo, batch, steps)` times the same iteration at runlocal width (random weights) on
CPU with real batch `batch`; `our_config()` is the matching gan_jax configuration (scripts/benchmark.py
--compare-official r3gan).
"""
import copy
import os
import pickle

import numpy as np

from benchmarks.official import _torch_toy as toy
from benchmarks.official import r3gan as forward
from benchmarks.official.stylegan import _pkg_resources_shim

URL = "https://github.com/brownvc/R3GAN"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SNAPSHOT = "../r3gan/network-snapshot.pkl"    # relative to the step fixture's directory
BATCH, STEPS, Z_DIM, CLASSES, RES = 4, 3, 64, 10, 16
SCHEDULE_IMAGES = 8           # every cosine ramp: 0, 1/2, 1 at the three iterations of 4 images
EMA_FINAL_IMAGES = 8
EXPERIMENT = "experiments/r3gan_cifar10.py:runlocal"


def _schedulers(schedule_images: float, ema_images: float) -> dict:
  """The official train.py scheduler dicts, with runlocal's values (its lr is 5x the preset's)."""
  return {"lr": {"base_value": 1e-3, "final_value": 2.5e-4, "total_nimg": schedule_images},
          "beta2": {"base_value": 0.9, "final_value": 0.99, "total_nimg": schedule_images},
          "gamma": {"base_value": 0.05, "final_value": 0.005, "total_nimg": schedule_images},
          "ema": {"base_value": 0, "final_value": ema_images, "total_nimg": schedule_images}}


def our_config(batch: int = 32, schedule_images: float | None = None,
               ema_images: float | None = None) -> tuple[str, dict]:
  """(experiment, overrides) of gan_jax matching the official settings: runlocal networks and
  recipe (R1 + R2 every D step) on RGB data, no augmentation, batch `batch`; with `schedule_images`
  and `ema_images`, the parity fixture's short schedules."""
  overrides = {"data.channels": 3, "batch_size": batch, "augment.name": "none"}
  if schedule_images is not None:
    overrides["schedule.kimg"] = schedule_images / 1000.0
  if ema_images is not None:
    overrides["ema.halflife_final_kimg"] = ema_images / 1000.0
  return EXPERIMENT, overrides


def _official(repo_path: str):
  import torch
  toy.add_to_path(repo_path)
  _pkg_resources_shim()
  import dnnlib
  from training import loss as loss_lib
  from training import training_loop
  torch.set_grad_enabled(True)
  return torch, dnnlib, loss_lib, training_loop


class _Trainer:
  """The official objects of one run: networks, R3GANLoss, the two Adam optimizers (train.py's
  G_opt_kwargs / D_opt_kwargs) and the recorded per-iteration values."""

  def __init__(self, repo_path: str, G, D, G_ema, batch: int, schedule_images: float, ema_images: float):
    self.torch, dnnlib, loss_lib, self.loop = _official(repo_path)
    self.G, self.D, self.G_ema = G.train().requires_grad_(False), D.train().requires_grad_(False), G_ema.eval()
    self.loss = loss_lib.R3GANLoss(G=self.G, D=self.D, augment_pipe=None)
    self.phases = []
    for name, module in (("D", self.D), ("G", self.G)):
      opt = dnnlib.util.construct_class_by_name(params=module.parameters(), class_name="torch.optim.Adam",
                                                betas=[0.0, 0.0], eps=1e-8)   # train.py: [0, 0], which
      # torch >= 2.6 rejects (ints); the loop overwrites both before every step anyway
      self.phases.append(dnnlib.EasyDict(name=name, module=module, opt=opt, batch_gpu=batch))
    self.batch, self.sched = batch, _schedulers(schedule_images, ema_images)
    self.cur_nimg = 0
    self.record = {}
    trainer = self.loss.trainer
    for method in ("AccumulateDiscriminatorGradients", "AccumulateGeneratorGradients"):
      original = getattr(trainer, method)

      def recorded(*args, _original=original, _method=method, **kwargs):
        out = _original(*args, **kwargs)
        self.record[_method] = [float(x.float().mean()) for x in out]
        return out
      setattr(trainer, method, recorded)

  def iteration(self, reals, labels, zs) -> dict:
    """One pass of the official loop's body: reals [2, B, C, H, W] in [-1, 1], labels one-hot [2, B, c],
    zs [2, B, z]; row 0 feeds the D phase, row 1 the G phase. Returns the logged values."""
    cosine = self.loop.cosine_decay_with_warmup
    cur_lr = cosine(self.cur_nimg, **self.sched["lr"])
    cur_beta2 = cosine(self.cur_nimg, **self.sched["beta2"])
    cur_gamma = cosine(self.cur_nimg, **self.sched["gamma"])
    cur_ema_nimg = cosine(self.cur_nimg, **self.sched["ema"])
    for phase, real_img, real_c, gen_z in zip(self.phases, reals, labels, zs):
      phase.opt.zero_grad(set_to_none=True)
      phase.module.requires_grad_(True)
      self.loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c, gen_z=gen_z,
                                     gamma=cur_gamma, gain=phase.batch_gpu / self.batch)
      phase.module.requires_grad_(False)
      for g in phase.opt.param_groups:
        g["lr"] = cur_lr
        g["betas"] = (0, cur_beta2)
      phase.opt.step()
    with self.torch.no_grad():
      ema_beta = 0.5 ** (self.batch / max(cur_ema_nimg, 1e-8))
      for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
      for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
        b_ema.copy_(b)
    self.cur_nimg += self.batch
    d_adv, _, r1, r2 = self.record["AccumulateDiscriminatorGradients"]
    g_adv, _ = self.record["AccumulateGeneratorGradients"]
    return {"d_loss": d_adv, "r1": r1, "r2": r2, "g_loss": g_adv, "lr": cur_lr, "beta2": cur_beta2,
            "gamma": cur_gamma, "ema_beta": ema_beta}


def _draws(rng, steps: int, batch: int) -> dict:
  """Per iteration and phase (D, G): reals NHWC in [-1, 1], integer labels, latents."""
  return {"x": rng.uniform(-1, 1, (steps, 2, batch, RES, RES, 3)).astype(np.float32),
          "label": rng.integers(0, CLASSES, (steps, 2, batch)).astype(np.int32),
          "z": rng.standard_normal((steps, 2, batch, Z_DIM)).astype(np.float32)}


def _torch_inputs(torch, draws: dict, i: int):
  reals = torch.from_numpy(np.ascontiguousarray(np.transpose(draws["x"][i], (0, 1, 4, 2, 3))))
  labels = torch.nn.functional.one_hot(torch.from_numpy(draws["label"][i]).long(), CLASSES).float()
  return reals, labels, torch.from_numpy(draws["z"][i])


def _parameters(module) -> dict:
  return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items() if not k.endswith("Resampler.Kernel")}


def make(repo_path: str, out_dir: str) -> None:
  torch, *_ = _official(repo_path)
  torch.manual_seed(0)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.normpath(os.path.join(out_dir, SNAPSHOT)), "rb") as f:
    snapshot = pickle.load(f)   # our own fixture (module paths of the checkout, no embedded code)
  run = _Trainer(repo_path, snapshot["G"], snapshot["D"], snapshot["G_ema"], BATCH, SCHEDULE_IMAGES,
                 EMA_FINAL_IMAGES)
  draws = _draws(np.random.default_rng(7), STEPS, BATCH)
  logs = []
  for i in range(STEPS):
    logs.append(run.iteration(*_torch_inputs(torch, draws, i)))
  after = {f"{name}/{k}": v for name, module in (("G", run.G), ("D", run.D), ("G_ema", run.G_ema))
           for k, v in _parameters(module).items()}
  toy.save_npz(out_dir, "inputs.npz", draws)
  toy.save_npz(out_dir, "after.npz", after)
  toy.save_npz(out_dir, "losses.npz", {k: np.array([log[k] for log in logs], np.float64).astype(np.float32)
                                       for k in logs[0]})
  experiment, overrides = our_config(BATCH, SCHEDULE_IMAGES, EMA_FINAL_IMAGES)
  toy.write_manifest(out_dir, {
      "model": "r3gan", "kind": "train_step", "format": "r3gan", "start": SNAPSHOT,
      "inputs": "inputs.npz", "after": "after.npz", "losses": "losses.npz", "steps": STEPS, "batch": BATCH,
      "tolerance": 1e-4, "layout": "inputs NHWC; x, label, z [step, phase (D, G), batch, ...]",
      "official": {"repo": URL, "commit": toy.commit_of(repo_path),
                   "code": "training/loss.py R3GANLoss.accumulate_gradients; the loop body of "
                           "training/training_loop.py (schedules, D then G phase, Adam lr/betas, G_ema)"},
      "schedulers": _schedulers(SCHEDULE_IMAGES, EMA_FINAL_IMAGES),
      "config": {"experiment": experiment, "overrides": overrides},
  })


def time_official(repo_path: str, batch: int = 32, steps: int = 10, warmup: int = 2) -> dict:
  """Median seconds of one official training iteration (D phase with R1 + R2, G phase, G_ema) at
  runlocal width (experiments/r3gan_cifar10.py:runlocal's networks, 16x16x3, 10 classes, random
  weights) on CPU, real batch `batch` per phase, torch's default thread count."""
  torch, *_ = _official(repo_path)
  from training import networks
  torch.manual_seed(0)
  G, D = forward._networks(networks, [32, 32, 32], [4, 4, 4], CLASSES, RES)
  run = _Trainer(repo_path, G, D, copy.deepcopy(G), batch, 300 * 32, 1000.0)
  draws = _draws(np.random.default_rng(0), 1, batch)
  inputs = _torch_inputs(torch, draws, 0)
  return toy.timed_iterations(torch, repo_path, batch, steps, warmup, lambda: run.iteration(*inputs))
