"""R3GAN on ImageNet at 64x64, class-conditional (Huang et al. 2024, config E).

Official launch (github.com/brownvc/R3GAN README):

  python train.py --outdir=./training-runs --data=./datasets/imagenet-64x64.zip --gpus=64 --batch=4096 \\
      --mirror=1 --aug=1 --cond=1 --preset=ImageNet-64 --tick=1 --snap=200

Ours (TFDS `imagenet_resized/64x64`, the downsampled ImageNet of Chrabaszcz et al. 2017, prepared once
with `tfds build`; the official zip is made with StyleGAN's dataset_tool from its own copy):

  python scripts/train.py --config experiments/r3gan_imagenet64.py --workdir runs/r3gan_imagenet64

Preset `ImageNet-64` of the official train.py: widths
1536, 1536, 1536, 1536, 1536 (4x4 -> 64x64; D mirrored), 2 blocks per stage,
cardinality 96 (group size 32 at expansion 2), z 64-d, G class embedding 64-d, D class embedding
1536-d (projection); batch 4096; Adam beta1 0, lr 2e-4 -> 5e-5, beta2 0.9 -> 0.99, R1 = R2
weight gamma 1 -> 0.1, EMA half-life 0 -> 50 Mimg, cosine ramps over 200 Mimg then held.
Duration 1000 Mimg (the paper's Table 9 as quoted in R3GAN issue #18): 244,141 steps of 4096.
G 103,570,432 and D 107,205,120 parameters (official networks instantiated with this preset and
1000 classes). Augmentation: ADA `bgc` + cutout, probability 0 -> 0.4 on the
same cosine (`augment.*`). Not reproduced yet: the dataset x-flips and the bfloat16 stages. Published FID-50k 2.09
(huggingface.co/brownvc/R3GAN-ImgNet-64x64 model card).

Args: kimg=N, runlocal (digits at 16x16 conditional on the 10 classes, widths 48, 300 steps of 32; learning rates 5x the
paper's at this toy size, see r3gan.apply_runlocal).
"""
import math

from gan_jax.config import base_config, parse_arg
from gan_jax.models import r3gan


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False, kimg=1_000_000.0)
  c = base_config("r3gan")
  r3gan.apply_preset(c, "ImageNet-64")
  c.data.name = "tfds"
  c.data.tfds_name = "imagenet_resized/64x64"
  c.total_steps = math.ceil(a.kimg * 1000 / c.batch_size)
  c.log_every = 100
  c.sample_every = c.ckpt_every = 5000
  if a.runlocal:
    c.data.tfds_name = ""
    r3gan.apply_runlocal(c, widths=(48, 48, 48), cardinalities=(6, 6, 6))
  return c
