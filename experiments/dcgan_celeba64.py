"""DCGAN on CelebA at 64x64 (TFDS `celeb_a`, centre crop 108 then resize).

  tfds build celeb_a --file_format array_record    # once, with network and TensorFlow (for preparing only)
  python scripts/train.py --config experiments/dcgan_celeba64.py --workdir runs/dcgan_celeba64

The paper's 64x64 model (Radford et al. 2015, fig. 1): z 100 -> 4x4x1024 -> 8x8x512 ->
16x16x256 -> 32x32x128 -> 64x64x3, 5x5 stride-2 kernels; D 128-256-512-1024; batch 128,
Adam 2e-4/0.5; 20k steps (~16 epochs). The paper reports samples, not a score, for faces;
target: faces comparable to the paper's figures. Args: loss=NAME, runlocal.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _dcgan import dcgan_config  # noqa: E402


def get_config(arg=None):
  return dcgan_config("celeba", resolution=64, width=128, total_steps=20_000, arg=arg)
