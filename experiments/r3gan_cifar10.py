"""R3GAN on CIFAR-10, class-conditional (Huang et al. 2024, config E; the official README's command).

Official launch (github.com/brownvc/R3GAN README, "To reproduce the main results"):

  python train.py --outdir=./training-runs --data=./datasets/cifar10.zip --gpus=8 --batch=512 \\
      --mirror=1 --aug=1 --cond=1 --preset=CIFAR10 --tick=1 --snap=200

Ours (a pod or a GPU host; `gan_jax.models.r3gan.PRESETS["CIFAR10"]` holds the preset):

  python scripts/train.py --config experiments/r3gan_cifar10.py --workdir runs/r3gan_cifar10

Preset `CIFAR10` of the official train.py: 4 stages of 768 channels (4x4 -> 32x32), 2 residual blocks
per stage, cardinality 96 (group size 16 at expansion 2), z 64-d, G class embedding 64-d, D class
embedding 768-d (projection); batch 512; Adam beta1 0, eps 1e-8, lr 2e-4 -> 5e-5 and beta2 0.9 ->
0.99, R1 = R2 weight gamma 0.05 -> 0.005, EMA half-life 0 -> 5 Mimg, all cosine ramps over 20 Mimg
then held. Duration 250 Mimg (the paper's Table 9 as quoted by the authors in R3GAN issue #18; the
CLI default is "infinite"): 488,282 steps of 512. G 20,781,952 and D 21,280,512 parameters (the
official networks instantiated with this preset). The augmentation (ADA `bgc` pipeline + cutout,
probability 0 -> 0.55 on the same cosine) is on (`augment.*`, gan_jax/augment); not reproduced yet:
the x-flip mirror of the dataset and the bfloat16 stages. Published FID-50k 1.96
(brownvc/R3GAN-CIFAR10 model card / the paper's CIFAR-10 table).

Args: kimg=N (training duration in thousands of images), runlocal (digits at 16x16, widths 32,
conditional on the 10 digit classes, 300 steps of 32: a laptop-sized run of the same recipe; learning rates 5x the
paper's at this toy size, see r3gan.apply_runlocal).
"""
import math

from gan_jax.config import base_config, parse_arg
from gan_jax.models import r3gan


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False, kimg=250_000.0)
  c = base_config("r3gan")
  r3gan.apply_preset(c, "CIFAR10")
  c.data.name = "cifar10"
  c.total_steps = math.ceil(a.kimg * 1000 / c.batch_size)
  c.log_every = 100
  c.sample_every = c.ckpt_every = 5000
  if a.runlocal:
    r3gan.apply_runlocal(c, widths=(32, 32, 32), cardinalities=(4, 4, 4))
  return c
