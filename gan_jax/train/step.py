"""The pure train step: `(state, batch, key) -> (state, metrics)`.

One step = `n_critic` discriminator updates (one per row of `batch["x"]`, shape
[n_critic, B, ...]) followed by one generator update and the EMA update. Randomness comes
only from `key`, folded with the state's step, so a resumed run draws the same latents.
Conditional models read the real labels from `batch["label"]`; fake labels are drawn uniformly
over the classes (BigGAN, StudioGAN). Nothing here touches the host: the loop jit-compiles it
with explicit shardings.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax import regularizers as regs
from gan_jax.augment import Augment
from gan_jax.losses import AdversarialLoss
from gan_jax.schedules import cosine_ramp
from gan_jax.train.state import TrainState, init_state, sample_latents


@dataclasses.dataclass(frozen=True)
class GAN:
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
  truncation_mode: str | None = None    # "z", "w" or None: how sample truncation applies
  augment: Augment = Augment()          # what D sees: aug(x) (gan_jax/augment); Augment() = none
  nan_skip: bool = False                # nan_policy="skip": a step with a non-finite value is undone
  grad_accum: int = 1                   # micro-batches per update (gradients averaged; see `_accumulated_grad`)
  compute_dtype: str = "float32"        # "bfloat16": G and D compute in bf16 (see `_apply`)

  def init(self, key: jax.Array, data_shape: tuple) -> TrainState:
    """A fresh train state (call under jit with the state's shardings)."""
    reg_state = regs.lecam_init() if self.reg.lecam > 0 else {}
    if self.reg.pl_weight > 0:
      reg_state["pl_mean"] = jnp.zeros((), jnp.float32)
    reg_state.update(self.augment.init_state())   # the adaptive augmentation p, when there is one
    if self.nan_skip:
      reg_state["nonfinite_skipped"] = jnp.zeros((), jnp.int32)
    return init_state(key, self.generator, self.discriminator, data_shape, self.z_dim, self.g_tx,
                      self.d_tx, self.use_ema, reg_state, self.num_classes)

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

  def generate(self, params: Any, g_vars: dict, z: jax.Array, y: jax.Array | None = None,
               key: jax.Array | None = None, train: bool = True, truncation: float = 1.0,
               method: str | None = None) -> tuple[jax.Array, dict]:
    """G(z, y) (or G's `method`). In train mode normalization layers use batch statistics and
    the state collections (BN statistics, spectral-norm vectors) are updated: returns the update."""
    kwargs = {"truncation_psi": truncation} if truncation < 1.0 and self.truncation_mode == "w" else {}
    return _apply(self.generator, params, g_vars, (z, y), key, train, method, kwargs, self.compute_dtype)

  def discriminate(self, params: Any, d_vars: dict, x: jax.Array, y: jax.Array | None = None,
                   key: jax.Array | None = None) -> tuple[jax.Array, dict]:
    return _apply(self.discriminator, params, d_vars, (x, y), key, True, dtype=self.compute_dtype)

  def ema_beta(self, step: jax.Array) -> jax.Array:
    """Per-step EMA decay: `ema.decay`, or 0.5^(B / half-life in images) (StyleGAN2-ADA)."""
    if self.ema_decay > 0:
      return jnp.asarray(self.ema_decay, jnp.float32)
    half_life = 1000.0 * cosine_ramp(self.ema_halflife_kimg, self.ema_halflife_final_kimg,
                                     self.schedule_images)(self.images(step))
    if self.ema_rampup > 0:
      half_life = jnp.minimum(half_life, step.astype(jnp.float32) * self.batch_size * self.ema_rampup)
    return 0.5 ** (self.batch_size / jnp.maximum(half_life, 1e-8))


def _apply(module: nn.Module, params: Any, variables: dict, args: tuple, key: jax.Array | None, train: bool,
           method: str | None = None, kwargs: dict | None = None, dtype: str = "float32") -> tuple[Any, dict]:
  """module.apply with the state collections mutable in training, and the "noise" stream.

  `dtype` "bfloat16" (precision=bfloat16): the float parameters and inputs enter the module in bf16,
  so its layers compute in bf16, while the stored parameters, their gradients (the casts' transposes
  give float32), the outputs (cast back: losses and penalties are float32) and the state collections
  (BatchNorm statistics, spectral-norm vectors, W average: their new values are cast back to their
  float32 dtype) stay float32. Inside the architectures the numerically sensitive reductions run
  in float32 as well: BatchNorm statistics (flax), spectral-norm power iteration and sigma,
  attention softmax, StyleGAN2's demodulation and minibatch standard deviation."""
  if args[-1] is None:
    args = args[:-1]          # unconditional: the module's default y
  low = dtype != "float32"
  if low:
    params, args = _cast((params, args), jnp.dtype(dtype))
  rngs = {"noise": key} if key is not None else None
  full = {"params": params, **variables}
  kw = dict(kwargs or {}, train=train, rngs=rngs, method=method)
  if variables and train:
    out, new_vars = module.apply(full, *args, mutable=list(variables), **kw)
    if low:
      out = _cast(out, jnp.float32)
      new_vars = jax.tree.map(lambda new, old: new.astype(old.dtype), dict(new_vars), dict(variables))
    return out, new_vars
  out = module.apply(full, *args, **kw)
  return (_cast(out, jnp.float32) if low else out), variables


def _cast(tree: Any, dtype) -> Any:
  """The floating-point leaves of `tree` in `dtype` (integer labels and keys untouched)."""
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x, tree)


def _accumulated_grad(grad_fn: Any, params: Any, inputs: dict, k: int) -> tuple[Any, Any]:
  """Gradient accumulation: `grad_fn(params, micro, i) -> (grads, aux)` over the k micro-batches
  of `inputs` (every leaf split along its leading batch axis), one after another (lax.scan: one
  micro-batch's activations live at a time), returning the mean gradient and the auxiliaries
  stacked [k, ...]. With k = 1: grad_fn(params, inputs, None), the plain step.

  Every micro-batch starts from the same state, so the mean over micro-batches of a loss that is
  a mean over examples is the big batch's loss, and its gradient the big batch's gradient. Exact
  for losses, R1/R2 and the other per-example penalties without normalization layers; BatchNorm
  normalizes each micro-batch with its own statistics (ghost batch norm), batch-coupled terms
  (RaGAN's mean over the other batch, LeCam's penalty against anchors that include this batch's
  mean) see the micro-batch, and random draws shaped by the batch
  (noise inputs, augmentations, WGAN-GP's interpolation) differ, as in every framework."""
  if k == 1:
    return grad_fn(params, inputs, None)
  # Micro-batch i is rows i, i+k, i+2k, ...: with the batch split over devices, every device holds
  # its share of every micro-batch, so the split needs no communication.
  micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1), inputs)

  def body(total, xs):
    i, m = xs
    grads, aux = grad_fn(params, m, i)
    return jax.tree.map(jnp.add, total, grads), aux

  total, auxs = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, params), (jnp.arange(k), micro))
  return jax.tree.map(lambda g: g / k, total), auxs


def _mean_micro(tree: Any, k: int) -> Any:
  """Stacked per-micro-batch values [k, ...] -> one value: float leaves averaged (state updates
  that are linear in a batch mean, e.g. BatchNorm running means, LeCam anchors, the path-length
  EMA, equal the big batch's; spectral-norm vectors are the same in every micro-batch), other
  leaves from the first micro-batch. Identity for k = 1."""
  if k == 1:
    return tree
  return jax.tree.map(lambda x: jnp.mean(x, axis=0) if jnp.issubdtype(x.dtype, jnp.floating) else x[0], tree)


def _fold(key: jax.Array, i) -> jax.Array:
  """Micro-batch i's key (the key itself without accumulation)."""
  return key if i is None else jax.random.fold_in(key, 1000 + i)


def d_update(gan: GAN, state: TrainState, real: jax.Array, key: jax.Array, d_step: jax.Array | int = 0,
             real_labels: jax.Array | None = None) -> tuple[TrainState, dict]:
  """One discriminator update; `d_step` counts D updates over the run (for lazy penalties)."""
  z_key, reg_key = jax.random.split(key)
  y_key, g_key, d_key = (jax.random.fold_in(key, i) for i in (1, 2, 3))
  n = real.shape[0]
  inputs = {"real": real, "z": gan.latents(z_key, n), "fake_labels": gan.labels(y_key, n),
            "real_labels": real_labels if gan.num_classes else None}
  reg = gan.reg
  images = gan.images(state.step)
  aug_p = _augmenters(gan, state, key)[0]

  def grads_of(d_params, m, i):
    """Gradient and auxiliaries of one (micro-)batch `m`; `i` its index (None: the whole batch)."""
    _, aug_real, aug_fake = _augmenters(gan, state, _fold(key, i))
    # G's statistics updates from this forward pass are dropped: only the G step moves G.
    fake = jax.lax.stop_gradient(gan.generate(state.g_params, state.g_vars, m["z"], m["fake_labels"],
                                              _fold(g_key, i))[0])
    real, real_labels, fake_labels = m["real"], m["real_labels"], m["fake_labels"]

    def loss_fn(d_params):
      # R1 and R2 at every step look at the adversarial term's inputs (D∘aug at the un-augmented
      # reals and fakes, with the same draws): their input gradients come from the adversarial
      # forward passes themselves (one forward per input instead of two, and one backward through
      # it). Only where D keeps no state: a D with BatchNorm statistics or spectral-norm vectors
      # gives the penalties its state after both adversarial passes, as the unfused form does.
      fuse = reg.lazy_every <= 1 and not state.d_vars
      sq_norms = {}

      def logits(x, labels, aug, name, d_vars):
        if fuse and getattr(reg, name) > 0:
          d_fn = lambda x: gan.discriminate(d_params, d_vars, aug(x), labels, d_key)[0]  # noqa: E731
          out, sq_norms[name] = regs.logits_and_grad_sq_norm(d_fn, x)
          return out, d_vars
        return gan.discriminate(d_params, d_vars, aug(x), labels, d_key)

      real_logits, d_vars = logits(real, real_labels, aug_real, "r1", state.d_vars)
      fake_logits, d_vars = logits(fake, fake_labels, aug_fake, "r2", d_vars)
      adversarial = gan.loss.d(real_logits, fake_logits)
      loss, logs, reg_state = adversarial, {}, state.reg_state
      if reg.has_gradient_penalty:
        # Penalties see D with the statistics of this step; their own statistics updates are dropped.
        # With augmentation they differentiate D∘aug at the un-augmented inputs (R3GAN), with the
        # draws of the adversarial term's reals (fakes for R2).
        d_fn = lambda x: gan.discriminate(d_params, d_vars, aug_real(x), real_labels, d_key)[0]  # noqa: E731
        d_fn_fake = lambda x: gan.discriminate(d_params, d_vars, aug_fake(x), fake_labels, d_key)[0]  # noqa: E731
        weights = {"r1": cosine_ramp(reg.r1, gan.gamma_final, gan.schedule_images)(images),
                   "r2": cosine_ramp(reg.r2, gan.gamma_final, gan.schedule_images)(images)}

        def penalties(_):
          return regs.gradient_penalties(reg, d_fn, real, fake, _fold(reg_key, i), weights, d_fn_fake, sq_norms)

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

    return jax.grad(loss_fn, has_aux=True)(d_params)

  k = gan.grad_accum
  grads, (d_vars, reg_state, real_logits, fake_logits, logs) = _accumulated_grad(grads_of, state.d_params,
                                                                                 inputs, k)
  d_vars, reg_state, logs = _mean_micro((d_vars, reg_state, logs), k)
  if k > 1:   # back to batch order (micro-batch i holds rows i, i+k, ...)
    real_logits, fake_logits = (jnp.swapaxes(x, 0, 1).reshape(n) for x in (real_logits, fake_logits))
  updates, d_opt = gan.d_tx.update(grads, state.d_opt, state.d_params)
  d_params = optax.apply_updates(state.d_params, updates)
  if reg.clip > 0:
    d_params = regs.clip_weights(d_params, reg.clip)
  if gan.augment.enabled:
    reg_state = gan.augment.update(reg_state, real_logits, d_step, n)
    # aug_rt: E[sign(D(aug(real)))] of this D step, ADA's overfitting heuristic r_t.
    logs = {**logs, "aug_p": aug_p, "aug_rt": jnp.mean(jnp.sign(real_logits.astype(jnp.float32)))}
  state = state.replace(d_params=d_params, d_vars=d_vars, d_opt=d_opt, reg_state=reg_state)
  # d_loss is the adversarial term alone (comparable across regularizers); penalties are logged raw.
  return state, {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits),
                 "d_grad_norm": optax.tree.norm(grads), **logs}


def _augmenters(gan: GAN, state: TrainState, key: jax.Array):
  """(p, aug_real, aug_fake): the current augmentation probability and the two augmentations of
  this update (per-image draws from keys folded out of the update's key; identities when off)."""
  if not gan.augment.enabled:
    return None, (lambda x: x), (lambda x: x)
  p = gan.augment.probability(state.reg_state, gan.images(state.step), gan.schedule_images)
  real_key, fake_key = jax.random.fold_in(key, 5), jax.random.fold_in(key, 6)
  return p, (lambda x: gan.augment(real_key, x, p)), (lambda x: gan.augment(fake_key, x, p))


def g_update(gan: GAN, state: TrainState, real: jax.Array, key: jax.Array,
             real_labels: jax.Array | None = None) -> tuple[TrainState, dict]:
  y_key, g_key, d_key, pl_key = (jax.random.fold_in(key, i) for i in (1, 2, 3, 4))
  n = real.shape[0]
  inputs = {"real": real, "z": gan.latents(key, n), "fake_labels": gan.labels(y_key, n),
            "real_labels": real_labels if gan.num_classes else None}
  reg = gan.reg

  def grads_of(g_params, m, i):
    _, aug_real, aug_fake = _augmenters(gan, state, _fold(key, i))
    z, fake_labels = m["z"], m["fake_labels"]

    def loss_fn(g_params):
      fake, g_vars = gan.generate(g_params, state.g_vars, z, fake_labels, _fold(g_key, i))
      # D is not updated by the G step: its statistics updates are dropped.
      fake_logits, _ = gan.discriminate(state.d_params, state.d_vars, aug_fake(fake), fake_labels, d_key)
      real_logits = (gan.discriminate(state.d_params, state.d_vars, aug_real(m["real"]), m["real_labels"], d_key)[0]
                     if gan.loss.g_uses_real else jnp.zeros_like(fake_logits))
      adversarial = gan.loss.g(real_logits, fake_logits)
      loss, logs, reg_state = adversarial, {}, state.reg_state
      if reg.ortho > 0:
        logs["ortho"] = regs.orthogonal(g_params)
        loss = loss + reg.ortho * logs["ortho"]
      if reg.pl_weight > 0:
        pl, reg_state, logs["pl_length"] = _path_length_penalty(gan, g_params, g_vars, z, fake_labels,
                                                                _fold(g_key, i), _fold(pl_key, i), state.step,
                                                                reg_state)
        logs["pl_penalty"] = pl
        loss = loss + reg.pl_weight * reg.pl_every * pl
      return loss, (g_vars, reg_state, {"g_loss": adversarial, **logs})

    return jax.grad(loss_fn, has_aux=True)(g_params)

  k = gan.grad_accum
  grads, aux = _accumulated_grad(grads_of, state.g_params, inputs, k)
  g_vars, reg_state, logs = _mean_micro(aux, k)
  updates, g_opt = gan.g_tx.update(grads, state.g_opt, state.g_params)
  state = state.replace(g_params=optax.apply_updates(state.g_params, updates), g_vars=g_vars, g_opt=g_opt,
                        reg_state=reg_state)
  return state, {**logs, "g_grad_norm": optax.tree.norm(grads)}


def _path_length_penalty(gan: GAN, g_params: Any, g_vars: dict, z: jax.Array, labels: jax.Array | None,
                         noise_key: jax.Array, key: jax.Array, step: jax.Array, reg_state: dict):
  """StyleGAN2's lazy path-length penalty on the first B / pl_batch_shrink latents, every
  `pl_every`-th G step (zero otherwise; the caller scales it by pl_every); returns the penalty,
  the updated state (EMA of the mean length, moved on the penalty's steps only) and the mean
  length. The generator's state updates of these extra passes are dropped."""
  reg = gan.reg
  m = max(1, z.shape[0] // reg.pl_batch_shrink)
  y = labels[:m] if labels is not None else None

  def penalty(_):
    ws = gan.generate(g_params, g_vars, z[:m], y, noise_key, method="mapping")[0]
    synth = lambda w: gan.generate(g_params, g_vars, w, None, noise_key, method="synthesis")[0]  # noqa: E731
    lengths = regs.path_lengths(synth, ws, key)
    pl_mean = reg_state["pl_mean"] + reg.pl_decay * (jnp.mean(lengths) - reg_state["pl_mean"])
    pl_mean = jax.lax.stop_gradient(pl_mean)
    return jnp.mean(jnp.square(lengths - pl_mean)), pl_mean, jnp.mean(lengths)

  def skip(_):
    zero = jnp.zeros((), jnp.float32)
    return zero, reg_state["pl_mean"], zero

  pl, pl_mean, length = jax.lax.cond(step % reg.pl_every == 0, penalty, skip, None)
  return pl, {**reg_state, "pl_mean": pl_mean}, length


def train_step(gan: GAN, state: TrainState, batch: dict, key: jax.Array) -> tuple[TrainState, dict]:
  """batch["x"]: [batches_per_step, B, ...] real data (the first n_critic rows for D, the last
  for G when its loss needs reals); key: the run's base key (folded with the step)."""
  key = jax.random.fold_in(key, state.step)
  d_key, g_key = jax.random.split(key)
  before = state
  reals = batch["x"]
  labels = batch.get("label") if gan.num_classes else None

  # A Python loop, not lax.scan: n_critic is small and static, and XLA:CPU runs convolutions
  # inside a while-loop body several times slower than unrolled (measured: 261 ms vs 67 ms per
  # DCGAN step at 16x16, batch 64).
  n_critic = gan.n_critic
  if reals.shape[0] != gan.batches_per_step:
    raise ValueError(f"batch has {reals.shape[0]} real batches, the step reads {gan.batches_per_step}")
  for i in range(n_critic):
    state, d_metrics = d_update(gan, state, reals[i], jax.random.fold_in(d_key, i),
                                d_step=state.step * n_critic + i, real_labels=None if labels is None else labels[i])
  state, g_metrics = g_update(gan, state, reals[-1], g_key, None if labels is None else labels[-1])
  step = state.step + 1
  if gan.use_ema:
    # Images seen before this step, as StyleGAN2-ADA and R3GAN evaluate cur_nimg.
    beta = gan.ema_beta(state.step)
    state = state.replace(ema_params=jax.tree.map(lambda e, p: beta * e + (1 - beta) * p,
                                                  state.ema_params, state.g_params))
  metrics = {**d_metrics, **g_metrics}
  for who, opt in (("g", state.g_opt), ("d", state.d_opt)):
    if hasattr(opt, "hyperparams"):
      metrics[f"{who}_lr"] = opt.hyperparams["learning_rate"]
  state = state.replace(step=step)
  if gan.nan_skip:
    state, metrics = _undo_if_nonfinite(before, state, metrics)
  return state, metrics


def _undo_if_nonfinite(before: TrainState, after: TrainState, metrics: dict) -> tuple[TrainState, dict]:
  """nan_policy="skip": when any metric (losses, penalties, gradient norms) or any new G or D
  parameter is NaN or Inf, the step's updates are undone (the data is consumed, the step counter
  advances) and counted in reg_state["nonfinite_skipped"]; decided inside the step, no host sync.
  The step's metrics are then zeros with `step_ok` 0, so interval means count good steps only."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((metrics, after.g_params, after.d_params))]
  ok = jnp.all(jnp.stack(checks))
  state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), after, before.replace(step=after.step))
  skipped = before.reg_state["nonfinite_skipped"] + (~ok).astype(jnp.int32)
  state = state.replace(reg_state={**state.reg_state, "nonfinite_skipped": skipped})
  metrics = {k: jnp.where(ok, v, jnp.zeros_like(v)) for k, v in metrics.items()}
  return state, {**metrics, "step_ok": ok.astype(jnp.float32), "nonfinite_skipped": skipped}
