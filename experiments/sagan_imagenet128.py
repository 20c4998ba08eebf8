"""SAGAN on ImageNet 128x128, class-conditional: Zhang et al. 2019, "Self-Attention GANs".

  # ImageNet (ILSVRC2012) must be downloaded by hand and prepared once for TFDS:
  tfds build imagenet2012 --manual_dir PATH_TO_TARS --file_format array_record
  python scripts/train.py --config experiments/sagan_imagenet128.py --workdir runs/sagan_imagenet128
  python scripts/train.py --config experiments/sagan_imagenet128.py:runlocal --workdir runs/sagan_local

Model `sagan` (gan_jax/models/sagan.py): the official TF code's ImageNet generator / discriminator
(brain-research/self-attention-gan), gf = df = 64, z ~ N(0, I_128), conditional BN in G and the
projection discriminator over the 1000 classes, spectral norm in G and D, self-attention on the
64x64 feature maps (feat64; 42.02M G / 39.45M D parameters). Training (paper sec. 5 and 4.2;
train_imagenet.py, model.py): hinge loss, TTUR with Adam lr 1e-4 for G and 4e-4 for D, b1 0, b2 0.9
(the paper; the TF code leaves b2 at TensorFlow's 0.999, as StudioGAN's config does), one D update
per G update, batch 256 (64 on each of 4 GPUs), 1M G updates (StudioGAN's total_steps; the
README: "several weeks to train one million steps"). Images centre-cropped and resized to 128x128.

Published: SAGAN, ImageNet 128x128, Inception score 52.52, FID 18.65 (Zhang et al. 2019, table 2 and
abstract; feat64 in table 1). `attn=32` builds feat32 (FID 18.28, IS 51.43 in table 1).

Differences from the official run: its BN statistics are per GPU (64 images), ours are over the
global batch of 256; its spectral-norm vectors start from a truncated normal, ours from flax's normal.

Args: attn=64|32|16|8|0, runlocal (the same recipe at toy width on 32x32 digits with their labels:
gf = df = 8, attention on the 16x16 maps, batch 32, a few hundred steps; digit_fd every eval.every).
"""
from gan_jax.config import base_config, parse_arg


def sagan_config(arg, *, dataset: str, resolution: int, num_classes_data: dict | None = None,
                 total_steps: int = 1_000_000, batch_size: int = 256):
  a = parse_arg(arg, attn=64, runlocal=False)
  c = base_config("sagan")
  c.data.name = dataset
  c.data.resolution = resolution
  c.data.update(num_classes_data or {})
  c.model.update(g_width=64, d_width=64, z_dim=128, z_dist="normal", attn_res=a.attn, conditional=True)
  c.loss.name = "hinge"
  c.batch_size = batch_size
  c.n_critic = 1
  c.total_steps = total_steps
  c.optim.g.update(name="adam", lr=1e-4, b1=0.0, b2=0.9)
  c.optim.d.update(name="adam", lr=4e-4, b1=0.0, b2=0.9)
  c.log_every = 200
  c.eval.every = 10_000
  c.sample_every = c.ckpt_every = 10_000
  if a.runlocal:
    c.data.update(name="digits", resolution=32, split="train", tfds_name="")
    c.model.update(g_width=8, d_width=8, attn_res=16 if a.attn else 0)
    c.batch_size = 32
    c.total_steps = 300
    c.log_every = 25
    c.eval.every = 100
    c.sample_every = c.ckpt_every = 100
  return c


def get_config(arg=None):
  return sagan_config(arg, dataset="tfds", resolution=128, num_classes_data={"tfds_name": "imagenet2012"})
