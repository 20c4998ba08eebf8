"""Two Gaussian clusters at (±1, 0) (Sun et al. 2020's 2-cluster case): JS-GAN vs RS-GAN.

  python scripts/train.py --config experiments/two_cluster.py --workdir runs/two_cluster

Data `two_cluster`: the 2-mode case of the paper's toy loader, modes (1, 0) and (-1, 0), variance
0.002 per axis, equal weights (5000 points each). Networks, optimizer and schedule of the paper's
5-Gaussian script (experiments/_sun2020.py). The bad basin in its simplest form: a generator with
every sample in one cluster. The paper's separate 1-D illustration (GAN2_2Cluster.py: two uniform
clusters of width 0.3 at 0 and 4, 100 points, sigmoid D of width 10, tanh G of width 5, SGD with
momentum, 10 D and 10 G steps per iteration) is not this experiment. Args: loss=NAME, runlocal.

Study (`nonsaturating` vs `rsgan`, seeds 0-9 of each as one population run):

  python scripts/sweep.py --config experiments/two_cluster.py --sweep losses --root runs/two_cluster_losses
  python scripts/compare.py runs/two_cluster_losses --out runs/two_cluster_losses/report \
      --metrics modes_covered,high_quality_fraction,mode_collapse,min_mode_fraction
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _sun2020 import toy_config, toy_sweeps  # noqa: E402


def get_config(arg=None):
  return toy_config("two_cluster", arg)


def get_sweeps():
  return toy_sweeps()
