"""R3GAN on FFHQ at 256x256, unconditional (Huang et al. 2024, config E).

Official launch (github.com/brownvc/R3GAN README):

  python train.py --outdir=./training-runs --data=./datasets/ffhq-256x256.zip --gpus=8 --batch=256 \\
      --mirror=1 --aug=1 --preset=FFHQ-256 --tick=1 --snap=200

Ours, on a folder of the 70k FFHQ images (centre-cropped and resized to 256x256 by the loader):

  python scripts/train.py --config experiments/r3gan_ffhq256.py --workdir runs/r3gan_ffhq256 \\
      --config.data.path=/data/ffhq

Preset `FFHQ-256` of the official train.py: G widths 768, 768, 768, 768, 384, 192, 96 (4x4 -> 256x256;
D mirrored), 2 blocks per stage, cardinality 96, 96, 96, 96, 48, 24, 12 (group size 16), z 64-d;
batch 256; Adam beta1 0, lr 2e-4 -> 5e-5, beta2 0.9 -> 0.99, R1 = R2 weight gamma 150 -> 15, EMA
half-life 0 -> 0.5 Mimg, cosine ramps over 20 Mimg then held. G 23,057,952 and D 23,009,568
parameters (official networks instantiated with this preset). The paper's training duration for FFHQ
(its Table 9) could not be read from the sources available here and the official CLI trains until
stopped: the default `kimg` is the 20 Mimg over which the ramps run; pass kimg=N for a longer run.
Augmentation: ADA `bgc` + cutout, probability 0 -> 0.3 on the same cosine
(`augment.*`). Not reproduced yet: the dataset x-flips and the bfloat16 stages. Published FID-50k
2.75 (huggingface.co/brownvc/R3GAN-FFHQ-256x256 model card).

Args: kimg=N, runlocal (unconditional digits at 16x16, widths 32, 16, 8 narrowing towards the
image as the preset does, 300 steps of 32; learning rates 5x the
paper's at this toy size, see r3gan.apply_runlocal).
"""
import math

from gan_jax.config import base_config, parse_arg
from gan_jax.models import r3gan


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False, kimg=20_000.0)
  c = base_config("r3gan")
  r3gan.apply_preset(c, "FFHQ-256")
  c.data.name = "folder"
  c.total_steps = math.ceil(a.kimg * 1000 / c.batch_size)
  c.log_every = 100
  c.sample_every = c.ckpt_every = 5000
  if a.runlocal:
    r3gan.apply_runlocal(c, widths=(32, 16, 8), cardinalities=(4, 2, 1))
  return c
