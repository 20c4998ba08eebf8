"""BigGAN on CIFAR-10 (TFDS `cifar10`, 32x32, 10 classes), as BigGAN-PyTorch's CIFAR script.

  tfds build cifar10 --file_format array_record    # once, with network and TensorFlow (for preparing only)
  python scripts/train.py --config experiments/biggan_cifar10.py --workdir runs/biggan_cifar10
  python scripts/train.py --config experiments/biggan_cifar10.py:runlocal --workdir runs/biggan_cifar10_local

The paper (Brock et al. 2019) gives no CIFAR-10 recipe beyond its results table; the authors'
code does: scripts/launch_cifar_ema.sh of ajbrock/BigGAN-PyTorch, followed here key by key:
- model: BigGAN-PyTorch's 32x32 arch (G_arch[32]/D_arch[32]) with G_ch = D_ch = 64 (the defaults),
  dim_z 128, no shared embedding and no hierarchical z (neither --G_shared nor --hier: the
  conditional BNs read per-class gain/bias tables), no self-attention (--G_attn 0 --D_attn 0),
  N(0, 0.02) init (--G_init N02 --D_init N02), SN eps 1e-8 and BN eps 1e-5 (the defaults):
  G 4,304,387 and D 4,207,361 parameters (the official model instantiated with these flags).
- training: hinge loss; Adam b1 0, b2 0.999, eps 1e-8 (defaults); G lr 2e-4, D lr 2e-4; 4 D steps
  per G step (--num_D_steps 4); batch 50; no orthogonal regularization (--G_ortho 0.0); EMA of G
  with decay 0.9999 (--ema --use_ema), a copy of G before step 1000 (--ema_start 1000: `ema.start_step`).
  500 epochs (--num_epochs 500): each G step draws batch x num_D_steps = 200 real images, 250 G steps
  per epoch, 125,000 G steps.
- the official loop's forward passes (train_fns.py GAN_training_function, BigGAN.py G_D): D sees each
  D step's fakes and reals in one call on [fakes; reals] (no --split_D: `model.d_joint`), and G and D
  stay in train mode throughout, so the D step's G(z) moves G's BN statistics and u vectors and the
  G step's D(G(z)) moves D's u vectors (`model.state_updates="all"`).

Published: BigGAN on CIFAR-10, IS 9.22 and FID 14.73 (the paper's CIFAR-10 results table; 14.73 is
also the paper value StudioGAN's reproducibility table quotes, which reaches FID 4.16 with its own
protocol, 50k samples against the training set). BigGAN-PyTorch publishes no CIFAR-10 score.

Args: runlocal (the same model at toy width, G_ch = D_ch = 4, on 32x32 digits: a few hundred steps
on 2 CPU cores, digit_fd logged every eval.every steps).
"""
from gan_jax.config import base_config, parse_arg


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False)
  c = base_config("biggan")
  c.data.name = "cifar10"
  c.data.resolution = 32
  c.model.update(conditional=True, z_dim=128, g_width=64, d_width=64, shared=False, hier=False, attention=0,
                 init="N02", sn_eps=1e-8, bn_eps=1e-5, d_joint=True, state_updates="all")
  c.loss.name = "hinge"
  c.batch_size = 50
  c.n_critic = 4
  c.total_steps = 125_000
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=2e-4, b1=0.0, b2=0.999, eps=1e-8)
  c.reg.ortho = 0.0
  c.ema.decay = 0.9999
  c.ema.start_step = 1000
  c.log_every = 100
  c.sample_every = c.ckpt_every = 2000
  c.eval.every = 5000
  if a.runlocal:
    c.data.update(name="digits", resolution=32, split="train", channels=0)
    c.model.update(g_width=4, d_width=4)
    c.batch_size = 32
    c.total_steps = 300
    c.ema.update(decay=0.99, start_step=0)   # a 300-step toy: the EMA from the start
    c.log_every = 25
    c.eval.every = 100
    c.sample_every = c.ckpt_every = 100
  return c
