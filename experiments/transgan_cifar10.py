"""TransGAN on CIFAR-10: Jiang, Chang & Wang 2021, "TransGAN: Two Pure Transformers Can Make One
Strong GAN, and That Can Scale Up" (NeurIPS 2021).

  python scripts/train.py --config experiments/transgan_cifar10.py --workdir runs/transgan_cifar10
  python scripts/train.py --config experiments/transgan_cifar10.py:runlocal --workdir runs/transgan_local

Model `transgan` (gan_jax/models/transgan.py) as the official code's CIFAR-10 run builds it
(VITA-Group/TransGAN exps/cifar_train.py: gen_model ViT_custom_rp, dis_model
ViT_custom_scale2_rp_noise): G from an 8x8 grid of 1024-d tokens (z 256-d), stages of 5, 4, 2
blocks at 1024, 256, 64 channels (8x8, 16x16, 32x32 tokens), 4 heads, layer norm, full attention
with relative position bias at every stage; the multi-scale D of 384 channels, patch 2, 3 blocks
per scale, 4 heads. G 83,312,495 and D 10,210,400 parameters, equal to the official networks.

Training as exps/cifar_train.py and train_derived.py / functions.py run it: loss `wgangp-eps`,
i.e. WGAN (G: -E D(G(z))) with the gradient penalty of weight 10 on random interpolates and
1e-3 · (E D(x_real))² added to D's loss (the square of the batch mean: `reg.drift_form`
"square_mean"); both networks' gradients clipped to a global norm of 5 before each step
(`optim.*.clip_norm`, the official clip_grad_norm_(…, 5.)); Adam lr 1e-4 for G and D, b1 0,
b2 0.99 (`--optimizer adam`: `--wd` is AdamW's and unused), no lr decay (`--lr_decay` is not
set); n_critic 4 D steps per G step; D batch 64 (8 per GPU x 8 GPUs);
500,000 G steps (`--max_iter`); DiffAugment "translation,cutout,color" on every image D sees,
the penalty's interpolates included; EMA of G with a half-life of 500 kimg, ramped up over the
first images (`--ema_kimg 500 --ema_warmup 0.1`). The official loop counts the ramp in D
iterations (0.1 x 64 images per D step), ours in G steps, so its rampup of 0.1 is
`ema.rampup` = 0.1 x n_critic = 0.4 here: the same per-G-step decay. The official G has no output
activation; `g_tanh=False` is that network (samples are clipped to [-1, 1] when quantized).

Published: TransGAN, CIFAR-10 unconditional, Inception score 9.02 ± 0.11 and FID 9.26
(Jiang et al. 2021, NeurIPS version, abstract and table 4; FID with 50k samples against the
training set's statistics, as cifar_test.py evaluates the released checkpoint).

Differences from the official run that this trainer does not express:
- G's update uses 128 samples (`-gen_bs 128`) while D sees 64; here G's batch is `batch_size`.
- The official TransGAN DiffAugment ops (models_search/diff_aug.py) are its own port of
  mit-han-lab's; ours (gan_jax/augment/diffaugment.py) follow mit-han-lab's directly.

Args: runlocal (toy width on 16x16 digits, with grid self-attention: G from 4x4 tokens of 256
channels through 8x8 to 16x16 tokens of 16 channels attending within 8x8 windows, tanh output, D of
64 channels; batch 32, 1000 steps, digit_fd logged every 250). Its loss is not the official one: the
non-saturating loss with R1 (gamma 0.05, as stylegan2_ffhq256:runlocal), Adam 2e-4 with b1 0 and
b2 0.99, no clipping, one D step per G step. Measured on the 2-core machine: digit_fd 1794 -> 613
-> 379 -> 322 -> 269 at steps 0, 250, 500, 750, 1000 (the default DCGAN reaches 291 in 1500
steps); the official recipe at this width learns slower and costs more: WGAN-GP + drift + clipping
with n_critic 4 and lr 1e-4, 1794 -> 933 at step 250, its step (four penalized D updates unrolled)
compiling in 223 s; with n_critic 1, lr 1e-4 and clipping, 1794 -> 3318 -> 2390 -> 2003 at steps 0,
100, 200, 300 (grids of sparse periodic dots: the critic of one step per G step does not lead G).
"""
from gan_jax.config import base_config, parse_arg


def get_config(arg=None):
  a = parse_arg(arg, runlocal=False)
  c = base_config("transgan")
  c.data.name = "cifar10"
  c.data.resolution = 32
  c.model.update(z_dim=256, z_dist="normal", bottom_width=8, g_embed_dim=1024, g_depths="5,4,2", g_heads=4,
                 g_window_size=0, g_norm="ln", g_act="gelu", g_tanh=False, d_embed_dim=384, d_depth=3, d_heads=4,
                 patch_size=2, d_norm="ln", d_act="gelu")
  c.loss.name = "wasserstein"
  c.reg.wgan_gp = 10.0
  c.reg.update(drift=1e-3, drift_form="square_mean")
  c.batch_size = 64
  c.n_critic = 4
  c.total_steps = 500_000
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=1e-4, b1=0.0, b2=0.99, clip_norm=5.0)
  c.ema.halflife_kimg = 500.0
  c.ema.rampup = 0.1 * c.n_critic
  c.augment.update(name="diffaugment", pipeline="translation,cutout,color")
  c.log_every = 200
  c.eval.every = 20_000
  c.sample_every = c.ckpt_every = 10_000
  if a.runlocal:
    c.data.update(name="digits", resolution=16, split="train", tfds_name="", channels=0)
    c.model.update(z_dim=64, bottom_width=4, g_embed_dim=256, g_depths="2,1,1", g_heads=2, g_window_size=8,
                   g_tanh=True, d_embed_dim=64, d_depth=1, d_heads=4)
    c.loss.name = "nonsaturating"
    c.reg.update(wgan_gp=0.0, drift=0.0, r1=0.05)
    for who in ("g", "d"):
      c.optim[who].update(lr=2e-4, clip_norm=0.0)
    c.batch_size = 32
    # One D step per G step: the trainer unrolls the n_critic D updates (each with the gradient
    # penalty's double backward) into one XLA program, whose compile time on CPU grows with it.
    c.n_critic = 1
    c.ema.rampup = 0.1 * c.n_critic
    c.total_steps = 1000
    c.log_every = 50
    c.eval.every = 250
    c.sample_every = c.ckpt_every = 250
  return c
