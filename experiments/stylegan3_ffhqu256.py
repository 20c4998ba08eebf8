"""StyleGAN3-T / -R on FFHQ-U at 256x256 (Karras et al. 2021, "Alias-Free Generative Adversarial
Networks"; training setup of NVlabs/stylegan3 `docs/configs.md`, "FFHQ-U ablations at 256x256").

  python scripts/train.py --config experiments/stylegan3_ffhqu256.py:cfg=stylegan3-t \\
      --config.data.path=~/datasets/ffhqu256 --workdir runs/stylegan3_t_ffhqu256
  python scripts/train.py --config experiments/stylegan3_ffhqu256.py:cfg=stylegan3-r \\
      --config.data.path=~/datasets/ffhqu256 --workdir runs/stylegan3_r_ffhqu256
  python scripts/train.py --config experiments/stylegan3_ffhqu256.py:cfg=stylegan3-t,resolution=1024 \\
      --config.data.path=~/datasets/ffhq --workdir runs/stylegan3_t_ffhq1024
  python scripts/train.py --config experiments/stylegan3_ffhqu256.py:runlocal --workdir runs/stylegan3_local

`data.path`: FFHQ-U (unaligned FFHQ, the paper's appendix B: 70,000 crops re-taken from the
in-the-wild FFHQ sources without aligning the faces) at 256x256; with resolution=1024, the
aligned FFHQ at 1024x1024.

Official commands (NVlabs/stylegan3 docs/configs.md, "Configurations used in StyleGAN3 paper"):
- FFHQ-U 256 (the paper's table 2 ablations): `--cfg=stylegan3-t|stylegan3-r --gpus=8 --batch=64
  --gamma=1 --mirror=1 --aug=noaug --cbase=16384 --dlr=0.0025`
- FFHQ 1024 (table 1): `--cfg=stylegan3-t|stylegan3-r --gpus=8 --batch=32 --gamma=32.8 --mirror=1
  --aug=noaug`

Training setup (train.py for cfg != stylegan2, training_loop.py defaults): Adam b1 0, b2 0.99,
eps 1e-8, G lr 0.0025, D lr `--dlr` (0.0025 at 256, the default 0.002 at 1024); non-saturating
logistic loss; lazy R1 (gamma/2 · |∇D(x)|², every 16 D steps); no path-length regularization and
no style mixing (train.py enables both for cfg=stylegan2 only); minibatch std group 4 (the
`--mbstd-group` default); EMA half-life batch · 10/32 kimg (20 at batch 64, 10 at 32) with
ramp-up 0.05; magnitude EMA decay 0.5^(batch / 20,000); 2 mapping layers; 25,000 kimg.
Networks: G channel_base = cbase, channel_max 512, 3x3 convolutions (T); cbase · 2, 1024 and 1x1
convolutions with radial filters (R); D always StyleGAN2's with cbase and 512. Parameters, equal
to the official networks (tests/test_model_stylegan3.py): FFHQ-U 256: T G 23,320,443 / R G
15,779,565, D 24,001,089; FFHQ 1024: T G 22,313,167 / R G 15,093,151, D 29,012,513.

Published results (paper; fid50k_full, EQ-T and EQ-R in dB):
- FFHQ-U 256, table 2: StyleGAN3-T (config T) FID 4.62, EQ-T 63.01, EQ-R 13.12; StyleGAN3-R
  (config R) FID 4.50, EQ-T 66.65, EQ-R 40.48 (StyleGAN2 at the same setting: FID 5.14).
- FFHQ 1024, table 1: StyleGAN3-T FID 2.79, StyleGAN3-R FID 3.07 (StyleGAN2 2.70).

Differences from the official run: no dataset x-flips (`--mirror=1`; the data pipeline has none
yet), no mixed precision, no R config D-input blur (train.py's blur_init_sigma 10 faded out over
the first batch · 200/32 kimg, which the trainer has no hook for), and w_avg and the magnitude
EMAs are updated by the G step's generator pass (the official code updates them in the D step's
pass). Lazy R1 scales as in experiments/stylegan2_ffhq256.py (k-scaled penalty every k-th D step,
no lr/beta correction needed).

Args: cfg=stylegan3-t|stylegan3-r, resolution=256|1024, runlocal (a toy-width StyleGAN3-T on 16x16
digits: 4 layers of 32 down to 16 channels on 24x24 canvases, 200 steps, digit_fd every eval.every steps).
"""
from gan_jax.config import base_config, parse_arg
from gan_jax.errors import ConfigError

CFGS = {
    # name: G channel multiplier, G channel_max, conv kernel, radial filters (train.py)
    "stylegan3-t": dict(mult=1, cmax=512, kernel=3, radial=False),
    "stylegan3-r": dict(mult=2, cmax=1024, kernel=1, radial=True),
}
SETUPS = {
    # resolution: cbase, batch, gamma, D lr (docs/configs.md, the paper's configurations)
    256: dict(cbase=16384, batch=64, gamma=1.0, dlr=0.0025),
    1024: dict(cbase=32768, batch=32, gamma=32.8, dlr=0.002),
}
TOTAL_KIMG = 25_000


def get_config(arg=None):
  a = parse_arg(arg, cfg="stylegan3-t", resolution=256, runlocal=False)
  if a.cfg not in CFGS:
    raise ConfigError(f"experiment arg cfg: unknown value {a.cfg!r}; valid: {', '.join(CFGS)}")
  if a.resolution not in SETUPS:
    raise ConfigError(f"experiment arg resolution: unknown value {a.resolution!r}; valid: 256, 1024")
  g, s = CFGS[a.cfg], SETUPS[a.resolution]
  c = base_config("stylegan3")
  c.data.name = "folder"
  c.data.resolution = a.resolution
  c.data.channels = 3
  c.model.update(z_dim=512, z_dist="normal", w_dim=512, mapping_layers=2, mapping_lr_mul=0.01,
                 channel_base=s["cbase"] * g["mult"], channel_max=g["cmax"], d_channel_base=s["cbase"],
                 d_channel_max=512, conv_kernel=g["kernel"], use_radial_filters=g["radial"], conv_clamp=256,
                 magnitude_ema_beta=0.5 ** (s["batch"] / 20_000), style_mixing_prob=0.0, w_avg_beta=0.998,
                 d_architecture="resnet", mbstd_group_size=4, mbstd_num_channels=1)
  c.loss.name = "nonsaturating"
  c.batch_size = s["batch"]
  c.total_steps = TOTAL_KIMG * 1000 // s["batch"]
  c.optim.g.update(name="adam", lr=0.0025, b1=0.0, b2=0.99, eps=1e-8)
  c.optim.d.update(name="adam", lr=s["dlr"], b1=0.0, b2=0.99, eps=1e-8)
  c.reg.update(r1=s["gamma"], lazy_every=16, pl_weight=0.0)
  c.ema.halflife_kimg = s["batch"] * 10 / 32
  c.ema.rampup = 0.05
  c.log_every = 100
  c.sample_every = c.ckpt_every = 200_000 // s["batch"]
  if a.runlocal:
    c.data.name = "digits"
    c.data.resolution = 16
    c.data.channels = 0
    # 4 layers (+ ToRGB; the last two critically sampled) on 24x24 canvases (margin 4) at rate 16
    # (all rates cap at the resolution), 32 channels falling to 16 as the cutoff rises from 2 to 8;
    # D as stylegan2_ffhq256's runlocal. (6 layers with the official margin 10 train ~6x slower on CPU.)
    c.model.update(z_dim=32, w_dim=32, channel_base=256, channel_max=32, num_layers=4, margin_size=4,
                   d_channel_base=512, d_channel_max=64, conv_impl="xla")
    c.batch_size = 32
    c.model.magnitude_ema_beta = 0.5 ** (c.batch_size / 20_000)
    c.total_steps = 200
    c.optim.d.lr = 0.0025
    # As stylegan2_ffhq256's runlocal: R1 0.05 (digits in [-1, 1] at 16x16), EMA 10 kimg, ramp-up 0.05.
    c.reg.r1 = 0.05
    c.ema.halflife_kimg = 10.0
    c.log_every = 25
    c.eval.every = 100
    c.sample_every = c.ckpt_every = 100
  return c
