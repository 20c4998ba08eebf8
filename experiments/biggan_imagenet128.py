"""BigGAN on ImageNet at 128x128 (Brock, Donahue & Simonyan 2019), the paper's full model.

  tfds build imagenet2012 --file_format array_record    # once (manual download of the ILSVRC2012 tars)
  python scripts/train.py --config experiments/biggan_imagenet128.py --workdir runs/biggan_imagenet128
  python scripts/train.py --config experiments/biggan_imagenet128.py:runlocal --workdir runs/biggan_local

Model (gan_jax/models/biggan.py defaults): G_ch = D_ch = 96, z 120 split into 6 chunks of 20
(hierarchical latents), shared class embedding of 128, conditional BN, self-attention at 64x64,
projection D, SN in G and D, orthogonal init: G 70,433,988 and D 87,982,370 parameters, as
BigGAN-PyTorch's launch_BigGAN_bs256x8.sh model and compare_gan's resnet_biggan.py docstring
(the paper's table 1, row 8 lists 158.3M for G + D).

Training, the paper's settings:
- hinge loss (sec. 3, SA-GAN's objective); Adam b1 = 0, b2 = 0.999 (SA-GAN's, BigGAN-PyTorch's
  defaults); G lr 5e-5, D lr 2e-4, 2 D steps per G step (sec. 3: SA-GAN's rates halved, two D steps;
  BigGAN-PyTorch's README, "Key Differences", restates them as "BigGAN's G_lr=5e-5, D_lr=2e-4,
  num_D_steps=2"); batch 2048 (table 1); orthogonal regularization beta = 1e-4 on G's weights but its
  shared embedding (sec. 3.1; the trainer's `reg.ortho`, BigGAN-PyTorch's `utils.ortho` semantics);
  G EMA with decay 0.9999 (sec. 3); cross-replica BatchNorm (sec. 3; BN statistics over the global
  batch: what jit over a sharded batch does).
- Where the paper is silent, BigGAN-PyTorch's launch_BigGAN_bs256x8.sh: Adam eps 1e-6, SN eps 1e-6,
  BN eps 1e-5, G sampled in eval mode (running BN statistics, `--G_eval_mode`). That script itself
  uses SA-GAN's rates instead (G 1e-4, D 4e-4, one D step, no ortho reg: its README, "Key
  Differences"); `recipe=pytorch` selects them.
- Length: 150k G steps, the length BigGAN-PyTorch's README gives for its full run ("15 days to
  train to 150k iterations" on 8 V100); the paper's ImageNet runs are stopped early at collapse
  (table 1's iteration column), so keep the best checkpoint by FID, not the last.
- BigGAN-PyTorch's EMA copies G before step 20,000 (launch_BigGAN_bs256x8.sh `--ema_start 20000`:
  `ema.start_step`), and its loop's forward passes (train_fns.py GAN_training_function, BigGAN.py G_D):
  D sees each D step's fakes and reals in one call on [fakes; reals] (no --split_D: `model.d_joint`),
  and G and D stay in train mode throughout, so the D step's G(z) moves G's BN statistics and u vectors
  and the G step's D(G(z)) moves D's u vectors (`model.state_updates="all"`).

Published (ImageNet 128x128, Inception Score / FID): IS 166.5 and FID 7.4 (the paper's abstract,
with the truncation trick: `--config.sample.truncation`); without truncation the paper's table 2
gives FID 8.7 / IS 98.8 (StudioGAN quotes this 8.7 as the paper's bs2048 number and
reproduces 8.35). BigGAN-PyTorch's released run reached TF IS 97.35 (its README).

Args: recipe=paper|pytorch, runlocal (the same model family at toy width on 32x32 digits: G_ch = D_ch = 4,
BigGAN-PyTorch's 32x32 arch with hierarchical z, shared embedding and attention at 16x16, a few
hundred steps on 2 CPU cores, digit_fd logged every eval.every steps).
"""
from gan_jax.config import base_config, parse_arg
from gan_jax.errors import ConfigError

RECIPES = ("paper", "pytorch")


def get_config(arg=None):
  a = parse_arg(arg, recipe="paper", runlocal=False)
  if a.recipe not in RECIPES:
    raise ConfigError(f"experiment arg recipe: unknown value {a.recipe!r}; valid: {', '.join(RECIPES)}")
  c = base_config("biggan")
  c.data.name = "tfds"
  c.data.tfds_name = "imagenet2012"
  c.data.resolution = 128
  c.model.update(conditional=True, d_joint=True, state_updates="all")
  c.loss.name = "hinge"
  c.batch_size = 2048
  c.total_steps = 150_000
  paper = a.recipe == "paper"
  c.n_critic = 2 if paper else 1
  c.optim.g.update(name="adam", lr=5e-5 if paper else 1e-4, b1=0.0, b2=0.999, eps=1e-6)
  c.optim.d.update(name="adam", lr=2e-4 if paper else 4e-4, b1=0.0, b2=0.999, eps=1e-6)
  c.reg.ortho = 1e-4 if paper else 0.0
  c.ema.decay = 0.9999
  c.ema.start_step = 20_000
  c.log_every = 100
  c.sample_every = c.ckpt_every = 2000
  c.eval.every = 2000
  if a.runlocal:
    c.data.update(name="digits", tfds_name="", resolution=32, split="train", channels=0)
    c.model.update(g_width=4, d_width=4, attention=16)
    c.batch_size = 32
    c.total_steps = 300
    c.ema.update(decay=0.99, start_step=0)   # a 300-step toy: the EMA from the start
    c.log_every = 25
    c.eval.every = 100
    c.sample_every = c.ckpt_every = 100
  return c
