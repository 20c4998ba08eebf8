"""The loss-landscape toys of Sun et al. 2020 ("Towards a Better Global Loss Landscape of GANs",
NeurIPS 2020; code: github.com/AilsaF/RS-GAN, 5gaussian.py and datasets.py), shared by
experiments/gauss5.py and experiments/two_cluster.py. Not an experiment itself (no get_config).

Protocol as their 5-Gaussian script sets it: G an MLP 2 -> 128 -> 128 -> 2 with ReLU and
z ~ N(0, I_2); D an MLP 2 -> 128 -> 128 -> 1 with LeakyReLU 0.2; Adam lr 1e-4, betas (0, 0.9) for
both; batch 128; one D step then one G step per iteration; 20k iterations; 10k training points.
Their claim: JS-GAN (`nonsaturating`) gets stuck in mode collapse (a bad basin of its loss) where
RS-GAN (`rsgan`) does not.

What differs from their script, and why:
- their RS-GAN D projects its last layer's weights to unit norm after every D step (and that layer
  has no bias); the `losses` sweep trains the same unconstrained D for both losses, the
  `as_published` sweep gives RS-GAN their D (`model.d_unit_head`) and JS-GAN the plain one;
- their G step reuses the D step's latents; here each step draws its own (the project's step);
- PyTorch's default initialization (uniform, fan-in scaled) vs Flax's (LeCun normal);
- their script runs one seed (seed 0) and draws a figure; here 10 seeds per loss as one
  population run, with numbers: `modes_covered`, `high_quality_fraction` (PacGAN's 3-std rule on
  2500 samples), `min_mode_fraction` and `mode_collapse` (some mode under a tenth of its share;
  gan_jax/metrics/modes.py), every 1000 steps.

Args: loss=NAME, runlocal (1000 steps, evaluations every 250: a smoke run of the pipeline).
"""
from gan_jax.config import base_config, parse_arg

LOSSES = ["nonsaturating", "rsgan"]


def toy_config(dataset: str, arg: str | None):
  a = parse_arg(arg, loss="nonsaturating", runlocal=False)
  c = base_config("mlp")
  c.data.name = dataset
  c.data.num_examples = 10_000
  c.loss.name = a.loss
  c.model.update(z_dim=2, z_dist="normal", g_width=128, g_layers=2, d_width=128, d_layers=2, d_maxout_pieces=1,
                 d_leaky_slope=0.2)
  c.batch_size = 128
  c.total_steps = 20_000
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=1e-4, b1=0.0, b2=0.9)
  c.log_every = 500
  c.eval.every = 1000
  c.sample_every = 5000
  c.ckpt_every = 5000
  if a.runlocal:
    c.total_steps = 1000
    c.log_every = 100
    c.eval.every = 250
    c.sample_every = c.ckpt_every = 500
  return c


def toy_sweeps():
  return {
      # The claim's test: each loss's seeds 0-9 as one population run.
      "losses": {"loss.name": LOSSES, "population": [10]},
      # Each loss with the D their script trains it with: RS-GAN's output layer bias-free and projected
      # to unit norm after each D step, JS-GAN's unconstrained.
      "as_published": {"variant": {"nonsaturating": {"loss.name": "nonsaturating", "model.d_unit_head": False},
                                   "rsgan_unit_head": {"loss.name": "rsgan", "model.d_unit_head": True}},
                       "population": [10]},
      "smoke": {"loss.name": LOSSES, "seed": [0, 1]},
  }
