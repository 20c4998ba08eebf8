"""StackGAN on CUB-200-2011 birds from text (Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image
Synthesis with Stacked Generative Adversarial Networks", ICCV), trained in sequence, Stage I then II:

  python scripts/train.py --config experiments/stackgan_cub.py:stage=1 --workdir runs/stackgan_cub_s1
  python scripts/train.py --config experiments/stackgan_cub.py:stage=2 --workdir runs/stackgan_cub_s2 \
    --config.model.stage1_workdir=runs/stackgan_cub_s1

Data (`data.name=text_embeddings`, gan_jax/data/text_embeddings.py): the official preprocessed birds
folder (StackGAN's Data/birds: train/char-CNN-RNN-embeddings.pickle [8855, 10, 1024],
train/filenames.pickle) with CUB_200_2011/ (images, images.txt, bounding_boxes.txt) unpacked inside it,
at `data.path` (default data/birds). Oxford-102: the same with data.path=data/flowers and its jpg/ folder.

Settings (official code and paper sec. 4): char-CNN-RNN embeddings 1024 -> condition 128, z 100 ~ N(0, I),
gf_dim 128, df_dim 64, 4 residual blocks (code/miscc/config.py); KL weight 2.0 (TRAIN.COEFF.KL in every
official config; the paper's lambda is 1); batch 64, Adam 2e-4 with betas (0.5, 0.999) for G and D, the
learning rate halved every 100 epochs, 600 epochs for Stage I (64x64, images resized to 76 and randomly
cropped and flipped) and 600 for Stage II (256x256 from 304) with the Stage-I generator frozen (paper sec.
4; the TensorFlow code's birds.yml halves every 50 epochs in Stage I). An epoch of the 8855 training
images is 138 steps of 64.

Published: inception score 3.70 ± 0.04 on CUB (the paper's table 1; its fine-tuned Inception model on
the 2933 test images' captions), 3.20 ± 0.01 on Oxford-102. This codebase does not compute that score
(it needs the StackGAN-inception model); eval.metrics=fid measures FID against the training images.

`runlocal` trains here instead, on the offline scikit-learn digits with class embeddings (a learned
64-d vector per digit in place of the text embedding), at toy width (gf_dim 16, df_dim 16, condition
16, z 32), batch 32: Stage I at 16x16 for 1000 steps, Stage II at 32x32 (model.upscale 2, 2 residual
blocks) for 500 steps from a Stage-I runlocal workdir; sample grids have one row per digit, and every
250 steps the trainer logs digit_fd (the project's digit-classifier Fréchet distance, not FID) and
digit_accuracy (the fraction of samples that classifier reads as the digit they were drawn for; 0.1
when the class is ignored). Measured: Stage I digit_fd 2788 -> 112 -> 114 -> 77 -> 63 and
digit_accuracy 0.11 -> 0.25 -> 0.76 -> 0.92 -> 0.99 at steps 0, 250, 500, 750, 1000 (the class is
taken up only after the images are: runs of 300 steps stayed near chance); Stage II on it 5953 -> 490
-> 324 and 0.08 -> 0.80 -> 0.98 at steps 0, 250, 500. Its KL weight is 0.1: with the official 2.0
the KL term drove the CA's ReLU'd fc output to exactly 0 within 100 steps (kl_loss 0.0: c_hat pure
noise, the class ignored for good), while at 0.1 the CA stays alive (kl_loss 0.1 at step 250, 1.7 at
1000):

  python scripts/train.py --config experiments/stackgan_cub.py:stage=1,runlocal --workdir runs/stackgan_s1
  python scripts/train.py --config experiments/stackgan_cub.py:stage=2,runlocal --workdir runs/stackgan_s2 \
    --config.model.stage1_workdir=runs/stackgan_s1

Args: stage=1|2, runlocal.
"""
from gan_jax.config import base_config, parse_arg
from gan_jax.errors import ConfigError

TRAIN_IMAGES = 8855


def get_config(arg=None):
  a = parse_arg(arg, stage=1, runlocal=False)
  if a.stage not in (1, 2):
    raise ConfigError(f"experiment arg stage: must be 1 or 2, got {a.stage}")
  c = base_config("stackgan")
  c.model.stage = a.stage
  c.data.name = "text_embeddings"
  c.data.path = "data/birds"
  c.data.resolution = 64 if a.stage == 1 else 256
  c.data.load_size = c.data.resolution * 76 // 64
  c.data.flip = True
  c.loss.name = "nonsaturating"
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.batch_size = 64
  epoch = TRAIN_IMAGES // c.batch_size
  c.model.lr_decay_steps = 100 * epoch
  c.total_steps = 600 * epoch
  c.log_every = 100
  c.sample_every = c.ckpt_every = 5 * epoch
  if a.runlocal:
    c.data.update(name="digits", path="", resolution=16 if a.stage == 1 else 32, load_size=0, flip=False)
    c.model.update(t_dim=64, c_dim=16, z_dim=32, g_width=16, d_width=16, r_num=2, upscale=2, lr_decay_steps=0,
                   kl_coeff=0.1)
    c.batch_size = 32
    c.total_steps = 1000 if a.stage == 1 else 500
    c.log_every = 50
    c.eval.every = 250
    c.sample_every = c.ckpt_every = 250
    c.sample.num = 80   # 8 per digit row
  return c
