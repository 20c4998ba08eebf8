"""DCGAN on scikit-learn's handwritten digits: the default experiment (real data, no download).

  python scripts/train.py --config experiments/dcgan_digits.py --workdir runs/dcgan_digits

1797 real 8x8 digits upsampled to 16x16; DCGAN with two stride-2 stages (ngf = ndf = 32),
batch 64, 1500 steps (~53 epochs), EMA generator (half-life 5k images). Logs `digit_fd` (the
Fréchet distance in the project's digit-classifier features, a CPU-scale metric, not FID) at
step 0 and every 500 steps.
Target: recognisable digits of every class in the grid within 5 minutes on 2 CPU cores
(see the README's results for the measured time). Args: loss=NAME, runlocal.

Sweep `losses` (5 losses x seeds 0-2):

  python scripts/sweep.py --config experiments/dcgan_digits.py --sweep losses --root runs/digits_losses
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _dcgan import dcgan_config  # noqa: E402


def get_config(arg=None):
  return dcgan_config("digits", resolution=16, width=32, total_steps=1500, arg=arg, batch_size=64,
                      log_every=50, every=500, ema_halflife_kimg=5.0,
                      settings={"eval.every": 500, "eval.num_samples": 2000}, local_settings={"eval.every": 0})


def get_sweeps():
  return {"losses": {"loss.name": ["nonsaturating", "hinge", "least_squares", "rsgan", "rpgan"],
                     "seed": [0, 1, 2]}}
