"""Ring of 8 Gaussians (PacGAN protocol, Lin et al. 2018, sec. 5.1 and Table 1).

  python scripts/train.py --config experiments/ring8.py --workdir runs/ring8
  python scripts/train.py --config experiments/ring8.py:runlocal --workdir runs/ring8_local

Protocol: 8 modes on the unit circle, std 0.01, 100k training points; G a 4x400 ReLU MLP with
z ~ N(0, I_2); D 3 maxout layers (200 units, 5 pieces); Adam lr 1e-4, b1 0.8; batch 100;
400 epochs (400k steps). Metrics every eval.every steps on 2500 samples (3-std rule).
Target (PacGAN Table 1, GAN baseline, 10 runs): 6.3 ± 0.5 modes, 98.2 ± 0.2 % high quality.
Args: loss=NAME, runlocal (3000 steps, Adam lr 1e-3, b1 0.5: under a minute on 2 CPU cores).

Sweeps: `losses` (every registered loss x seeds 0-4), `losses_population` (the same, each
loss's 5 seeds as one population run), `losses_x_penalties` (nonsaturating, hinge, rpgan, rahinge
x penalty none, R1, R1+R2 at GAMMA, each cell's 5 seeds as one population run), `smoke` (2 losses
x 2 seeds):

  python scripts/sweep.py --config experiments/ring8.py:runlocal --sweep losses_population --root runs/ring8_losses
  python scripts/compare.py runs/ring8_losses --out runs/ring8_losses/report
  python scripts/sweep.py --config experiments/ring8.py:runlocal --sweep losses_x_penalties --root runs/ring8_lxp
  python scripts/compare.py runs/ring8_lxp --out runs/ring8_lxp/report --budget modes_covered

GAMMA, the R1/R2 weight (gamma/2 · E ||∇D||²): PacGAN trains without penalties, so it is chosen
here. A gradient penalty's weight has the units of a squared length (scaling the data by a scales
||∇D||² by 1/a², so the same penalty needs gamma · a²). 0.1 on the ring lets D change by about
1/sqrt(gamma) ≈ 3 logits per unit length at the cost of one logit of adversarial loss: enough
between modes 0.77 apart, flat within a mode (std 0.01); grid25 takes the same weight relative to
its squared mode spacing (2 / 0.77)², 0.7.
"""
from gan_jax.config import base_config, parse_arg

GAMMA = {"ring8": 0.1, "grid25": 0.7}


def mixture_config(dataset: str, arg: str | None):
  a = parse_arg(arg, loss="nonsaturating", runlocal=False)
  c = base_config("mlp")
  c.data.name = dataset
  c.loss.name = a.loss
  c.batch_size = 100
  c.total_steps = 400_000
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=1e-4, b1=0.8, b2=0.999)
  c.log_every = 500
  c.eval.every = 5000
  c.sample_every = 20_000
  c.ckpt_every = 20_000
  if a.runlocal:
    c.total_steps = 3000
    for who in ("g", "d"):
      c.optim[who].update(lr=1e-3, b1=0.5)
    c.log_every = 100
    c.eval.every = 500
    c.sample_every = 1000
    c.ckpt_every = 1000
  return c


def get_config(arg=None):
  return mixture_config("ring8", arg)


def mixture_sweeps(dataset: str):
  from gan_jax.losses import LOSSES
  from gan_jax.sweep import PENALTY_LOSSES, penalty_presets
  return {
      "losses": {"loss.name": LOSSES.names(), "seed": [0, 1, 2, 3, 4]},
      # The same study with the 5 seeds of each loss trained as one vmap-ed program.
      "losses_population": {"loss.name": LOSSES.names(), "population": [5]},
      "losses_x_penalties": {"loss.name": list(PENALTY_LOSSES), "penalty": penalty_presets(GAMMA[dataset]),
                             "population": [5]},
      "smoke": {"loss.name": ["nonsaturating", "rpgan"], "seed": [0, 1]},
  }


def get_sweeps():
  return mixture_sweeps("ring8")
