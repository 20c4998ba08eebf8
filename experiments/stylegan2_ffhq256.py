"""StyleGAN2 on FFHQ at 256x256 (Karras et al. 2020; training setup of NVlabs/stylegan2-ada-pytorch).

  python scripts/train.py --config experiments/stylegan2_ffhq256.py \\
      --config.data.path=~/datasets/ffhq256 --workdir runs/stylegan2_ffhq256
  python scripts/train.py --config experiments/stylegan2_ffhq256.py:cfg=stylegan2,resolution=1024 \\
      --config.data.path=~/datasets/ffhq --workdir runs/stylegan2_ffhq1024
  python scripts/train.py --config experiments/stylegan2_ffhq256.py:runlocal --workdir runs/stylegan2_local

`data.path`: the 70,000 FFHQ images as PNG files, downscaled to 256x256 with a box filter as the
ADA repo's README prescribes (`dataset_tool.py --resize-filter=box`; Lanczos images give FIDs
about 1 higher for the same network, stylegan2-ada-pytorch issue #283).

Configurations (stylegan2-ada-pytorch `train.py`, `cfg_specs`; all with Adam b1 0, b2 0.99, eps 1e-8,
non-saturating logistic loss, lazy R1 every 16 D steps, path-length regularization weight 2 every
4 G steps on half the batch with decay 0.01, style mixing 0.9, 512-d z and w, conv_clamp 256,
25,000 kimg):
- `cfg=paper256` (default): the ADA paper's FFHQ/LSUN-Cat 256x256 setup: channel_base 16384
  (fmaps 0.5: 64 channels at 256x256, 512 from 32x32 down), 8 mapping layers, batch 64, mbstd
  group 8, lr 0.0025, R1 gamma 1, EMA half-life 20 kimg without ramp; 390,625 steps.
  G 24,767,458 and D 24,001,089 parameters, equal to the official networks.
- `cfg=stylegan2`: config F as the ADA repo reproduces it ("Reproduce results for StyleGAN2
  config F at 1024x1024"): channel_base 32768, batch 32, mbstd group 4, lr 0.002, gamma 10,
  EMA 10 kimg without ramp; 781,250 steps. Parameters: G 30,034,338 / D 28,864,129 at 256x256,
  G 30,370,060 / D 29,012,513 at 1024x1024 (`resolution=1024`), equal to the official networks.

Published FIDs (fid50k_full, 50k samples against all training images, no truncation):
- paper256 on FFHQ-70k at 256x256: 5.28 without augmentation, the run this file reproduces, and
  4.30 with ADA (ADA paper, Karras et al. 2020b, fig. 7c; 4.30 confirmed for the released
  ffhq70k-paper256-ada.pkl with box-filtered data in stylegan2-ada-pytorch issue #283; 5.28 as
  quoted in Zhendong-Wang/Diffusion-GAN issue #30). ADA itself is not implemented here.
- config F on FFHQ at 1024x1024: 2.84 (StyleGAN2 paper, table 1, config F). No FID of config F at
  256x256 on FFHQ is published.

The training step is the official loop's (training_loop.py, loss.py `StyleGAN2Loss`; tested step
for step against it, tests/test_step_parity_stylegan2.py): G's update before D's (`update_order=g_first`:
phases Gmain, Greg, Dmain, Dreg), lazy R1 and path length as optimizer steps of their own on the
penalty alone (`reg.lazy_form=separate`; the path-length step on latents of its own), with Adam's lr
scaled by c = k/(k+1) and its betas raised to c (`mb_ratio`), and w_avg moved by every training pass
of the mapping network (`model.g_stats=all_passes`: G's, the path-length pass's and the D step's).
R1 is applied as gamma/2 · |∇D|² (`reg.r1` = gamma, loss.py `r1_gamma / 2`).

Differences from the official run: no mixed precision (the official cfgs run the 4 highest
resolutions in fp16); a conditional run's fake labels are uniform over the classes (the official
loop draws them from the dataset's labels, i.e. with the class frequencies).

Args: cfg=paper256|stylegan2, resolution=256 (1024 for config F's own setting), runlocal
(a toy-width StyleGAN2 on 16x16 digits: a few hundred steps on 2 CPU cores with every
regularizer of the full run, digit_fd logged every eval.every steps).
"""
from gan_jax.config import base_config, parse_arg
from gan_jax.errors import ConfigError

CFGS = {
    # name: channel_base, batch, mbstd group, lr, R1 gamma, EMA half-life kimg (train.py cfg_specs)
    "paper256": dict(channel_base=16384, batch=64, mbstd=8, lr=0.0025, gamma=1.0, ema=20.0),
    "stylegan2": dict(channel_base=32768, batch=32, mbstd=4, lr=0.002, gamma=10.0, ema=10.0),
}
TOTAL_KIMG = 25_000


def get_config(arg=None):
  a = parse_arg(arg, cfg="paper256", resolution=256, runlocal=False)
  if a.cfg not in CFGS:
    raise ConfigError(f"experiment arg cfg: unknown value {a.cfg!r}; valid: {', '.join(CFGS)}")
  s = CFGS[a.cfg]
  c = base_config("stylegan2")
  c.data.name = "folder"
  c.data.resolution = a.resolution
  c.data.channels = 3
  c.model.update(z_dim=512, z_dist="normal", w_dim=512, mapping_layers=8, mapping_lr_mul=0.01,
                 channel_base=s["channel_base"], channel_max=512, conv_clamp=256, style_mixing_prob=0.9,
                 w_avg_beta=0.995, d_architecture="resnet", mbstd_group_size=s["mbstd"], mbstd_num_channels=1)
  c.model.g_stats = "all_passes"
  c.loss.name = "nonsaturating"
  c.update_order = "g_first"
  c.batch_size = s["batch"]
  c.total_steps = TOTAL_KIMG * 1000 // s["batch"]
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=s["lr"], b1=0.0, b2=0.99, eps=1e-8)
  c.reg.update(r1=s["gamma"], lazy_every=16, pl_weight=2.0, pl_every=4, pl_decay=0.01, pl_batch_shrink=2,
               lazy_form="separate")
  c.ema.halflife_kimg = s["ema"]
  c.ema.rampup = 0.0
  # The official snapshots every 50 ticks of 4 kimg.
  c.log_every = 100
  c.sample_every = c.ckpt_every = 200_000 // s["batch"]
  if a.runlocal:
    c.data.name = "digits"
    c.data.resolution = 16
    c.data.channels = 0
    # Channels 64 at 4x4 and 8x8, 32 at 16x16; 64-d z and w.
    # Plain XLA convolutions: at this width they compile and run faster on CPU than the sub-pixel
    # forms "auto" picks (measured: compile 109 s vs 147 s, step 0.63 s vs 0.79 s on a loaded 2-core machine).
    c.model.update(z_dim=64, w_dim=64, channel_base=512, channel_max=64, mbstd_group_size=4, conv_impl="xla")
    c.batch_size = 32
    c.total_steps = 400
    # R1 gamma by the ADA `auto` heuristic 0.0002·res²/batch would be 0.0016 at 16x16; digits in
    # [-1, 1] at this size train well with a larger one.
    c.reg.r1 = 0.05
    # EMA as ADA's `auto` cfg at batch 32: 10 kimg with ramp-up 0.05 (half-life <= 5% of the images seen).
    c.ema.halflife_kimg = 10.0
    c.ema.rampup = 0.05
    c.log_every = 25
    c.eval.every = 200
    c.sample_every = c.ckpt_every = 200
  return c
