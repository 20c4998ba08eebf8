"""ProGAN on CelebA-HQ at 1024x1024 (Karras et al. 2018, "Progressive Growing of GANs for Improved
Quality, Stability, and Variation", ICLR 2018).

  python scripts/train.py --config experiments/progan_celebahq1024.py --workdir runs/progan_celebahq1024 \\
      --config.data.path=/data/celeba_hq_1024
  python scripts/train.py --config experiments/progan_celebahq1024.py:runlocal --workdir runs/progan_local

Official run: tkarras/progressive_growing_of_gans `config.py` as released (`-celebahq`, train.py
`train_progressive_gan`), with the 8-GPU preset's minibatch schedule (`-preset-v2-8gpus`, capped by
its fp32 `max_minibatch_per_gpu` {256: 16, 512: 8, 1024: 4} x 8): global batch 512 at 4x4, 256 at 8x8,
128 at 16x16, 64 at 32x32 and 32 from 64x64 up. G_paper / D_paper at fmap_base 8192 and fmap_max
512: G 23,079,115 and D 23,087,249 parameters (by the official layer shapes, tests/test_model_progan.py).
Training starts at 4x4; each resolution is trained for 600k real images, then the next is faded in
over 600k images (`lod_training_kimg` = `lod_transition_kimg` = 600), so 1024x1024 is reached after
9.6M images and trained to 12M (`total_kimg` 12000). Loss WGAN-GP (lambda 10, target 1) with the
drift term epsilon 0.001 · E D(x)²; Adam lr 0.001, betas (0, 0.99), eps 1e-8, reset at every fade-in and
stabilization (`reset_opt_for_new_lod`); one D step per G step; G weights EMA 0.999; mirror
augmentation on. The preset raises the learning rate at high resolutions ({128: 0.0015, 256: 0.002,
512: 0.003, 1024: 0.003}); pass `lrate=preset` for those, the default keeps the paper's 0.001
(sec. A.1).

Data: CelebA-HQ as 30k PNGs (the official dataset_tool.py create_celebahq, or TFDS `celeb_a_hq/1024`
with data.name=tfds). Published: sliced Wasserstein distance and MS-SSIM (the paper's table 1); FID
7.79 at 1024x1024 as the StyleGAN paper measured this network (Karras et al. 2019, table 1, row A).

Args: lrate=paper|preset, kimg=N (total thousands of images), runlocal (16x16 digits at toy width,
fmap_base 128, fmap_max 64: 4x4 for 0.8k images, fade to 8x8 and stabilize over 0.8k each, fade to
16x16 over 0.8k (step 88), the rest at 16x16; batch 64 at 4x4 and 32 above; G EMA 0.98; 300 steps;
digit_fd every eval.every steps).
"""
from gan_jax.config import base_config, parse_arg
from gan_jax.errors import ConfigError
from gan_jax.schedules import growth_of

LRATE_PRESET = "128:0.0015,256:0.002,512:0.003,1024:0.003"


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False, lrate="paper", kimg=12_000.0)
  if a.lrate not in ("paper", "preset"):
    raise ConfigError(f"experiment arg lrate must be paper or preset, got {a.lrate!r}")
  c = base_config("progan")
  c.data.update(name="folder", resolution=1024, channels=3)
  c.model.update(z_dim=512, fmap_base=8192, fmap_decay=1.0, fmap_max=512, mbstd_group_size=4,
                 lod_initial_resolution=4, lod_training_kimg=600.0, lod_transition_kimg=600.0,
                 minibatch_dict="4:512,8:256,16:128,32:64", lrate_dict=LRATE_PRESET if a.lrate == "preset" else "",
                 reset_opt_for_new_lod=True, mirror_augment=True)
  c.batch_size = 32
  c.loss.name = "wasserstein"
  c.reg.wgan_gp = 10.0
  c.reg.drift = 0.001
  c.n_critic = 1
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=0.001, b1=0.0, b2=0.99, eps=1e-8)
  c.ema.decay = 0.999
  c.log_every = 500
  c.sample_every = c.ckpt_every = 10_000
  kimg = a.kimg
  if a.runlocal:
    c.data.update(name="digits", resolution=16, channels=0)
    c.model.update(z_dim=64, fmap_base=128, fmap_max=64, lod_training_kimg=0.8, lod_transition_kimg=0.8,
                   minibatch_dict="4:64", lrate_dict="", mirror_augment=False)
    c.batch_size = 32
    # The paper's EMA (0.999) averages over ~1000 steps: after 300 steps its weights would still be
    # three quarters the initial ones. 0.98 (a half-life of 34 steps) fits the short run.
    c.ema.decay = 0.98
    c.log_every = 25
    c.eval.every = 100
    c.sample_every = c.ckpt_every = 100
    kimg = None
  c.total_steps = 300 if kimg is None else growth_of(c).steps_for_kimg(kimg)
  return c
