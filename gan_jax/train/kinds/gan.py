"""The "gan" training kind: G(z, y) against D(x, y), and its pure train step
`(state, batch, key) -> (state, metrics)`.

One step = `n_critic` discriminator updates (one per row of `batch["x"]`, shape
[n_critic, B, ...]) followed by one generator update and the EMA update (`update_order="g_first"`:
the generator update first, then the D updates, as the official StyleGAN2-ADA loop runs its phases
Gmain, Greg, Dmain, Dreg). Randomness comes
only from `key`, folded with the state's step, so a resumed run draws the same latents.
Conditional models read the real labels from `batch["label"]`; fake labels are drawn uniformly
over the classes (`model.fake_labels="uniform"`: BigGAN, StudioGAN) or are the labels of the real
batch the update pairs them with (`"real"`: the official R3GAN loop, where RpGAN compares each fake
with a real of its class). Nothing here touches the host: the loop jit-compiles it with explicit
shardings.

`batch["draws"]` (optional; no data pipeline makes it) replaces the step's random draws with given
arrays, so that another implementation can be fed exactly the same ones (the official-code parity
tests): "d_z" [n_critic, B, z_dim] and "d_labels" [n_critic, B] for the D updates, "g_z" [B, z_dim]
and "g_labels" [B] for the G update, "pl_noise" [B / pl_batch_shrink, H, W, C] for the path-length
penalty (y ~ N(0, I) before the 1/sqrt(H·W) scaling), "pl_z" [>= B / pl_batch_shrink, z_dim] and
"pl_labels" for the latents of a separate path-length step (`reg.lazy_form="separate"`: its first
B / pl_batch_shrink rows; the official Greg phase draws its own), and "noise_const" (StyleGAN2's
fixed noise maps, the collection of that name: every training pass of G then uses them, the
official noise_mode 'const', instead of fresh noise). Each one given is used; the rest come from `key`.

Lazy regularization (`reg.lazy_every`, `reg.pl_every` > 1; gan_jax/regularizers.py) has two forms:
`reg.lazy_form="combined"` adds the interval-scaled penalty to that step's ordinary gradient;
`"separate"` takes it as an optimizer step of its own right after the ordinary update (D: the
gradient penalties on the same reals; G: the path-length penalty on its own latents), with the
optimizers' learning rate scaled by c = k/(k+1) and their betas raised to c (the official
StyleGAN2-ADA loop's `mb_ratio`, k the net's interval). `model.g_stats="all_passes"` keeps G's
state updates (StyleGAN2's w_avg) from every training pass of G (the D step's fakes and the
path-length pass too, as the official mapping network updates w_avg on every call); "g_step": from
the G update's main pass only.

Which forward passes move the networks' state collections (BatchNorm statistics, spectral-norm vectors):
`model.state_updates="own"` (the default): only a network's own update moves its state (the D step's G
forward and the G step's D forwards leave the other network's state as it was); "all": every training-mode
forward does, as PyTorch code whose networks stay in train mode throughout (BigGAN-PyTorch: the D step's
G(z) under no_grad moves G's BN statistics and u vectors, the G step's D(G(z)) moves D's u vectors).
`model.d_joint`: D sees the fakes and reals of a D step in one call on [fakes; reals] (BigGAN-PyTorch's
G_D without --split_D): one power iteration per D step instead of one per call, and a D with BatchNorm
normalizes over both halves.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from gan_jax import regularizers as regs
from gan_jax.augment import Augment, make_augment
from gan_jax.blocks import BLOCKS, Block
from gan_jax.errors import ConfigError
from gan_jax.losses import AdversarialLoss, make_loss
from gan_jax.models import MODELS, DataSpec, build_models
from gan_jax.optim import make_optimizer
from gan_jax.schedules import cosine_ramp
from gan_jax.train import machinery
from gan_jax.train.kinds import KINDS, Kind, Trainer, check_split
from gan_jax.train.machinery import fold
from gan_jax.train.state import TrainState, init_state, sample_latents

UPDATE_ORDERS = ("d_first", "g_first")
G_STATS = ("g_step", "all_passes")


@dataclasses.dataclass(frozen=True)
class GAN(Trainer):
  """The static parts of a GAN the step closes over (hashable, so usable as a jit static)."""
  generator: nn.Module
  discriminator: nn.Module
  loss: AdversarialLoss
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  z_dim: int
  z_dist: str
  batch_size: int
  ema_decay: float = 0.0
  ema_halflife_kimg: float = 0.0
  ema_halflife_final_kimg: float | None = None
  ema_rampup: float = 0.0
  reg: regs.Regularization = regs.Regularization()
  gamma_final: float | None = None      # final R1/R2 weight of the gamma schedule
  n_critic: int = 1
  schedule_images: float = 0.0          # duration of the cosine ramps (schedule.kimg · 1000)
  num_classes: int = 0                  # > 0: G and D are conditional on labels
  fake_labels: str = "uniform"          # "uniform" or "real": the fakes' labels (see the module docstring)
  reuse_fake: bool = False              # train.reuse_fake: one G forward per step (see reuse_fake_step)
  truncation_mode: str | None = None    # "z", "w" or None: how sample truncation applies
  augment: Augment = Augment()          # what D sees: aug(x) (gan_jax/augment); Augment() = none
  nan_skip: bool = False                # nan_policy="skip": a step with a non-finite value is undone
  grad_accum: int = 1                   # micro-batches per update (gradients averaged; see machinery.accumulated_grad)
  compute_dtype: str = "float32"        # "bfloat16": G and D compute in bf16 (see machinery.apply)
  update_order: str = "d_first"         # or "g_first": the G update before the D updates (StyleGAN2-ADA)
  g_stats: str = "g_step"               # or "all_passes": G's state updates from every training pass of G
  ema_start: int = 0                    # the EMA copies G on steps s (from 1) < ema_start (BigGAN's --ema_start)
  d_joint: bool = False                 # D on [fakes; reals] in one call (see the module docstring)
  state_updates: str = "own"            # "own" or "all": which forwards move state collections (module docstring)

  def init(self, key: jax.Array, data_shape: tuple) -> TrainState:
    """A fresh train state (call under jit with the state's shardings)."""
    reg_state = regs.lecam_init() if self.reg.lecam > 0 else {}
    if self.reg.pl_weight > 0:
      reg_state["pl_mean"] = jnp.zeros((), jnp.float32)
    reg_state.update(self.augment.init_state())   # the adaptive augmentation p, when there is one
    reg_state.update(machinery.nan_state(self.nan_skip))
    return init_state(key, self.generator, self.discriminator, data_shape, self.z_dim, self.g_tx,
                      self.d_tx, self.use_ema, reg_state, self.num_classes)

  def step(self, state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
    return train_step(self, state, batch, key)

  def check_devices(self, n_devices: int, n_processes: int) -> None:
    check_split(self.batch_size, n_devices, n_processes, self.grad_accum)

  def d_update(self, state: TrainState, real: jax.Array, key: jax.Array, d_step: jax.Array | int = 0,
               real_labels: jax.Array | None = None, draws: dict | None = None) -> tuple[TrainState, dict]:
    """One discriminator update alone (`d_update`; scripts/benchmark.py times its penalties)."""
    return d_update(self, state, real, key, d_step, real_labels, draws)

  def images(self, step: jax.Array) -> jax.Array:
    """Training progress in images after `step` G steps."""
    return step.astype(jnp.float32) * self.batch_size

  @property
  def use_ema(self) -> bool:
    # R3GAN ramps the half-life up from 0: a final value alone turns the EMA on.
    return self.ema_decay > 0 or self.ema_halflife_kimg > 0 or (self.ema_halflife_final_kimg or 0) > 0

  @property
  def batches_per_step(self) -> int:
    """Real batches one step reads: n_critic for D, plus a fresh one for G when G's loss uses
    real logits (relativistic losses; as the R3GAN and RelativisticGAN training loops do)."""
    return self.n_critic + (1 if self.loss.g_uses_real else 0)

  def latents(self, key: jax.Array, n: int, truncation: float = 1.0) -> jax.Array:
    """z [n, z_dim]; `truncation` < 1 with a "z"-truncation model: BigGAN's truncated normal."""
    if truncation < 1.0 and self.truncation_mode == "z":
      return jax.random.truncated_normal(key, -truncation, truncation, (n, self.z_dim))
    return sample_latents(key, n, self.z_dim, self.z_dist)

  def labels(self, key: jax.Array, n: int) -> jax.Array | None:
    """Class labels for n fakes, uniform over the classes; None for unconditional models."""
    return jax.random.randint(key, (n,), 0, self.num_classes) if self.num_classes else None

  def fake_inputs(self, z_key: jax.Array, y_key: jax.Array, n: int, real_labels: jax.Array | None,
                  draws: dict | None) -> tuple[jax.Array, jax.Array | None]:
    """(z, labels) of an update's n fakes: the given draws where there are some, else drawn from
    the keys; the labels follow `fake_labels` (the paired reals' labels for "real")."""
    draws = draws or {}
    z = draws["z"] if "z" in draws else self.latents(z_key, n)
    if not self.num_classes:
      return z, None
    if "labels" in draws:
      return z, draws["labels"]
    if self.fake_labels == "real" and real_labels is not None:
      return z, real_labels
    return z, self.labels(y_key, n)

  def generate(self, params: Any, g_vars: dict, z: jax.Array, y: jax.Array | None = None,
               key: jax.Array | None = None, train: bool = True, truncation: float = 1.0,
               method: str | None = None, consts: dict | None = None) -> tuple[jax.Array, dict]:
    """G(z, y) (or G's `method`). In train mode normalization layers use batch statistics and
    the state collections (BN statistics, spectral-norm vectors) are updated: returns the update.
    `consts`: read-only collections given at apply time (the fed "noise_const" maps)."""
    kwargs = {"truncation_psi": truncation} if truncation < 1.0 and self.truncation_mode == "w" else {}
    return machinery.apply(self.generator, params, g_vars, (z, y), key, train, method, kwargs, self.compute_dtype,
                           consts)

  def discriminate(self, params: Any, d_vars: dict, x: jax.Array, y: jax.Array | None = None,
                   key: jax.Array | None = None) -> tuple[jax.Array, dict]:
    return machinery.apply(self.discriminator, params, d_vars, (x, y), key, True, dtype=self.compute_dtype)

  def ema_beta(self, step: jax.Array) -> jax.Array:
    """Per-step EMA decay: `ema.decay`, or 0.5^(B / half-life in images) (StyleGAN2-ADA)."""
    if self.ema_decay > 0:
      return jnp.asarray(self.ema_decay, jnp.float32)
    half_life = 1000.0 * cosine_ramp(self.ema_halflife_kimg, self.ema_halflife_final_kimg,
                                     self.schedule_images)(self.images(step))
    if self.ema_rampup > 0:
      half_life = jnp.minimum(half_life, step.astype(jnp.float32) * self.batch_size * self.ema_rampup)
    return 0.5 ** (self.batch_size / jnp.maximum(half_life, 1e-8))


def d_update(gan: GAN, state: TrainState, real: jax.Array, key: jax.Array, d_step: jax.Array | int = 0,
             real_labels: jax.Array | None = None, draws: dict | None = None,
             fake: jax.Array | None = None) -> tuple[TrainState, dict]:
  """One discriminator update; `d_step` counts D updates over the run (for lazy penalties);
  `draws`: {"z", "labels", "noise_const"} given instead of drawn (see the module docstring); `fake`:
  G's output for those, already computed (train.reuse_fake), instead of a G forward here."""
  z_key, reg_key = jax.random.split(key)
  y_key, g_key, d_key = (jax.random.fold_in(key, i) for i in (1, 2, 3))
  n = real.shape[0]
  real_labels = real_labels if gan.num_classes else None
  z, fake_labels = gan.fake_inputs(z_key, y_key, n, real_labels, draws)
  inputs = {"real": real, "z": z, "fake_labels": fake_labels, "real_labels": real_labels}
  if fake is not None:
    inputs["fake"] = jax.lax.stop_gradient(fake)
  reg = gan.reg
  images = gan.images(state.step)
  aug_p = _augmenters(gan, state, key)[0]
  consts = _consts(draws)
  separate = reg.lazy_form == "separate"

  def grads_of(d_params, m, i):
    """Gradient and auxiliaries of one (micro-)batch `m`; `i` its index (None: the whole batch)."""
    _, aug_real, aug_fake = _augmenters(gan, state, fold(key, i))
    # G's state updates from this forward pass are kept with g_stats="all_passes" or state_updates="all" only.
    if "fake" in m:   # train.reuse_fake: the caller made G's forward (and keeps its statistics)
      fake, g_vars = m["fake"], state.g_vars
    else:
      fake, g_vars = gan.generate(state.g_params, state.g_vars, m["z"], m["fake_labels"], fold(g_key, i),
                                  consts=consts)
    fake = jax.lax.stop_gradient(fake)
    real, real_labels, fake_labels = m["real"], m["real_labels"], m["fake_labels"]

    def loss_fn(d_params):
      # R1 and R2 at every step look at the adversarial term's inputs (D∘aug at the un-augmented
      # reals and fakes, with the same draws): their input gradients come from the adversarial
      # forward passes themselves (one forward per input instead of two, and one backward through
      # it). Only where D keeps no state: a D with BatchNorm statistics or spectral-norm vectors
      # gives the penalties its state after both adversarial passes, as the unfused form does.
      fuse = reg.lazy_every <= 1 and not state.d_vars and not separate
      sq_norms = {}

      def logits(x, labels, aug, name, d_vars):
        if fuse and getattr(reg, name) > 0:
          d_fn = lambda x: gan.discriminate(d_params, d_vars, aug(x), labels, d_key)[0]  # noqa: E731
          out, sq_norms[name] = regs.logits_and_grad_sq_norm(d_fn, x)
          return out, d_vars
        return gan.discriminate(d_params, d_vars, aug(x), labels, d_key)

      if gan.d_joint and not (fuse and (reg.r1 > 0 or reg.r2 > 0)):
        fake_logits, real_logits, d_vars = _joint_logits(gan, d_params, state.d_vars, aug_fake(fake), fake_labels,
                                                         aug_real(real), real_labels, d_key)
      else:
        real_logits, d_vars = logits(real, real_labels, aug_real, "r1", state.d_vars)
        fake_logits, d_vars = logits(fake, fake_labels, aug_fake, "r2", d_vars)
      adversarial = gan.loss.d(real_logits, fake_logits)
      loss, logs, reg_state = adversarial, {}, state.reg_state
      if reg.has_gradient_penalty and not separate:
        # Penalties see D with the statistics of this step; their own statistics updates are dropped.
        # With augmentation they differentiate D∘aug at the un-augmented inputs (R3GAN), with the
        # draws of the adversarial term's reals (fakes for R2).
        d_fn = lambda x: gan.discriminate(d_params, d_vars, aug_real(x), real_labels, d_key)[0]  # noqa: E731
        d_fn_fake = lambda x: gan.discriminate(d_params, d_vars, aug_fake(x), fake_labels, d_key)[0]  # noqa: E731
        weights = {"r1": cosine_ramp(reg.r1, gan.gamma_final, gan.schedule_images)(images),
                   "r2": cosine_ramp(reg.r2, gan.gamma_final, gan.schedule_images)(images)}

        def penalties(_):
          return regs.gradient_penalties(reg, d_fn, real, fake, fold(reg_key, i), weights, d_fn_fake, sq_norms)

        if reg.lazy_every > 1:
          # StyleGAN2's lazy regularization: every k-th D step, scaled by k.
          zeros = jax.eval_shape(penalties, None)
          def scaled(_):
            total, logs = penalties(None)
            return total * reg.lazy_every, logs   # logs stay raw; zero on the skipped steps

          total, logs = jax.lax.cond(
              jnp.asarray(d_step) % reg.lazy_every == 0, scaled,
              lambda _: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros), None)
        else:
          total, logs = penalties(None)
        loss = loss + total
      if reg.drift > 0:
        logs["drift"] = regs.drift(real_logits, reg.drift_form)
        loss = loss + reg.drift * logs["drift"]
      if reg.lecam > 0:
        reg_state, anchor_real, anchor_fake = regs.lecam_anchors(state.reg_state, real_logits, fake_logits,
                                                                 reg.lecam_decay)
        logs["lecam"] = regs.lecam(real_logits, fake_logits, anchor_real, anchor_fake)
        loss = loss + reg.lecam * logs["lecam"]
      return loss, (d_vars, reg_state, real_logits, fake_logits, {"d_loss": adversarial, **logs})

    grads, aux = jax.grad(loss_fn, has_aux=True)(d_params)
    return grads, (*aux, g_vars)

  k = gan.grad_accum
  grads, (d_vars, reg_state, real_logits, fake_logits, logs, g_vars) = machinery.accumulated_grad(
      grads_of, state.d_params, inputs, k)
  d_vars, reg_state, logs, g_vars = machinery.mean_micro((d_vars, reg_state, logs, g_vars), k)
  if k > 1:   # back to batch order (micro-batch i holds rows i, i+k, ...)
    real_logits, fake_logits = (jnp.swapaxes(x, 0, 1).reshape(n) for x in (real_logits, fake_logits))
  d_params, d_opt, grad_norm = machinery.update(gan.d_tx, grads, state.d_opt, state.d_params)
  if reg.clip > 0:
    d_params = regs.clip_weights(d_params, reg.clip)
  d_params = regs.project_unit_heads(d_params)   # model.d_unit_head (no layer of that name: unchanged)
  if gan.augment.enabled:
    reg_state = gan.augment.update(reg_state, real_logits, d_step, n)
    # aug_rt: E[sign(D(aug(real)))] of this D step, ADA's overfitting heuristic r_t.
    logs = {**logs, "aug_p": aug_p, "aug_rt": jnp.mean(jnp.sign(real_logits.astype(jnp.float32)))}
  keep_g = gan.g_stats == "all_passes" or gan.state_updates == "all"
  state = state.replace(d_params=d_params, d_vars=d_vars, d_opt=d_opt, reg_state=reg_state,
                        g_vars=g_vars if keep_g else state.g_vars)
  if separate and reg.has_gradient_penalty:
    state, reg_logs = _d_reg_update(gan, state, inputs, key, d_step, consts)
    logs = {**logs, **reg_logs}
  # d_loss is the adversarial term alone (comparable across regularizers); penalties are logged raw.
  return state, {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
                 "d_grad_norm": grad_norm, **logs}


def _consts(draws: dict | None) -> dict | None:
  """The read-only collections fed with the draws: {"noise_const": maps} when given."""
  return {"noise_const": draws["noise_const"]} if draws and "noise_const" in draws else None


def _skippable(predicate: jax.Array, update, state: TrainState) -> tuple[TrainState, dict]:
  """`update(state) -> (state, logs)` where `predicate` holds, else the state unchanged and zero logs."""
  logs = jax.eval_shape(update, state)[1]
  skip = lambda s: (s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), logs))  # noqa: E731
  return jax.lax.cond(predicate, update, skip, state)


def _d_reg_update(gan: GAN, state: TrainState, inputs: dict, key: jax.Array, d_step: jax.Array | int,
                  consts: dict | None) -> tuple[TrainState, dict]:
  """The separate lazy D regularization step (`reg.lazy_form="separate"`, every `reg.lazy_every`-th D
  update, right after it; StyleGAN2-ADA's Dreg phase): an optimizer step on lazy_every times the
  gradient penalties alone, at D's weights after the main update, on that update's reals (and its
  fakes, regenerated from the same draws, for the penalties that need them). Logs the raw penalties
  (zeros on the skipped steps)."""
  reg = gan.reg
  reg_key = jax.random.split(key)[1]
  g_key, d_key = jax.random.fold_in(key, 2), jax.random.fold_in(key, 3)
  needs_fakes = reg.r2 > 0 or reg.wgan_gp > 0

  def update(state):
    images = gan.images(state.step)
    weights = {"r1": cosine_ramp(reg.r1, gan.gamma_final, gan.schedule_images)(images),
               "r2": cosine_ramp(reg.r2, gan.gamma_final, gan.schedule_images)(images)}

    def grads_of(d_params, m, i):
      _, aug_real, aug_fake = _augmenters(gan, state, fold(key, i))
      fake = m["real"]
      if needs_fakes:
        fake = jax.lax.stop_gradient(gan.generate(state.g_params, state.g_vars, m["z"], m["fake_labels"],
                                                  fold(g_key, i), consts=consts)[0])

      def loss_fn(d_params):
        d_fn = lambda x: gan.discriminate(d_params, state.d_vars, aug_real(x), m["real_labels"], d_key)[0]  # noqa: E731
        d_fn_fake = lambda x: gan.discriminate(d_params, state.d_vars, aug_fake(x), m["fake_labels"], d_key)[0]  # noqa: E731
        total, logs = regs.gradient_penalties(reg, d_fn, m["real"], fake, fold(reg_key, i), weights, d_fn_fake)
        return total * reg.lazy_every, logs

      return jax.grad(loss_fn, has_aux=True)(d_params)

    grads, logs = machinery.accumulated_grad(grads_of, state.d_params, inputs, gan.grad_accum)
    logs = machinery.mean_micro(logs, gan.grad_accum)
    d_params, d_opt, _ = machinery.update(gan.d_tx, grads, state.d_opt, state.d_params)
    if reg.clip > 0:
      d_params = regs.clip_weights(d_params, reg.clip)
    d_params = regs.project_unit_heads(d_params)
    return state.replace(d_params=d_params, d_opt=d_opt), logs

  return _skippable(jnp.asarray(d_step) % reg.lazy_every == 0, update, state)


def _joint_logits(gan: GAN, d_params: Any, d_vars: dict, fake: jax.Array, fake_labels: jax.Array | None,
                  real: jax.Array, real_labels: jax.Array | None, key: jax.Array):
  """(fake logits, real logits, D's new state) from one D call on [fakes; reals] (`d_joint`)."""
  labels = None if real_labels is None else jnp.concatenate([fake_labels, real_labels])
  logits, d_vars = gan.discriminate(d_params, d_vars, jnp.concatenate([fake, real]), labels, key)
  return logits[:fake.shape[0]], logits[fake.shape[0]:], d_vars


def _augmenters(gan: GAN, state: TrainState, key: jax.Array):
  """(p, aug_real, aug_fake): the current augmentation probability and the two augmentations of
  this update (per-image draws from keys folded out of the update's key; identities when off)."""
  if not gan.augment.enabled:
    return None, (lambda x: x), (lambda x: x)
  p = gan.augment.probability(state.reg_state, gan.images(state.step), gan.schedule_images)
  real_key, fake_key = jax.random.fold_in(key, 5), jax.random.fold_in(key, 6)
  return p, (lambda x: gan.augment(real_key, x, p)), (lambda x: gan.augment(fake_key, x, p))


def g_update(gan: GAN, state: TrainState, real: jax.Array, key: jax.Array,
             real_labels: jax.Array | None = None, draws: dict | None = None) -> tuple[TrainState, dict]:
  """One generator update; `draws`: {"z", "labels", "pl_noise", "pl_z", "pl_labels", "noise_const"} given
  instead of drawn."""
  y_key, g_key, d_key, pl_key = (jax.random.fold_in(key, i) for i in (1, 2, 3, 4))
  n = real.shape[0]
  real_labels = real_labels if gan.num_classes else None
  z, fake_labels = gan.fake_inputs(key, y_key, n, real_labels, draws)
  inputs = {"real": real, "z": z, "fake_labels": fake_labels, "real_labels": real_labels}
  pl_noise = (draws or {}).get("pl_noise")
  reg = gan.reg
  consts = _consts(draws)
  separate = reg.lazy_form == "separate"

  def grads_of(g_params, m, i):
    _, aug_real, aug_fake = _augmenters(gan, state, fold(key, i))
    z, fake_labels = m["z"], m["fake_labels"]

    def loss_fn(g_params):
      fake, g_vars = gan.generate(g_params, state.g_vars, z, fake_labels, fold(g_key, i), consts=consts)
      # D is not updated by the G step: its state updates are dropped, unless state_updates="all".
      fake_logits, d_vars = gan.discriminate(state.d_params, state.d_vars, aug_fake(fake), fake_labels, d_key)
      d_vars = d_vars if gan.state_updates == "all" else state.d_vars
      real_logits = jnp.zeros_like(fake_logits)
      if gan.loss.g_uses_real:
        real_logits, d_vars_real = gan.discriminate(state.d_params, d_vars, aug_real(m["real"]), m["real_labels"],
                                                    d_key)
        d_vars = d_vars_real if gan.state_updates == "all" else d_vars
      adversarial = gan.loss.g(real_logits, fake_logits)
      loss, logs, reg_state = adversarial, {}, state.reg_state
      if reg.ortho > 0:
        logs["ortho"] = regs.orthogonal(g_params)
        loss = loss + reg.ortho * logs["ortho"]
      if reg.pl_weight > 0 and not separate:
        pl, reg_state, logs["pl_length"], g_vars = _path_length_penalty(
            gan, g_params, g_vars, z, fake_labels, fold(g_key, i), fold(pl_key, i), state.step, reg_state, pl_noise,
            consts)
        logs["pl_penalty"] = pl
        loss = loss + reg.pl_weight * reg.pl_every * pl
      return loss, (g_vars, reg_state, {"g_loss": adversarial, **logs}, d_vars)

    return jax.grad(loss_fn, has_aux=True)(g_params)

  k = gan.grad_accum
  grads, aux = machinery.accumulated_grad(grads_of, state.g_params, inputs, k)
  g_vars, reg_state, logs, d_vars = machinery.mean_micro(aux, k)
  g_params, g_opt, grad_norm = machinery.update(gan.g_tx, grads, state.g_opt, state.g_params)
  state = state.replace(g_params=g_params, g_vars=g_vars, g_opt=g_opt, reg_state=reg_state,
                        d_vars=d_vars if gan.state_updates == "all" else state.d_vars)
  if separate and reg.pl_weight > 0:
    state, pl_logs = _g_reg_update(gan, state, key, n, real_labels, draws, consts)
    logs = {**logs, **pl_logs}
  return state, {**logs, "g_grad_norm": grad_norm}


def _g_reg_update(gan: GAN, state: TrainState, key: jax.Array, n: int, real_labels: jax.Array | None,
                  draws: dict | None, consts: dict | None) -> tuple[TrainState, dict]:
  """The separate path-length step (`reg.lazy_form="separate"`, every `reg.pl_every`-th G update, right
  after it; StyleGAN2-ADA's Greg phase): an optimizer step on pl_weight · pl_every · the penalty alone,
  at G's weights after the main update, on B / pl_batch_shrink latents of its own (draws "pl_z",
  "pl_labels", else drawn; labels the reals' with fake_labels="real"). Not split into micro-batches."""
  reg, draws = gan.reg, draws or {}
  m = max(1, n // reg.pl_batch_shrink)
  z_key, y_key = jax.random.fold_in(key, 7), jax.random.fold_in(key, 8)
  z = draws["pl_z"][:m] if "pl_z" in draws else gan.latents(z_key, m)
  labels = None
  if gan.num_classes:
    labels = (draws["pl_labels"][:m] if "pl_labels" in draws else
              real_labels[:m] if gan.fake_labels == "real" and real_labels is not None else gan.labels(y_key, m))
  noise_key, pl_key = jax.random.fold_in(key, 2), jax.random.fold_in(key, 4)

  def update(state):
    def loss_fn(g_params):
      pl, pl_mean, length, g_vars = _path_length(gan, g_params, state.g_vars, z, labels, noise_key, pl_key,
                                                 state.reg_state, draws.get("pl_noise"), consts)
      return reg.pl_weight * reg.pl_every * pl, (pl_mean, g_vars, {"pl_penalty": pl, "pl_length": length})

    grads, (pl_mean, g_vars, logs) = jax.grad(loss_fn, has_aux=True)(state.g_params)
    g_params, g_opt, _ = machinery.update(gan.g_tx, grads, state.g_opt, state.g_params)
    return state.replace(g_params=g_params, g_opt=g_opt, g_vars=g_vars,
                         reg_state={**state.reg_state, "pl_mean": pl_mean}), logs

  return _skippable(state.step % reg.pl_every == 0, update, state)


def _path_length(gan: GAN, g_params: Any, g_vars: dict, z: jax.Array, labels: jax.Array | None,
                 noise_key: jax.Array, key: jax.Array, reg_state: dict, pl_noise: jax.Array | None = None,
                 consts: dict | None = None):
  """StyleGAN2's path-length penalty on the latents z: (penalty, new pl_mean, mean length, G's state).
  The target a = lerp(pl_mean, mean length, pl_decay) is differentiated through, as in both official
  implementations (loss.py `pl_mean.lerp(...)`, the TF original's `pl_mean_var + decay · (...)`); the
  stored EMA is not. G's state updates of this pass are kept with g_stats="all_passes" only."""
  reg = gan.reg
  ws, new_vars = gan.generate(g_params, g_vars, z, labels, noise_key, method="mapping", consts=consts)
  synth = lambda w: gan.generate(g_params, g_vars, w, None, noise_key, method="synthesis", consts=consts)[0]  # noqa: E731
  lengths = regs.path_lengths(synth, ws, key, pl_noise)
  pl_mean = reg_state["pl_mean"] + reg.pl_decay * (jnp.mean(lengths) - reg_state["pl_mean"])
  g_vars = new_vars if gan.g_stats == "all_passes" else g_vars
  return jnp.mean(jnp.square(lengths - pl_mean)), jax.lax.stop_gradient(pl_mean), jnp.mean(lengths), g_vars


def _path_length_penalty(gan: GAN, g_params: Any, g_vars: dict, z: jax.Array, labels: jax.Array | None,
                         noise_key: jax.Array, key: jax.Array, step: jax.Array, reg_state: dict,
                         pl_noise: jax.Array | None = None, consts: dict | None = None):
  """StyleGAN2's lazy path-length penalty on the first B / pl_batch_shrink latents, every
  `pl_every`-th G step (zero otherwise; the caller scales it by pl_every); returns the penalty,
  the updated state (EMA of the mean length, moved on the penalty's steps only), the mean
  length and G's state (see `_path_length`)."""
  reg = gan.reg
  m = max(1, z.shape[0] // reg.pl_batch_shrink)
  y = labels[:m] if labels is not None else None

  def penalty(_):
    return _path_length(gan, g_params, g_vars, z[:m], y, noise_key, key, reg_state, pl_noise, consts)

  def skip(_):
    zero = jnp.zeros((), jnp.float32)
    return zero, reg_state["pl_mean"], zero, g_vars

  pl, pl_mean, length, g_vars = jax.lax.cond(step % reg.pl_every == 0, penalty, skip, None)
  return pl, {**reg_state, "pl_mean": pl_mean}, length, g_vars


def train_step(gan: GAN, state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
  """batch["x"]: [batches_per_step, B, ...] real data (the first n_critic rows for D, the last
  for G when its loss needs reals); key: the run's base key (folded with the step)."""
  key = jax.random.fold_in(key, state.step)
  d_key, g_key = jax.random.split(key)
  before = state
  reals = batch["x"]
  labels = batch.get("label") if gan.num_classes else None
  draws = batch.get("draws", {})
  shared = {"noise_const": draws["noise_const"]} if "noise_const" in draws else {}
  d_draws = lambda i: {**{k: draws[f"d_{k}"][i] for k in ("z", "labels") if f"d_{k}" in draws}, **shared}  # noqa: E731
  g_draws = {**{k: draws[f"g_{k}"] for k in ("z", "labels") if f"g_{k}" in draws}, **shared}
  g_draws.update({k: draws[k] for k in ("pl_noise", "pl_z", "pl_labels") if k in draws})

  # A Python loop, not lax.scan: n_critic is small and static, and XLA:CPU runs convolutions
  # inside a while-loop body several times slower than unrolled (measured: 261 ms vs 67 ms per
  # DCGAN step at 16x16, batch 64).
  n_critic = gan.n_critic
  if reals.shape[0] != gan.batches_per_step:
    raise ValueError(f"batch has {reals.shape[0]} real batches, the step reads {gan.batches_per_step}")
  if gan.reuse_fake:
    state, metrics = reuse_fake_step(gan, state, reals, labels, d_key, g_key, d_draws, g_draws)
    return _ema_and_finish(gan, before, state, metrics)
  if gan.update_order == "g_first":
    state, g_metrics = g_update(gan, state, reals[-1], g_key, None if labels is None else labels[-1], g_draws)
  for i in range(n_critic):
    state, d_metrics = d_update(gan, state, reals[i], jax.random.fold_in(d_key, i),
                                d_step=state.step * n_critic + i, real_labels=None if labels is None else labels[i],
                                draws=d_draws(i))
  if gan.update_order != "g_first":
    state, g_metrics = g_update(gan, state, reals[-1], g_key, None if labels is None else labels[-1], g_draws)
  return _ema_and_finish(gan, before, state, {**d_metrics, **g_metrics})


def _ema_and_finish(gan: GAN, before: TrainState, state: TrainState, metrics: dict) -> tuple[TrainState, dict]:
  if gan.use_ema:
    # Images seen before this step, as StyleGAN2-ADA and R3GAN evaluate cur_nimg.
    beta = gan.ema_beta(state.step)
    if gan.ema_start > 0:   # BigGAN-PyTorch's ema.update(itr): decay 0 (a copy of G) while itr < start_itr
      beta = jnp.where(state.step + 1 < gan.ema_start, jnp.zeros_like(beta), beta)
    state = state.replace(ema_params=machinery.ema(state.ema_params, state.g_params, beta))
  return machinery.finish(before, state, metrics, gan.nan_skip)


def reuse_fake_step(gan: GAN, state: TrainState, reals: jax.Array, labels: jax.Array | None, d_key: jax.Array,
                    g_key: jax.Array, d_draws, g_draws: dict) -> tuple[TrainState, dict]:
  """`train.reuse_fake`: the DCGAN paper's code and pytorch/examples' loop, one G forward per step.

  The last D update's fakes come from one G forward whose vjp is kept; D updates on them; G's
  gradient is that vjp applied to the gradient of G's loss with respect to the same fakes
  through the updated D. No second G forward. With n_critic > 1 the earlier D updates draw their
  own fakes as usual, and G's update uses the last D update's fakes (its latents and labels; G's
  loss reads the last real batch, as without reuse). A different algorithm from the default (G's
  loss sees fakes D has just trained on), not an optimization of it. G's BatchNorm statistics move
  with the one forward. Not with the path-length penalty or grad_accum > 1 (refused by `build`)."""
  n_critic = gan.n_critic
  for i in range(n_critic - 1):
    state, _ = d_update(gan, state, reals[i], jax.random.fold_in(d_key, i), d_step=state.step * n_critic + i,
                        real_labels=None if labels is None else labels[i], draws=d_draws(i))
  i = n_critic - 1
  key = jax.random.fold_in(d_key, i)
  real_labels = labels[i] if labels is not None else None
  # The draws d_update would make with this key (see d_update).
  z, fake_labels = gan.fake_inputs(jax.random.split(key)[0], jax.random.fold_in(key, 1), reals.shape[1],
                                   real_labels, d_draws(i))
  g_fwd_key = jax.random.fold_in(g_key, 2)
  consts = _consts(d_draws(i))
  fake, g_vjp, g_vars = jax.vjp(lambda p: gan.generate(p, state.g_vars, z, fake_labels, g_fwd_key, consts=consts),
                                state.g_params, has_aux=True)
  state, d_metrics = d_update(gan, state, reals[i], key, d_step=state.step * n_critic + i, real_labels=real_labels,
                              draws={"z": z, "labels": fake_labels}, fake=fake)
  # G's loss through the updated D at the same fakes; D's statistics updates here are dropped.
  _, aug_real, aug_fake = _augmenters(gan, state, g_key)
  d_fwd_key = jax.random.fold_in(g_key, 3)
  g_real_labels = labels[-1] if labels is not None else None

  def g_loss_of(f):
    fake_logits, _ = gan.discriminate(state.d_params, state.d_vars, aug_fake(f), fake_labels, d_fwd_key)
    real_logits = (gan.discriminate(state.d_params, state.d_vars, aug_real(reals[-1]), g_real_labels, d_fwd_key)[0]
                   if gan.loss.g_uses_real else jnp.zeros_like(fake_logits))
    return gan.loss.g(real_logits, fake_logits)

  adversarial, d_fake = jax.value_and_grad(g_loss_of)(fake)
  (grads,) = g_vjp(d_fake.astype(fake.dtype))
  logs = {"g_loss": adversarial}
  if gan.reg.ortho > 0:
    logs["ortho"], ortho_grads = jax.value_and_grad(regs.orthogonal)(state.g_params)
    grads = jax.tree.map(lambda g, o: g + gan.reg.ortho * o, grads, ortho_grads)
  g_params, g_opt, grad_norm = machinery.update(gan.g_tx, grads, state.g_opt, state.g_params)
  state = state.replace(g_params=g_params, g_vars=g_vars, g_opt=g_opt)
  return state, {**d_metrics, **logs, "g_grad_norm": grad_norm}


def build(config: ConfigDict, spec: DataSpec) -> GAN:
  """The GAN of `config` for data of `spec`: G(z, y) and D(x, y) of `model.*`, `loss.*`, `reg.*`,
  `ema.*`, `augment.*`, the optimizers and their schedules."""
  if config.model.conditional and not spec.num_classes:
    raise ConfigError(f"model.conditional needs labelled data; dataset {config.data.name!r} has no labels")
  if config.model.g_stats not in G_STATS:
    raise ConfigError(f"model.g_stats must be one of {', '.join(G_STATS)}, got {config.model.g_stats!r}")
  generator, discriminator = build_models(config.model, spec)
  schedule_images = config.schedule.kimg * 1000.0
  r = config.reg
  if r.pl_weight > 0 and not (hasattr(generator, "mapping") and hasattr(generator, "synthesis")):
    raise ConfigError(f"reg.pl_weight needs a generator with a mapping network (stylegan2); "
                      f"model {config.model.name!r} has none")
  g_opt, d_opt = config.optim.g, config.optim.d
  if r.lazy_form == "separate":
    g_opt, d_opt = _mb_ratio(g_opt, r.pl_every), _mb_ratio(d_opt, r.lazy_every)
  return GAN(generator=generator, discriminator=discriminator, loss=make_loss(config.loss),
             g_tx=make_optimizer(g_opt, config.batch_size, schedule_images),
             d_tx=make_optimizer(d_opt, config.batch_size / config.n_critic, schedule_images),
             z_dim=config.model.z_dim, z_dist=config.model.z_dist, batch_size=config.batch_size,
             ema_decay=config.ema.decay, ema_halflife_kimg=config.ema.halflife_kimg,
             ema_halflife_final_kimg=config.ema.halflife_final_kimg, ema_rampup=config.ema.rampup,
             reg=regs.Regularization(r1=r.r1, r2=r.r2, wgan_gp=r.wgan_gp, dragan=r.dragan, lecam=r.lecam,
                                     lecam_decay=r.lecam_decay, clip=r.clip, lazy_every=r.lazy_every,
                                     ortho=r.ortho, drift=r.drift, drift_form=r.drift_form,
                                     pl_weight=r.pl_weight, pl_every=r.pl_every, pl_decay=r.pl_decay,
                                     pl_batch_shrink=r.pl_batch_shrink, lazy_form=r.lazy_form),
             gamma_final=r.gamma_final, n_critic=config.n_critic, schedule_images=schedule_images,
             num_classes=spec.num_classes if config.model.conditional else 0, fake_labels=config.model.fake_labels,
             truncation_mode=MODELS.get(config.model.name).truncation,
             augment=make_augment(config.augment, spec.kind), nan_skip=config.nan_policy == "skip",
             grad_accum=config.grad_accum, compute_dtype=config.precision, update_order=config.update_order,
             g_stats=config.model.g_stats,
             reuse_fake="train" in config and config.train.reuse_fake,   # progressive growing has no `train`
             ema_start=config.ema.start_step, d_joint=config.model.d_joint, state_updates=config.model.state_updates)


def _mb_ratio(c: ConfigDict, k: int) -> ConfigDict:
  """Optimizer settings `c` for a net regularized in separate lazy steps every k updates (StyleGAN2-ADA's
  training_loop.py `mb_ratio`): k + 1 optimizer steps per k minibatches, so the learning rate is scaled by
  r = k/(k+1) and the betas raised to r, keeping the per-minibatch step size and moment decay."""
  r = k / (k + 1)
  c = copy.deepcopy(c)
  with c.unlocked():
    c.lr = c.lr * r
    c.b1, c.b2 = c.b1 ** r, c.b2 ** r
    if c.get("lr_final") is not None:
      c.lr_final = c.lr_final * r
    if c.get("b2_final") is not None:
      c.b2_final = c.b2_final ** r
  return c


def _check_critic(config: ConfigDict) -> None:
  if not (isinstance(config.n_critic, int) and config.n_critic >= 1):
    raise ConfigError(f"n_critic must be an integer >= 1, got {config.n_critic!r}")
  if config.update_order not in UPDATE_ORDERS:
    raise ConfigError(f"update_order must be one of {', '.join(UPDATE_ORDERS)}, got {config.update_order!r}")


# `n_critic`: D updates per G update, each on its own real batch. `update_order`: "d_first" (the D
# updates, then G's) or "g_first" (G's update first, as the official StyleGAN2-ADA loop).
BLOCKS.register("critic")(Block("", lambda: {"n_critic": 1, "update_order": "d_first"}, _check_critic))


def _check_train(config: ConfigDict) -> None:
  if not config.train.reuse_fake:
    return
  if config.reg.pl_weight > 0:
    raise ConfigError("train.reuse_fake does not combine with reg.pl_weight > 0 (the path-length penalty needs its "
                      "own generator passes); set one of them off")
  if config.grad_accum > 1:
    raise ConfigError(f"train.reuse_fake keeps one whole-batch generator forward for G's update; it does not combine "
                      f"with grad_accum={config.grad_accum} (use grad_accum=1)")
  if config.update_order != "d_first":
    raise ConfigError(f"train.reuse_fake updates D on G's fakes before G; it does not combine with "
                      f"update_order={config.update_order!r} (use d_first)")


# `train.reuse_fake`: one generator forward per step, its fakes used by D's update and G's (reuse_fake_step).
BLOCKS.register("train")(Block("train", lambda: {"reuse_fake": False}, _check_train))
# The blocks of a GAN's config (progressive growing reads the same).
GAN_BLOCKS = ("critic", "reg", "schedule", "ema", "augment")
KINDS.register("gan")(Kind(build=build, blocks=GAN_BLOCKS + ("train",)))
