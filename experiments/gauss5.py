"""Five Gaussians on the unit circle (Sun et al. 2020's 5-Gaussian toy): JS-GAN vs RS-GAN.

  python scripts/train.py --config experiments/gauss5.py --workdir runs/gauss5
  python scripts/train.py --config experiments/gauss5.py:loss=rsgan --workdir runs/gauss5_rsgan

Data `gauss5`: modes at (cos 2πi/5, sin 2πi/5), variance 0.002 per axis, 2000 points each. Networks,
optimizer and schedule of the paper's script (experiments/_sun2020.py). Args: loss=NAME, runlocal.

Study (`nonsaturating` vs `rsgan`, seeds 0-9 of each as one population run):

  python scripts/sweep.py --config experiments/gauss5.py --sweep losses --root runs/gauss5_losses
  python scripts/compare.py runs/gauss5_losses --out runs/gauss5_losses/report \
      --metrics modes_covered,high_quality_fraction,mode_collapse,min_mode_fraction
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _sun2020 import toy_config, toy_sweeps  # noqa: E402


def get_config(arg=None):
  return toy_config("gauss5", arg)


def get_sweeps():
  return toy_sweeps()
