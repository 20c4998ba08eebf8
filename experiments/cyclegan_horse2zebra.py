"""CycleGAN on horse2zebra (Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image Translation
using Cycle-Consistent Adversarial Networks"), the paper's setting:

  python scripts/train.py --config experiments/cyclegan_horse2zebra.py --workdir runs/cyclegan_horse2zebra

Data: TFDS cycle_gan/horse2zebra (prepare it once: `tfds build cycle_gan/horse2zebra
--file_format array_record`), 1067 horses (trainA) and 1334 zebras (trainB) at 256x256, each
resized to 286x286, randomly cropped back to 256x256 and randomly flipped (sec. 7.1). Model: ResNet
generators with 9 residual blocks, 70x70 PatchGANs, instance norm (sec. 7.2); LSGAN losses, cycle
weight λ = 10, identity weight 0.5·λ (the official code's default lambda_identity for every
dataset; the paper uses the identity loss for painting<->photo), a 50-image history pool, Adam
lr 2e-4, b1 0.5, batch 1, 100 epochs at constant lr and 100 decaying linearly to 0 (sec. 4). An
epoch is max(1067, 1334) = 1334 steps at batch 1, so 133,400 + 133,400 steps.

Target: the paper publishes no number for horse2zebra (its FCN scores and AMT studies are for
cityscapes and maps; horse2zebra is shown qualitatively, fig. 13). The CUT paper (Park et al. 2020,
table 1) reports FID 77.2 for CycleGAN on horse->zebra (the 120 testA horses translated, against
the testB zebras); this codebase does not measure it during training (eval.metrics is refused for
cyclegan); scripts/translate.py writes the translations to score.

`runlocal` trains here instead: the offline digits_pair (scikit-learn digits as white ink on black
<-> the other digits as dark ink on amber paper) at 32x32, toy width (ngf = ndf = 8, 6 blocks),
batch 4, 300 steps (200 at constant lr, 100 decaying), writing the translation grid (rows: a,
G_AB(a), G_BA(G_AB(a)), b, G_BA(b), G_AB(G_BA(b))) to DIR/samples every 100 steps.
"""
from gan_jax.config import base_config, parse_arg

HORSES, ZEBRAS = 1067, 1334


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False)
  c = base_config("cyclegan")
  c.data.name = "cycle_gan"
  c.data.tfds_name = "horse2zebra"
  c.data.resolution = 256
  c.data.load_size = 286
  c.data.flip = True
  c.loss.name = "least_squares"
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.batch_size = 1
  epoch = max(HORSES, ZEBRAS) // c.batch_size
  c.model.lr_hold_steps = 100 * epoch
  c.model.lr_decay_steps = 100 * epoch
  c.total_steps = 200 * epoch
  c.log_every = 100
  c.sample_every = 5000
  c.ckpt_every = 5000
  c.sample.num = 4
  if a.runlocal:
    c.data.name = "digits_pair"
    c.data.tfds_name = ""
    c.data.resolution = 32
    c.data.load_size = 0
    c.data.flip = False
    c.model.g_width = c.model.d_width = 8
    c.batch_size = 4
    c.model.lr_hold_steps, c.model.lr_decay_steps = 200, 100
    c.total_steps = 300
    c.log_every = 25
    c.sample_every = c.ckpt_every = 100
    c.sample.num = 8
  return c
