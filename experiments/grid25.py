"""Grid of 25 Gaussians (PacGAN protocol, Lin et al. 2018, sec. 5.1 and Table 1).

  python scripts/train.py --config experiments/grid25.py --workdir runs/grid25
  python scripts/train.py --config experiments/grid25.py:runlocal --workdir runs/grid25_local

Protocol: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05, 100k training points; same networks,
optimizer and schedule as ring8 (see experiments/ring8.py).
Target (PacGAN Table 1, GAN baseline, 10 runs): 17.3 ± 0.8 modes, 94.8 ± 0.7 % high quality.
Args: loss=NAME, runlocal. Sweeps: those of ring8 (`losses`, `losses_population`,
`losses_x_penalties` with gamma 0.7, the ring's weight relative to the squared mode spacing, `smoke`).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ring8 import mixture_config, mixture_sweeps  # noqa: E402


def get_config(arg=None):
  return mixture_config("grid25", arg)


def get_sweeps():
  return mixture_sweeps("grid25")
