"""Limited data: DCGAN on the first `num` of the 1797 scikit-learn digits, with or without
discriminator augmentation (the README's limited-data comparison).

  python scripts/train.py --config experiments/limited_digits.py:augment=ada --workdir runs/limited_ada

The dcgan_digits recipe (16x16, widths 32, batch 64, EMA half-life 5k images) trained on a
subset of `num` (default 200) digits for `steps` (default 1500, ~480 epochs of the subset: D
overfits it); `digit_fd` is measured against all 1797 digits every 250 steps. Args:
augment=none|ada|diffaugment, num=N, steps=N, population=N (N seeds as one vmapped program),
ada_kimg=K (ADA's adjustment speed: p can move by 1 per K thousand images; default 20, since the
paper's 500 would move p by at most 0.19 in this 96k-image run).
ADA: pipeline bgc, target 0.6, interval 4, p from 0 (the paper's heuristic). DiffAugment:
color,translation,cutout at p = 1 (the paper's policy). `runlocal`: widths 16, batch 32, digit_fd
(1000 samples) at step 0 and at the end only.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _dcgan import dcgan_config  # noqa: E402

from gan_jax.augment import NAMES  # noqa: E402
from gan_jax.config import parse_arg  # noqa: E402
from gan_jax.errors import ConfigError


def get_config(arg=None):
  a = parse_arg(arg, augment="none", num=200, steps=1500, population=1, ada_kimg=20.0, runlocal=False)
  if a.augment not in NAMES:
    raise ConfigError(f"unknown experiment arg augment={a.augment!r}; valid choices: {', '.join(NAMES)}")
  c = dcgan_config("digits", resolution=16, width=32, total_steps=a.steps, arg=None, batch_size=64, log_every=50,
                   every=a.steps, ema_halflife_kimg=5.0, settings={"eval.every": 250, "eval.num_samples": 2000})
  c.data.num_examples = a.num
  c.population = a.population
  c.augment.name = a.augment
  if a.augment == "ada":
    c.augment.pipeline = "bgc"
    c.augment.kimg = a.ada_kimg
  if a.runlocal:   # the CI-sized run of the comparison (tests/test_augment.py): widths 16, batch 32, one evaluation
    c.model.g_width = c.model.d_width = 16
    c.batch_size = 32
    c.log_every = 25
    c.eval.every = a.steps
    c.eval.num_samples = 1000
  return c
