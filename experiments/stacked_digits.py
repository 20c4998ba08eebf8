"""Stacked digits: three scikit-learn digits as RGB channels, 1000 modes (StackedMNIST protocol
on data that needs no download; `--config.data.name=stacked_mnist --config.data.resolution=32`
gives the real StackedMNIST from TFDS mnist).

  python scripts/train.py --config experiments/stacked_digits.py --workdir runs/stacked_digits

DCGAN at 16x16x3 (ngf = ndf = 32), batch 64, 25,600 training stacks; every eval.every steps
10,000 samples are classified channel by channel by a CNN the project trains on the digits
themselves (cached), logging `modes_covered` (of 1000) and `reverse_kl` to uniform. At 10k
samples a perfect generator scores about 0.05 KL and misses ~0.03 modes. Reference numbers
(StackedMNIST, 26k samples; VEEGAN Table 2 / PacGAN Table 2): DCGAN 99 modes / KL 3.40;
PacDCGAN2 1000 / 0.06. Args: loss=NAME, runlocal, study (1000 steps at ngf = ndf = 16, the
size of the README's study: about 6.5 minutes per 5-seed population run on 2 CPU cores vmap-ed;
its members now run unrolled, `population_impl`: a 5-seed step 157 -> 53 ms, docs/losses.md).

Loss study (every loss, 5 seeds as one population run each):

  python scripts/sweep.py --config experiments/stacked_digits.py:study --sweep losses_population \
      --root runs/stacked_losses
  python scripts/compare.py runs/stacked_losses --out runs/stacked_losses/report --metrics modes_covered,reverse_kl

Loss x penalty (`losses_x_penalties`: nonsaturating, hinge, rpgan, rahinge x none, R1, R1+R2;
`rpgan_x_penalties`: the question of R3GAN, nonsaturating and rpgan only), 5 seeds per cell:

  python scripts/sweep.py --config experiments/stacked_digits.py:study --sweep rpgan_x_penalties --root runs/stacked_lxp
  python scripts/compare.py runs/stacked_lxp --out runs/stacked_lxp/report --metrics modes_covered,reverse_kl \
      --budget modes_covered

GAMMA = 0.0125: R3GAN's 0.05 for 32x32 images (its CIFAR-10 and StackedMNIST setting) times 1/4,
the ratio of pixel counts at 16x16, as a squared image distance grows with the pixel count. The
DCGAN D normalizes with batch statistics, so its examples interact and R1/R2 are the penalties of
the batch's summed logits (gan_jax/regularizers.py), as for any BatchNorm D.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _dcgan import dcgan_config  # noqa: E402

from gan_jax.config import parse_arg  # noqa: E402

GAMMA = 0.0125


def get_config(arg=None):
  a = parse_arg(arg, loss="nonsaturating", runlocal=False, study=False)
  base_arg = ",".join(f"{k}={a[k]}" for k in ("loss", "runlocal"))
  c = dcgan_config("stacked_digits", resolution=16, width=32, total_steps=4000, arg=base_arg, batch_size=64,
                   log_every=100, every=1000, ema_halflife_kimg=5.0,
                   settings={"data.num_examples": 25_600, "eval.every": 1000, "eval.num_samples": 10_000},
                   local_settings={"eval.every": 25, "eval.num_samples": 1000})
  if a.study:   # the README's loss study: 1000 steps at ngf = ndf = 16, 10k-sample evals every 250
    c.update_from_flattened_dict({"total_steps": 1000, "eval.every": 250, "model.g_width": 16,
                                  "model.d_width": 16, "sample_every": 500, "ckpt_every": 500,
                                  "population_impl": "unroll"})   # 3.0x faster than vmap-ed on 2 CPU cores
  return c


def get_sweeps():
  from gan_jax.losses import LOSSES
  from gan_jax.sweep import PENALTY_LOSSES, penalty_presets
  return {
      "losses": {"loss.name": LOSSES.names(), "seed": [0, 1, 2]},
      "losses_population": {"loss.name": LOSSES.names(), "population": [5]},
      "losses_x_penalties": {"loss.name": list(PENALTY_LOSSES), "penalty": penalty_presets(GAMMA),
                             "population": [5]},
      "rpgan_x_penalties": {"loss.name": ["nonsaturating", "rpgan"], "penalty": penalty_presets(GAMMA),
                            "population": [5]},
  }
