"""MLP generator and maxout discriminator for the 2-D mixtures (PacGAN protocol).

Lin et al. 2018 (PacGAN), sec. 5.1, following VEEGAN: G is a ReLU MLP with 4 hidden layers of
400 units and z ~ N(0, I_2); D has 3 maxout layers of 200 units with 5 pieces, then a linear
output. With `d_maxout_pieces` = 1 the D layers are dense with a ReLU, or a LeakyReLU of slope
`d_leaky_slope` when it is > 0 (Sun et al. 2020's toy D: 2 hidden layers of 128, LeakyReLU 0.2).
`d_unit_head`: D's output layer has no bias and is named `unit_head`, whose kernel the trainer
projects to unit L2 norm after every D update (Sun et al.'s RS-GAN toy code: their D's last layer,
bias-free, normalized after each D step; `regularizers.project_unit_heads`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, ModelEntry


class MLPGenerator(nn.Module):
  out_dim: int
  width: int = 400
  layers: int = 4

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    del train
    x = z
    for _ in range(self.layers):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dense(self.out_dim)(x)


class Maxout(nn.Module):
  """Goodfellow et al. 2013: max over `pieces` affine maps."""
  features: int
  pieces: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.Dense(self.features * self.pieces)(x)
    return jnp.max(y.reshape(*y.shape[:-1], self.features, self.pieces), axis=-1)


class MaxoutDiscriminator(nn.Module):
  width: int = 200
  layers: int = 3
  pieces: int = 5
  leaky_slope: float = 0.0   # dense layers (pieces = 1): LeakyReLU of this slope, 0 = ReLU
  unit_head: bool = False    # a bias-free output layer `unit_head`, kept at unit norm by the trainer

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    del train
    for _ in range(self.layers):
      if self.pieces > 1:
        x = Maxout(self.width, self.pieces)(x)
      else:
        x = nn.leaky_relu(nn.Dense(self.width)(x), self.leaky_slope)
    if self.unit_head:
      return nn.Dense(1, use_bias=False, name="unit_head")(x)[..., 0]
    return nn.Dense(1)(x)[..., 0]


def _defaults() -> dict:
  return {"z_dim": 2, "z_dist": "normal", "g_width": 400, "g_layers": 4,
          "d_width": 200, "d_layers": 3, "d_maxout_pieces": 5, "d_leaky_slope": 0.0,
          "d_unit_head": False}


def _build(c: ConfigDict, spec: DataSpec) -> tuple[nn.Module, nn.Module]:
  if spec.kind != "vector":
    raise ConfigError(f"model 'mlp' needs vector data (ring8, grid25, gauss5, two_cluster), got {spec.kind} data")
  if c.d_leaky_slope < 0 or (c.d_leaky_slope > 0 and c.d_maxout_pieces > 1):
    raise ConfigError(f"model.d_leaky_slope must be >= 0 and needs model.d_maxout_pieces=1 (dense D layers), got "
                      f"{c.d_leaky_slope} with {c.d_maxout_pieces} pieces")
  return (MLPGenerator(out_dim=spec.shape[-1], width=c.g_width, layers=c.g_layers),
          MaxoutDiscriminator(width=c.d_width, layers=c.d_layers, pieces=c.d_maxout_pieces,
                              leaky_slope=c.d_leaky_slope, unit_head=bool(c.d_unit_head)))


MODELS.register("mlp")(ModelEntry(_defaults, _build))
