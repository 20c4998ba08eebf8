"""StyleGAN2-ADA training-step fixture (tests/test_step_parity_stylegan2.py) and official step timing, from the
official code (NVlabs/stylegan2-ada-pytorch), imported from the checkout at run time.

  python benchmarks/official/make_fixtures.py --repo /work/official/stylegan2-ada-pytorch stylegan2_step

Starts from the forward fixture's snapshot (tests/fixtures/official/stylegan2_ada/network-snapshot.pkl: G, D,
G_ema of the conditional 16x16x1 toy; read without running the pickle through gan_jax's importer, then loaded
into the official networks built from the pickle's constructor arguments) and runs STEPS iterations of the
official training loop: training/loss.py `StyleGAN2Loss.accumulate_gradients` with the phases training_loop.py
builds for lazy regularization (Gmain, Greg, Dmain, Dreg in that order; the reg phases every G_REG / D_REG
iterations with gain = interval; one shared Adam per network with lr · mb_ratio and betas ** mb_ratio,
mb_ratio = interval / (interval + 1); zero_grad, requires_grad_, nan_to_num and opt.step around each phase),
then G_ema as the loop updates it (ema_nimg = min(ema_kimg · 1000, cur_nimg · ema_rampup), parameters lerped,
buffers copied). `training_loop.training_loop` itself is one monolithic function (datasets, DDP, logging), so
its per-iteration body is reproduced here by calling the official pieces in its order.

What the two frameworks cannot share is fixed or fed: style mixing off (style_mixing_prob 0), no augmentation
(augment_pipe None), the noise inputs in the official noise_mode 'const' (G.synthesis wrapped to pass it; ours
is fed the same maps as `draws["noise_const"]`), the path-length noise fed to the official loss by replacing
`torch.randn_like` during the run with the stored draws. Real images, their labels, every phase's latents
and labels are stored per iteration (inputs.npz; [step, phase (Gmain, Greg, Dmain, Dreg), batch, ...]).
Saved: G and D after the first iteration (both lazy penalties applied), G, D and G_ema after the last
(after.npz, official names, float32; noise_const and the designed filters are left out: never trained), the
loss's pl_mean, and the per-iteration losses the loss reports (losses.npz).
"""
import contextlib
import copy
import os

import numpy as np

from benchmarks.official import _torch_toy as toy

URL = "https://github.com/NVlabs/stylegan2-ada-pytorch"
FORWARD = os.path.join("..", "stylegan2_ada", "network-snapshot.pkl")   # relative to the fixture directory
STEPS = 4
BATCH = 8
G_REG = D_REG = 2
LR = 0.0025
GAMMA = 1.0
PL_WEIGHT = 2.0
PL_SHRINK = 2
PL_DECAY = 0.01
EMA_KIMG = 0.02
EMA_RAMPUP = 0.5
PHASES = ("Gmain", "Greg", "Dmain", "Dreg")
SKIP = ("noise_const", "resample_filter")
LOSSES = {"Loss/G/loss": "g_loss", "Loss/pl_penalty": "pl_penalty", "Loss/D/loss": "d_loss",
          "Loss/r1_penalty": "r1"}


def our_config(batch: int = BATCH) -> tuple[str, dict]:
  """(experiment, overrides) of gan_jax matching the official settings above on the runlocal networks
  (experiments/stylegan2_ffhq256.py:runlocal: 16x16x1, z = w = 64, channel_base 512, channel_max 64, 8 mapping
  layers, unconditional); the parity test adds the toy's architecture (the forward fixture's overrides)."""
  return "experiments/stylegan2_ffhq256.py:runlocal", {
      "batch_size": batch, "reg.r1": GAMMA, "reg.lazy_every": D_REG, "reg.pl_every": G_REG,
      "reg.pl_weight": PL_WEIGHT, "reg.pl_batch_shrink": PL_SHRINK, "reg.pl_decay": PL_DECAY,
      "optim.g.lr": LR, "optim.d.lr": LR, "ema.halflife_kimg": EMA_KIMG, "ema.rampup": EMA_RAMPUP,
      "model.style_mixing_prob": 0.0, "augment.name": "none"}


def _official(repo_path: str):
  import torch
  toy.add_to_path(repo_path)
  from torch_utils import misc
  from training import loss as loss_lib
  from training import networks
  torch.set_grad_enabled(True)
  return torch, loss_lib, networks, misc


def _snapshot_networks(path: str, networks):
  """G, D, G_ema of an official snapshot: the official classes built from the pickle's constructor arguments,
  the tensors loaded from it (read by gan_jax's importer: the pickle is not run)."""
  import torch

  from gan_jax.importers import nvidia
  data = nvidia._snapshot(path)
  out = []
  for name, cls in (("G", networks.Generator), ("D", networks.Discriminator), ("G_ema", networks.Generator)):
    kwargs, sd = nvidia.network(data, name, path)
    net = cls(**kwargs)
    net.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in sd.items()})
    out.append(net)
  return out


class _Run:
  """The official objects of one run: StyleGAN2Loss, the phases and optimizers as training_loop.py builds them
  (Adam, betas (0, 0.99), eps 1e-8: train.py's opt kwargs), G_ema, cur_nimg, and what the loss reports."""

  def __init__(self, repo_path: str, G, D, G_ema, batch: int):
    self.torch, loss_lib, _, self.misc = _official(repo_path)
    torch = self.torch
    self.G, self.D, self.G_ema = G.train().requires_grad_(False), D.train().requires_grad_(False), G_ema.eval()
    self.batch = batch
    self.loss = loss_lib.StyleGAN2Loss(device=torch.device("cpu"), G_mapping=self.G.mapping,
                                       G_synthesis=_const_noise(torch, self.G.synthesis), D=self.D,
                                       augment_pipe=None, style_mixing_prob=0.0, r1_gamma=GAMMA,
                                       pl_batch_shrink=PL_SHRINK, pl_decay=PL_DECAY, pl_weight=PL_WEIGHT)
    self.phases = []
    for name, module, interval in (("G", self.G, G_REG), ("D", self.D, D_REG)):
      mb_ratio = interval / (interval + 1)
      opt = torch.optim.Adam(module.parameters(), lr=LR * mb_ratio, betas=[b ** mb_ratio for b in (0, 0.99)],
                             eps=1e-8)
      self.phases += [dict(name=name + "main", module=module, opt=opt, interval=1),
                      dict(name=name + "reg", module=module, opt=opt, interval=interval)]
    self.cur_nimg = 0
    self.batch_idx = 0
    self.reports = {}
    loss_lib.training_stats.report = self._report   # the loss's statistics, recorded

  def _report(self, name, value):
    if name in LOSSES:
      self.reports[LOSSES[name]] = float(value.detach().double().mean())
    return value

  def iteration(self, real_img, real_c, gen_z, gen_c):
    """One iteration of the loop's body: the phases (each on its own latents and labels) and G_ema."""
    torch = self.torch
    self.reports = {}
    for phase, phase_z, phase_c in zip(self.phases, gen_z, gen_c):
      if self.batch_idx % phase["interval"] != 0:
        continue
      phase["opt"].zero_grad(set_to_none=True)
      phase["module"].requires_grad_(True)
      self.loss.accumulate_gradients(phase=phase["name"], real_img=real_img, real_c=real_c, gen_z=phase_z,
                                     gen_c=phase_c, sync=True, gain=phase["interval"])
      phase["module"].requires_grad_(False)
      for param in phase["module"].parameters():
        if param.grad is not None:
          self.misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
      phase["opt"].step()
    with torch.no_grad():
      ema_nimg = min(EMA_KIMG * 1000, self.cur_nimg * EMA_RAMPUP)
      ema_beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
      for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
      for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
        b_ema.copy_(b)
    self.cur_nimg += self.batch
    self.batch_idx += 1
    return dict(self.reports)


def _const_noise(torch, synthesis):
  """G.synthesis in noise_mode 'const' (the loss calls G_synthesis(ws); misc.ddp_sync wants a Module)."""
  class ConstNoise(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.synthesis = synthesis

    def forward(self, ws):
      return self.synthesis(ws, noise_mode="const")
  return ConstNoise()


@contextlib.contextmanager
def _fed_randn_like(torch, draws: list):
  """torch.randn_like returns the given arrays in order (the loss's path-length noise is its only call)."""
  original = torch.randn_like

  def fed(t, *args, **kwargs):
    x = torch.from_numpy(draws.pop(0))
    assert x.shape == t.shape, (x.shape, t.shape)
    return x
  torch.randn_like = fed
  try:
    yield
  finally:
    torch.randn_like = original


def _draws(rng: np.random.Generator, steps: int, batch: int, res: int, channels: int, z_dim: int, classes: int):
  """Per-iteration inputs, NHWC: reals x [steps, B, H, W, C] in [-1, 1], their labels; z and labels of every
  phase [steps, 4, B, ...]; the path-length noise y ~ N(0, I) [steps, B / shrink, H, W, C]."""
  m = batch // PL_SHRINK
  return {"x": rng.uniform(-1, 1, (steps, batch, res, res, channels)).astype(np.float32),
          "label": rng.integers(0, max(classes, 1), (steps, batch)).astype(np.int32),
          "z": rng.standard_normal((steps, len(PHASES), batch, z_dim)).astype(np.float32),
          "gen_label": rng.integers(0, max(classes, 1), (steps, len(PHASES), batch)).astype(np.int32),
          "pl_noise": rng.standard_normal((steps, m, res, res, channels)).astype(np.float32)}


def _torch_inputs(torch, d: dict, step: int, classes: int):
  onehot = lambda y: (torch.nn.functional.one_hot(torch.from_numpy(y).long(), classes).float()  # noqa: E731
                      if classes else torch.zeros([len(y), 0]))
  x = torch.from_numpy(np.ascontiguousarray(np.transpose(d["x"][step], (0, 3, 1, 2))))
  return (x, onehot(d["label"][step]), [torch.from_numpy(z) for z in d["z"][step]],
          [onehot(y) for y in d["gen_label"][step]])


def _state(prefix: str, **nets) -> dict:
  return {f"{prefix}/{name}.{k}": v.detach().cpu().numpy().astype(np.float32) for name, net in nets.items()
          for k, v in net.state_dict().items() if k.rsplit(".", 1)[-1] not in SKIP}


def make(repo_path: str, out_dir: str) -> None:
  torch, _, networks, _ = _official(repo_path)
  os.makedirs(out_dir, exist_ok=True)
  G, D, G_ema = _snapshot_networks(os.path.normpath(os.path.join(out_dir, FORWARD)), networks)
  classes, res, ch, z_dim = G.c_dim, G.img_resolution, G.img_channels, G.z_dim
  draws = _draws(np.random.default_rng(7), STEPS, BATCH, res, ch, z_dim, classes)
  run = _Run(repo_path, G, D, G_ema, BATCH)
  losses = {k: np.zeros(STEPS, np.float32) for k in LOSSES.values()}
  after, pl_mean = {}, np.zeros(STEPS, np.float32)
  for step in range(STEPS):
    pl = [np.ascontiguousarray(np.transpose(draws["pl_noise"][step], (0, 3, 1, 2)))]
    with _fed_randn_like(torch, pl):
      reports = run.iteration(*_torch_inputs(torch, draws, step, classes))
    for k, v in reports.items():
      losses[k][step] = v
    pl_mean[step] = float(run.loss.pl_mean)
    if step == 0:
      after.update(_state("step1", G=run.G, D=run.D))
  after.update(_state(f"step{STEPS}", G=run.G, D=run.D, G_ema=run.G_ema))
  losses["pl_mean"] = pl_mean
  toy.save_npz(out_dir, "inputs.npz", draws)
  toy.save_npz(out_dir, "after.npz", after)
  toy.save_npz(out_dir, "losses.npz", losses)
  toy.write_manifest(out_dir, {
      "model": "stylegan2", "kind": "train_step", "format": "stylegan2-ada", "start": FORWARD,
      "inputs": "inputs.npz", "after": "after.npz", "losses": "losses.npz", "steps": STEPS, "batch": BATCH,
      "after_steps": [1, STEPS], "tolerance": 1e-4,
      "layout": "inputs NHWC; z, gen_label [step, phase (Gmain, Greg, Dmain, Dreg), batch, ...]; after.npz "
                "'step{n}/{G,D,G_ema}.{official name}'; losses per step, 0 where a phase did not run",
      "settings": {"G_reg_interval": G_REG, "D_reg_interval": D_REG, "lr": LR, "betas": [0, 0.99], "eps": 1e-8,
                   "r1_gamma": GAMMA, "pl_weight": PL_WEIGHT, "pl_batch_shrink": PL_SHRINK, "pl_decay": PL_DECAY,
                   "ema_kimg": EMA_KIMG, "ema_rampup": EMA_RAMPUP, "style_mixing_prob": 0, "augment_pipe": None,
                   "noise_mode": "const"},
      "config": {"experiment": our_config()[0], "overrides": {**our_config()[1], "model.conditional": True,
                 "model.z_dim": 32, "model.w_dim": 32, "model.mapping_layers": 2, "model.channel_base": 256,
                 "model.channel_max": 32}},
      "official": {"repo": URL, "commit": toy.commit_of(repo_path),
                   "code": "training/loss.py StyleGAN2Loss.accumulate_gradients; the loop body of "
                           "training/training_loop.py (phases Gmain, Greg, Dmain, Dreg with mb_ratio Adam; G_ema)"},
  })


def time_official(repo_path: str, batch: int = 32, steps: int = 8, warmup: int = 2) -> dict:
  """Median seconds of one official training iteration (the four phases, with the parity's intervals 2: R1 and
  path length every other iteration, so `steps` should be even; G_ema) at runlocal width (our_config()'s
  networks: 16x16x1, z = w = 64, 8 mapping layers, channel_base 512, channel_max 64, unconditional, official
  initialization) on CPU, batch `batch`, torch's default thread count. Noise in the official 'random' mode."""
  torch, _, networks, _ = _official(repo_path)
  torch.manual_seed(0)
  G = networks.Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=16, img_channels=1,
                         mapping_kwargs=dict(num_layers=8),
                         synthesis_kwargs=dict(channel_base=512, channel_max=64, num_fp16_res=0, conv_clamp=256))
  D = networks.Discriminator(c_dim=0, img_resolution=16, img_channels=1, channel_base=512, channel_max=64,
                             num_fp16_res=0, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=4))
  run = _Run(repo_path, G, D, copy.deepcopy(G), batch)
  run.loss.G_synthesis = G.synthesis
  draws = _draws(np.random.default_rng(0), 1, batch, 16, 1, 64, 0)
  inputs = _torch_inputs(torch, draws, 0, 0)
  return toy.timed_iterations(torch, repo_path, batch, steps, warmup, lambda: run.iteration(*inputs))
