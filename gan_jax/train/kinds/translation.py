"""The "translation" training kind: CycleGAN (Zhu et al. 2017), `(state, batch, key) -> (state, metrics)`.

Two generators G_AB: A -> B and G_BA: B -> A, and two PatchGAN discriminators, D_A (real A
against G_BA(B)) and D_B (real B against G_AB(A)). One step is the official code's
`optimize_parameters` (models/cycle_gan_model.py): one Adam update of both generators on

  L_G = LS(D_B(G_AB(a))) + LS(D_A(G_BA(b)))                                        (eq. 1, LSGAN form)
      + λ (|G_BA(G_AB(a)) - a|₁ + |G_AB(G_BA(b)) - b|₁)                              (eq. 2, 3)
      + λ·λ_idt (|G_AB(b) - b|₁ + |G_BA(a) - a|₁)                                    (sec. 5.2, identity)

then one Adam update of both discriminators on ½[(D(real) - 1)² + D(fake)²] each, where the
fakes are this step's (pre-update) G outputs passed through a 50-image history pool
(Shrivastava et al. 2017; sec. 4). The pools live in the state, so a resumed run draws exactly
the same pool images. batch: {"a": [1, B, H, W, C], "b": [1, B, H, W, C]} in [-1, 1] (the
trainer's [batches_per_step, B, ...] layout), unpaired.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.losses import least_squares_d
from gan_jax.models import DataSpec, build_models
from gan_jax.parallel import replicate, replicated
from gan_jax.train import machinery
from gan_jax.train.kinds import KINDS, Kind, Trainer

Params = Any


@flax.struct.dataclass
class CycleGANState:
  step: jax.Array        # int32 scalar: steps done
  g_params: Params       # {"g_ab": ..., "g_ba": ...}
  g_vars: dict           # {}: instance norm keeps no state (the field keeps the trainer's FSDP gather uniform)
  d_params: Params       # {"d_a": ..., "d_b": ...}: D_a judges domain A, D_b domain B
  d_vars: dict           # {}
  g_opt: optax.OptState  # one optimizer over both generators, as the official code
  d_opt: optax.OptState  # one over both discriminators
  pool: dict             # {"a": fakes of domain A (G_BA(b)), "b": of domain B}, each a `pool_init` dict
  reg_state: dict        # nan_policy=skip's count of undone steps (machinery.nan_state), else {}


# ------------------------------------------------------------------------------------- losses

def lsgan_d(real_logits: jax.Array, fake_logits: jax.Array, a: float = 0.0, b: float = 1.0) -> jax.Array:
  """D's least-squares loss (Mao et al. 2017, eq. 2; CycleGAN sec. 4): ½ E (D(x) - b)² + ½ E (D(G) - a)²
  over every patch logit (the official code halves the sum of the two MSE terms)."""
  return least_squares_d(real_logits, fake_logits, a=a, b=b)


def lsgan_g(fake_logits: jax.Array, c: float = 1.0) -> jax.Array:
  """G's least-squares loss, CycleGAN sec. 4: E (D(G(x)) - c)² over every patch logit (the official
  GANLoss('lsgan') is MSELoss: no ½ here, unlike the LSGAN paper's G loss in gan_jax/losses.py)."""
  return jnp.mean(jnp.square(jnp.asarray(fake_logits, jnp.float32) - c))


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean absolute error: the cycle-consistency (eq. 2) and identity (sec. 5.2) terms."""
  return jnp.mean(jnp.abs(jnp.asarray(x, jnp.float32) - jnp.asarray(y, jnp.float32)))


# ---------------------------------------------------------------------------------- the pool

def pool_init(size: int, image_shape: tuple) -> dict:
  """An empty history of `size` images: {"images": [size, H, W, C], "count": int32 filled slots}."""
  return {"images": jnp.zeros((size, *image_shape), jnp.float32), "count": jnp.zeros((), jnp.int32)}


def pool_query(pool: dict, images: jax.Array, key: jax.Array) -> tuple[dict, jax.Array]:
  """The official ImagePool.query (util/image_pool.py) as a pure function, image by image in order:
  while the pool is not full an image is stored and returned itself; once full, with probability
  ½ a uniformly chosen stored image is returned and the new one takes its slot, else the new one
  is returned and the pool is unchanged. Returns (new pool, images for D [B, H, W, C])."""
  size = pool["images"].shape[0]
  if size == 0:
    return pool, images

  def one(pool, inputs):
    image, k = inputs
    u_key, i_key = jax.random.split(k)
    filling = pool["count"] < size
    swap = jnp.logical_and(~filling, jax.random.uniform(u_key) > 0.5)
    slot = jnp.where(filling, pool["count"], jax.random.randint(i_key, (), 0, size))
    stored = pool["images"][slot]
    new = jnp.where(jnp.logical_or(filling, swap), image, stored)
    pool = {"images": pool["images"].at[slot].set(new), "count": pool["count"] + filling.astype(jnp.int32)}
    return pool, jnp.where(swap, stored, image)

  keys = jax.random.split(key, images.shape[0])
  return jax.lax.scan(one, pool, (images.astype(jnp.float32), keys))


# ------------------------------------------------------------------------------ learning rate

def linear_decay(base: float, hold_steps: int, decay_steps: int) -> optax.Schedule:
  """Sec. 4: `base` for the first `hold_steps` updates, then linearly to 0 over `decay_steps`
  (the paper's 100 epochs constant + 100 epochs decay, counted in updates); constant when
  decay_steps is 0. Value at update count n (the count before the update)."""
  if decay_steps <= 0:
    return optax.constant_schedule(base)
  return optax.join_schedules([optax.constant_schedule(base), optax.linear_schedule(base, 0.0, decay_steps)],
                              [hold_steps])


# ---------------------------------------------------------------------------------- the model

@dataclasses.dataclass(frozen=True)
class CycleGAN(Trainer):
  """The static parts the step closes over (hashable): the trainer protocol (gan_jax/train/kinds) with
  no latent sampler, the translation grid as its samples, and `translate` for scripts/translate.py."""
  generator: nn.Module        # the architecture of G_AB and G_BA (two parameter sets)
  discriminator: nn.Module    # of D_A and D_B
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  lambda_cycle: float = 10.0
  lambda_identity: float = 0.5
  pool_size: int = 50
  ls_a: float = 0.0           # least-squares codes (loss.ls_a/b/c): fake, real, G's target
  ls_b: float = 1.0
  ls_c: float = 1.0
  compute_dtype: str = "float32"
  nan_skip: bool = False
  batch_size: int = 1


  def init(self, key: jax.Array, data_shape: tuple) -> CycleGANState:
    """A fresh state (call under jit with the state's shardings); G_AB, G_BA, D_A, D_B from 4 keys."""
    keys = dict(zip(("g_ab", "g_ba", "d_a", "d_b"), jax.random.split(key, 4)))
    x = jnp.zeros((1, *data_shape))
    g_params = {k: self.generator.init(keys[k], x, train=False)["params"] for k in ("g_ab", "g_ba")}
    d_params = {k: self.discriminator.init(keys[k], x, train=False)["params"] for k in ("d_a", "d_b")}
    return CycleGANState(step=jnp.zeros((), jnp.int32), g_params=g_params, g_vars={}, d_params=d_params, d_vars={},
                         g_opt=self.g_tx.init(g_params), d_opt=self.d_tx.init(d_params),
                         pool={d: pool_init(self.pool_size, data_shape) for d in ("a", "b")},
                         reg_state=machinery.nan_state(self.nan_skip))

  def translate(self, params: Params, x: jax.Array) -> jax.Array:
    """One generator (params["g_ab"] or ["g_ba"]) applied to images x [B, H, W, C]."""
    return machinery.apply(self.generator, params, {}, (x, None), None, False, dtype=self.compute_dtype)[0]

  def discriminate(self, params: Params, x: jax.Array) -> jax.Array:
    return machinery.apply(self.discriminator, params, {}, (x, None), None, True, dtype=self.compute_dtype)[0]

  def step(self, state: CycleGANState, batch: dict, key: jax.Array) -> tuple[CycleGANState, dict]:
    return train_step(self, state, batch, key)

  def generator_params(self, state: CycleGANState) -> Params:
    return state.g_params

  def sampler(self, mesh, chunk: int, truncation: float = 1.0) -> None:
    """None: a translation model draws nothing from latents (scripts/translate.py translates images)."""
    return None

  def grid(self, mesh, ds, n: int, truncation: float = 1.0):
    """The first n examples of both domains of dataset `ds` (its deterministic transform), one row per
    example: a, G_AB(a), G_BA(G_AB(a)), b, G_BA(b), G_AB(G_BA(b)). Returns grid(state, key) ->
    (images [6n, H, W, C], 6 columns)."""
    examples = [ds.transform(ds.source[i]) for i in range(n)]
    fixed = {k: replicate(np.stack([e[k] for e in examples]), mesh) for k in ("a", "b")}

    @functools.partial(jax.jit, out_shardings=replicated(mesh))
    def rows(g_params, a, b):
      g_params = jax.lax.with_sharding_constraint(g_params, replicated(mesh))
      ab, ba = self.translate(g_params["g_ab"], a), self.translate(g_params["g_ba"], b)
      aba, bab = self.translate(g_params["g_ba"], ab), self.translate(g_params["g_ab"], ba)
      return jnp.stack([a, ab, aba, b, ba, bab], axis=1).reshape(-1, *a.shape[1:])

    return lambda state, key: (np.asarray(rows(state.g_params, fixed["a"], fixed["b"])), 6)


def train_step(cg: CycleGAN, state: CycleGANState, batch: dict, key: jax.Array) -> tuple[CycleGANState, dict]:
  """key: the run's base key, folded with the step (the pools' draws)."""
  key = jax.random.fold_in(key, state.step)
  real_a, real_b = batch["a"][0], batch["b"][0]
  d_params = state.d_params

  def g_loss_fn(g_params):
    fake_b = cg.translate(g_params["g_ab"], real_a)
    fake_a = cg.translate(g_params["g_ba"], real_b)
    cycle_a = l1(cg.translate(g_params["g_ba"], fake_b), real_a)
    cycle_b = l1(cg.translate(g_params["g_ab"], fake_a), real_b)
    adv = lsgan_g(cg.discriminate(d_params["d_b"], fake_b), cg.ls_c) + lsgan_g(
        cg.discriminate(d_params["d_a"], fake_a), cg.ls_c)
    idt = jnp.zeros((), jnp.float32)
    if cg.lambda_identity > 0:   # the official code skips these two passes when the weight is 0
      idt = l1(cg.translate(g_params["g_ab"], real_b), real_b) + l1(cg.translate(g_params["g_ba"], real_a), real_a)
    loss = adv + cg.lambda_cycle * (cycle_a + cycle_b) + cg.lambda_cycle * cg.lambda_identity * idt
    logs = {"g_loss": loss, "g_adv": adv, "cycle_loss": cycle_a + cycle_b, "cycle_a": cycle_a, "cycle_b": cycle_b,
            "idt_loss": idt}
    return loss, (fake_a, fake_b, logs)

  g_grads, (fake_a, fake_b, g_logs) = jax.grad(g_loss_fn, has_aux=True)(state.g_params)
  g_params, g_opt, g_norm = machinery.update(cg.g_tx, g_grads, state.g_opt, state.g_params)

  # D sees the fakes of the G before its update (computed once, as the official forward()), drawn
  # through the history pools.
  key_a, key_b = jax.random.split(key)
  pool_a, hist_a = pool_query(state.pool["a"], jax.lax.stop_gradient(fake_a), key_a)
  pool_b, hist_b = pool_query(state.pool["b"], jax.lax.stop_gradient(fake_b), key_b)

  def d_loss_fn(d_params):
    real_logits_a, fake_logits_a = cg.discriminate(d_params["d_a"], real_a), cg.discriminate(d_params["d_a"], hist_a)
    real_logits_b, fake_logits_b = cg.discriminate(d_params["d_b"], real_b), cg.discriminate(d_params["d_b"], hist_b)
    d_a = lsgan_d(real_logits_a, fake_logits_a, cg.ls_a, cg.ls_b)
    d_b = lsgan_d(real_logits_b, fake_logits_b, cg.ls_a, cg.ls_b)
    means = {"d_real": 0.5 * (jnp.mean(real_logits_a) + jnp.mean(real_logits_b)),
             "d_fake": 0.5 * (jnp.mean(fake_logits_a) + jnp.mean(fake_logits_b))}
    return d_a + d_b, {"d_loss": d_a + d_b, "d_a_loss": d_a, "d_b_loss": d_b, **means}

  d_grads, d_logs = jax.grad(d_loss_fn, has_aux=True)(state.d_params)
  d_params, d_opt, d_norm = machinery.update(cg.d_tx, d_grads, state.d_opt, state.d_params)
  after = state.replace(g_params=g_params, g_opt=g_opt, d_params=d_params, d_opt=d_opt,
                        pool={"a": pool_a, "b": pool_b})
  return machinery.finish(state, after, {**g_logs, **d_logs, "g_grad_norm": g_norm, "d_grad_norm": d_norm},
                          cg.nan_skip)


# ------------------------------------------------------------------------------ construction

def build(config: ConfigDict, spec: DataSpec) -> CycleGAN:
  """The CycleGAN of `config` (model.name=cyclegan) for data of `spec`; ConfigError for settings
  it cannot honour."""
  if config.loss.name != "least_squares":
    raise ConfigError(f"model 'cyclegan' trains with loss.name=least_squares (the paper's LSGAN), "
                      f"got {config.loss.name!r}")
  m = config.model
  if m.lambda_cycle < 0 or m.lambda_identity < 0 or m.pool_size < 0 or m.lr_hold_steps < 0 or m.lr_decay_steps < 0:
    raise ConfigError("model.lambda_cycle, lambda_identity, pool_size, lr_hold_steps and lr_decay_steps must be >= 0")
  generator, discriminator = build_models(m, spec)
  return CycleGAN(generator=generator, discriminator=discriminator,
                  g_tx=machinery.make_optimizer(config.optim.g, linear_decay(config.optim.g.lr, m.lr_hold_steps,
                                                                             m.lr_decay_steps)),
                  d_tx=machinery.make_optimizer(config.optim.d, linear_decay(config.optim.d.lr, m.lr_hold_steps,
                                                                             m.lr_decay_steps)),
                  lambda_cycle=m.lambda_cycle, lambda_identity=m.lambda_identity, pool_size=m.pool_size,
                  ls_a=config.loss.ls_a, ls_b=config.loss.ls_b, ls_c=config.loss.ls_c,
                  compute_dtype=config.precision, nan_skip=config.nan_policy == "skip",
                  batch_size=config.batch_size)


# What CycleGAN reads beyond the keys of every run: two domains with random crops, its LSGAN codes,
# bf16 compute, NaN skip and populations (vmap-ed by the loop). No latents, EMA, penalties,
# augmentation or accumulation.
KINDS.register("translation")(Kind(build=build, blocks=("two_domain", "crop"),
                                   honours=("loss.ls_a", "loss.ls_b", "loss.ls_c", "precision", "nan_policy",
                                            "population")))
