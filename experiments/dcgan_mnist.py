"""DCGAN on MNIST (TFDS `mnist`), 32x32 greyscale.

  tfds build mnist --file_format array_record    # once, with network and TensorFlow (for preparing only)
  python scripts/train.py --config experiments/dcgan_mnist.py --workdir runs/dcgan_mnist

Radford et al. 2015 settings (batch 128, Adam 2e-4/0.5, z 100-d uniform, 5x5 kernels), three
stride-2 stages (ngf = ndf = 64), 25 epochs (~11.7k steps). The paper reports no number for
MNIST; target: sharp digits of all classes (compare the grid) and, once issue-6 metrics land,
FID against the test split. Args: loss=NAME, runlocal.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _dcgan import dcgan_config  # noqa: E402


def get_config(arg=None):
  return dcgan_config("mnist", resolution=32, width=64, total_steps=11_700, arg=arg)
