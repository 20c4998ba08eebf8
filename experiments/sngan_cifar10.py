"""SNGAN (ResNet, hinge loss) on CIFAR-10: Miyato et al. 2018, "Spectral Normalization for GANs".

  python scripts/train.py --config experiments/sngan_cifar10.py --workdir runs/sngan_cifar10
  python scripts/train.py --config experiments/sngan_cifar10.py:conditional --workdir runs/sngan_cifar10_cond
  python scripts/train.py --config experiments/sngan_cifar10.py:runlocal --workdir runs/sngan_local

The paper's CIFAR-10 ResNet (appendix B, table 4; model `sngan_resnet`, variant "cifar"): G 4x4x256
and three up blocks of 256 (4.28M parameters), D of 128 channels (1.05M). Training as the official
config (pfnet-research/sngan_projection configs/sn_cifar10_unconditional.yml): hinge loss, Adam
lr 2e-4, b1 0, b2 0.9 for G and D, n_dis 5 D updates per G update, batch 64, 50,000 G updates,
z ~ N(0, I_128). `conditional`: configs/sn_cifar10_conditional.yml, categorical conditional BN
in G and the projection discriminator (Miyato & Koyama 2018), 4.30M / 1.06M parameters.

Published: SN-GANs (ResNet, hinge loss), CIFAR-10 unconditional, Inception score 8.22 ± .05 and
FID 21.7 ± .21 (Miyato et al. 2018, table 2; FID on 10k samples against 5k real images, sec. 4).
StudioGAN's conditional SNGAN reaches FID 9.01 on CIFAR-10 (its 50k-vs-train protocol, not this
paper's).

Differences from the official Chainer run that this trainer cannot express yet:
- The official run decays both learning rates linearly from 2e-4 to 0 over the 50k iterations
  (train.py: extensions.LinearShift with iteration_decay_start 0). Our optimizers offer cosine
  ramps only (`optim.*.lr_final` with `schedule.kimg`), not a linear one: by default (`decay=cosine`)
  both rates anneal from 2e-4 to 0 over the run by a cosine instead, the closest available shape
  (same end points, a higher rate in the first half); `decay=none` keeps them constant.
- The official G update draws 128 samples (updater n_gen_samples) while D sees batches of 64;
  here G's batch is `batch_size` as well. The official loop also runs its G update before the
  n_dis D updates of an iteration; ours runs it after them.

Args: conditional, decay=cosine|none, runlocal (the same stack at toy width, 16 channels, on the
16x16 digits: G from 2x2, batch 32, 300 steps; digit_fd logged every eval.every steps).
"""
from gan_jax.config import base_config, parse_arg
from gan_jax.errors import ConfigError

DECAYS = ("none", "cosine")


def sngan_config(arg, *, dataset: str, resolution: int, variant: str, g_width: int, d_width: int,
                 total_steps: int = 50_000, batch_size: int = 64, data: dict | None = None,
                 local: dict | None = None):
  """The SNGAN training recipe (official configs) around the given dataset and architecture;
  `data`: extra `data.*` keys; `local`: keys of the runlocal variant beyond the shared ones."""
  a = parse_arg(arg, conditional=False, decay="cosine", runlocal=False)
  if a.decay not in DECAYS:
    raise ConfigError(f"experiment arg decay: unknown value {a.decay!r}; valid: {', '.join(DECAYS)}")
  c = base_config("sngan_resnet")
  c.data.name = dataset
  c.data.resolution = resolution
  c.data.update(data or {})
  c.model.update(variant=variant, g_width=g_width, d_width=d_width, z_dim=128, z_dist="normal",
                 conditional=a.conditional)
  c.loss.name = "hinge"
  c.batch_size = batch_size
  c.n_critic = 5
  c.total_steps = total_steps
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=2e-4, b1=0.0, b2=0.9)
  c.log_every = 100
  c.eval.every = 5000
  c.sample_every = c.ckpt_every = 5000
  if a.runlocal:
    c.data.name = "digits"
    c.data.resolution = 16
    c.data.update(split="train", tfds_name="", channels=0)
    c.model.update(g_width=16, d_width=16)
    c.batch_size = 32
    c.total_steps = 300
    c.log_every = 25
    c.eval.every = 100
    c.sample_every = c.ckpt_every = 100
    c.update_from_flattened_dict(local or {})
  if a.decay == "cosine":
    c.schedule.kimg = c.total_steps * c.batch_size / 1000
    for who in ("g", "d"):
      c.optim[who].lr_final = 0.0
  return c


def get_config(arg=None):
  return sngan_config(arg, dataset="cifar10", resolution=32, variant="cifar", g_width=256, d_width=128)
