"""DCGAN on CIFAR-10 (TFDS `cifar10`), 32x32 RGB.

  tfds build cifar10 --file_format array_record    # once, with network and TensorFlow (for preparing only)
  python scripts/train.py --config experiments/dcgan_cifar10.py --workdir runs/dcgan_cifar10

Radford et al. 2015 layer spec at 32x32: G 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x3 (5x5,
stride 2), D the mirror image (ngf = ndf = 128), batch 128, Adam 2e-4/0.5, 100k steps.
Reference number: StudioGAN reports FID 48.29 on CIFAR-10 for its DCGAN (a 4x4-kernel variant,
not this exact spec); the Radford paper reports only CIFAR-10 feature-transfer accuracy.
Args: loss=NAME, runlocal.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _dcgan import dcgan_config  # noqa: E402


def get_config(arg=None):
  return dcgan_config("cifar10", resolution=32, width=128, total_steps=100_000, arg=arg)
