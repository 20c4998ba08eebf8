"""The train state: one pytree holding everything a run needs to continue exactly."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

Params = Any


@flax.struct.dataclass
class TrainState:
  step: jax.Array         # int32 scalar: G steps done
  g_params: Params
  g_vars: dict            # G's non-parameter collections (e.g. batch_stats)
  d_params: Params
  d_vars: dict
  ema_params: Params      # EMA of g_params, or None when EMA is off
  g_opt: optax.OptState
  d_opt: optax.OptState
  reg_state: dict         # regularizer state (LeCam's anchors, PL mean, ADA's adaptive p and r_t sums), {} when none


def sample_latents(key: jax.Array, n: int, z_dim: int, dist: str) -> jax.Array:
  """z: [n, z_dim] from N(0, I) or U(-1, 1)^z_dim (DCGAN's prior)."""
  if dist == "uniform":
    return jax.random.uniform(key, (n, z_dim), minval=-1.0, maxval=1.0)
  return jax.random.normal(key, (n, z_dim))


def init_state(key: jax.Array, generator: nn.Module, discriminator: nn.Module, data_shape: tuple,
               z_dim: int, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
               use_ema: bool, reg_state: dict | None = None, num_classes: int = 0) -> TrainState:
  kg, kd = jax.random.split(key)
  cond = (jnp.zeros((2,), jnp.int32),) if num_classes else ()
  noise = jax.random.fold_in(key, 1)
  g_all = generator.init({"params": kg, "noise": noise}, jnp.zeros((2, z_dim)), *cond, train=False)
  d_all = discriminator.init({"params": kd, "noise": noise}, jnp.zeros((2, *data_shape)), *cond, train=False)
  g_params, g_vars = g_all["params"], {k: v for k, v in g_all.items() if k != "params"}
  d_params, d_vars = d_all["params"], {k: v for k, v in d_all.items() if k != "params"}
  return TrainState(
      step=jnp.zeros((), jnp.int32), g_params=g_params, g_vars=g_vars, d_params=d_params,
      d_vars=d_vars, ema_params=jax.tree.map(jnp.copy, g_params) if use_ema else None,
      g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params), reg_state=reg_state or {})
