"""DCGAN settings shared by the dcgan_* experiments (Radford et al. 2015, sec. 4).

Not an experiment itself (no get_config): minibatch 128, Adam lr 2e-4 with b1 0.5, z 100-d
uniform, weights ~ N(0, 0.02), non-saturating loss, no EMA in the paper (the samples here
come from an EMA generator when `ema.halflife_kimg` > 0). One generator forward per iteration,
its fakes used by D's update and then by G's through the updated D (`train.reuse_fake`), as the
paper's code (dcgan.torch) and pytorch/examples' DCGAN do.
"""
from gan_jax.config import base_config, parse_arg


def dcgan_config(dataset: str, resolution: int, width: int, total_steps: int, arg: str | None, *,
                 batch_size: int = 128, log_every: int = 100, every: int = 2000,
                 ema_halflife_kimg: float = 0.0, settings: dict | None = None,
                 local_settings: dict | None = None):
  """`settings`: extra flattened keys; `local_settings`: further keys for the runlocal variant."""
  a = parse_arg(arg, loss="nonsaturating", runlocal=False)
  c = base_config("dcgan")
  c.data.name = dataset
  c.data.resolution = resolution
  c.model.g_width = width
  c.model.d_width = width
  c.loss.name = a.loss
  c.batch_size = batch_size
  c.total_steps = total_steps
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  c.log_every = log_every
  c.sample_every = c.ckpt_every = every
  c.ema.halflife_kimg = ema_halflife_kimg
  c.train.reuse_fake = True
  c.update_from_flattened_dict(settings or {})
  if a.runlocal:  # a smoke run of the same pipeline at toy width
    c.model.g_width = c.model.d_width = 16
    c.batch_size = 32
    c.total_steps = 50
    c.log_every = 10
    c.sample_every = c.ckpt_every = 25
    c.update_from_flattened_dict(local_settings or {})
  return c
