"""The "text2image" training kind: StackGAN (Zhang et al. 2017), `(state, batch, key) -> (state, metrics)`.

One step is one iteration of the official trainer (hanzhanggit/StackGAN-Pytorch, code/trainer.py and
code/miscc/utils.py): one G forward pass in training mode, giving fakes G(z, c_hat) and the CA's
(mu, logvar); one Adam update of D on the matching-aware loss (sec. 3.2; `matching_aware_d_loss`)
with the fakes and mu held fixed; then one Adam update of G on the non-saturating loss against the
updated D plus kl_coeff · KL(N(mu, sigma²) || N(0, I)) (eq. 3, 5; `kl_loss`), backpropagated through
the same forward pass (jax.vjp), as the official code does. D's condition is mu, never c_hat (the
official `conditions.detach()`); G's adversarial term sees mu detached, so only KL moves mu directly.

Stage 1 trains everything of the generator (Stage I and, with class labels, their embedding table);
stage 2 trains Stage II only, the Stage-I generator frozen: loaded from `model.stage1_workdir` at the
start of the run (`StackGAN.warm_start`), kept bit-for-bit in the state (checkpointed with it, so
samples and resumes need nothing else), never differentiated (stop_gradient in the model, and the
gradient and optimizer cover only params["stage2"]), its BN running statistics never moved. It runs
with batch statistics, as the official Stage-II trainer leaves it in training mode.

batch: {"x": [1, B, H, W, C] in [-1, 1], and "embedding": [1, B, T] (text) or "label": [1, B] (classes)}.
z ~ N(0, I) (the official noise.normal_). With text embeddings the sample grids use `num_captions` fixed
captions: the first of the first batch, stored in the state at step 0 (g_vars["captions"]).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models
from gan_jax.train import machinery
from gan_jax.train.kinds import KINDS, Kind, Trainer

Params = Any


@flax.struct.dataclass
class StackGANState:
  step: jax.Array          # int32 scalar: iterations done
  g_params: Params         # {"stage1": ..., ["embed": ...], ["stage2": ...]}
  g_vars: dict             # {"batch_stats": ..., ["constants": fixed class table], ["captions": {"table": [K, T]}]}
  d_params: Params
  d_vars: dict             # {"batch_stats": ...}
  g_opt: optax.OptState    # over the trainable part of g_params only (`StackGAN.trainable`)
  d_opt: optax.OptState
  ema_params: Any = None   # no EMA in StackGAN; the field keeps the trainer's samplers uniform
  reg_state: dict = flax.struct.field(default_factory=dict)   # nan_policy=skip's count (machinery.nan_state)


# -------------------------------------------------------------------------------------- losses

def kl_loss(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mu, diag(exp(logvar))) || N(0, I)) = ½ Σ_j (mu_j² + sigma_j² - log sigma_j² - 1), as the
  official KL_loss averages it: over the batch *and* the c_dim dimensions (the closed form divided by
  c_dim). mu, logvar: [B, c_dim]."""
  mu, logvar = jnp.asarray(mu, jnp.float32), jnp.asarray(logvar, jnp.float32)
  return jnp.mean(-0.5 * (1.0 + logvar - jnp.square(mu) - jnp.exp(logvar)))


def bce(logits: jax.Array, target: float) -> jax.Array:
  """nn.BCELoss(sigmoid(logits), target) for a constant target 0 or 1: mean softplus(-logits) (real)
  or softplus(logits) (fake)."""
  x = jnp.asarray(logits, jnp.float32)
  return jnp.mean(jax.nn.softplus(-x) if target == 1 else jax.nn.softplus(x))


def matching_aware_d_loss(real: jax.Array, wrong: jax.Array, fake: jax.Array, uncond_real: jax.Array | None = None,
                          uncond_fake: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """The matching-aware discriminator loss (sec. 3.2; official compute_discriminator_loss), logits of
  D(real image, its text) = `real` [B], D(real image i, text i+1) = `wrong` [B-1] and D(G(z, c), text)
  = `fake` [B]; the first is "real", the other two "fake":

    stage I:   L_D = BCE(real, 1) + ½ (BCE(fake, 0) + BCE(wrong, 0))
    stage II (with the unconditional logits of the real and fake images):
               L_D = ½ (BCE(real, 1) + BCE(u_real, 1)) + ⅓ (BCE(fake, 0) + BCE(wrong, 0) + BCE(u_fake, 0))
  """
  r, w, f = bce(real, 1), bce(wrong, 0), bce(fake, 0)
  if uncond_real is None:
    return r + 0.5 * (f + w), {"d_real_loss": r, "d_wrong_loss": w, "d_fake_loss": f}
  ur, uf = bce(uncond_real, 1), bce(uncond_fake, 0)
  loss = 0.5 * (r + ur) + (f + w + uf) / 3.0
  # Logged as the official code does: real and fake each averaged with their unconditional term.
  return loss, {"d_real_loss": 0.5 * (r + ur), "d_wrong_loss": w, "d_fake_loss": 0.5 * (f + uf)}


def generator_adversarial_loss(fake: jax.Array, uncond_fake: jax.Array | None = None) -> jax.Array:
  """Official compute_generator_loss: BCE(D(G(z, c), text), 1) [+ BCE(D_uncond(G(z, c)), 1) at stage II]."""
  return bce(fake, 1) + (0.0 if uncond_fake is None else bce(uncond_fake, 1))


def halving_lr(base: float, every: int) -> optax.Schedule:
  """The official schedule: `base`, halved every `every` updates (100 epochs; 0 = constant)."""
  if every <= 0:
    return optax.constant_schedule(base)
  return optax.exponential_decay(base, transition_steps=every, decay_rate=0.5, staircase=True)


# ------------------------------------------------------------------------------------ the model

@dataclasses.dataclass(frozen=True)
class StackGAN(Trainer):
  """The static parts the step closes over: the trainer protocol (gan_jax/train/kinds), with the Stage-I
  run as the warm start of stage 2, and `latents`, `generate`, `truncation_mode` for the samplers."""
  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  stage: int = 1
  z_dim: int = 100
  c_dim: int = 128
  t_dim: int = 1024
  kl_coeff: float = 2.0
  label_classes: int = 0      # > 0: conditioned on class labels; 0: on text embeddings
  num_captions: int = 16      # text: fixed captions of the sample grids
  stage1_workdir: str = ""    # stage 2: the Stage-I run it starts from (checked at build when given)
  nan_skip: bool = False
  batch_size: int = 2

  truncation_mode: ClassVar[str | None] = None

  @property
  def text(self) -> bool:
    return self.label_classes == 0

  @property
  def num_classes(self) -> int:
    """What the samplers cycle through: the classes, or the fixed captions."""
    return self.label_classes or self.num_captions

  def trainable(self, g_params: Params) -> Params:
    """The part of G this stage trains: all of it at stage 1, Stage II alone at stage 2."""
    return {"stage2": g_params["stage2"]} if self.stage == 2 else g_params

  def _g_apply(self, g_params: Params, g_vars: dict, z: jax.Array, cond: jax.Array, key: jax.Array, train: bool):
    """(images, mu, logvar) and the new g_vars (BN statistics moved in training, Stage I's never at stage 2)."""
    variables = {"params": g_params, **{k: v for k, v in g_vars.items() if k != "captions"}}
    if not train:
      return self.generator.apply(variables, z, cond, train=False, rngs={"noise": key}), g_vars
    out, new = self.generator.apply(variables, z, cond, train=True, rngs={"noise": key}, mutable=["batch_stats"])
    stats = dict(new["batch_stats"])
    if self.stage == 2:
      stats["stage1"] = g_vars["batch_stats"]["stage1"]
    return out, {**g_vars, "batch_stats": stats}

  def latents(self, key: jax.Array, n: int, truncation: float = 1.0) -> jax.Array:
    del truncation   # no truncation trick (truncation_mode None)
    return jax.random.normal(key, (n, self.z_dim))

  def generate(self, params: Params, g_vars: dict, z: jax.Array, y: jax.Array | None = None,
               key: jax.Array | None = None, train: bool = True, truncation: float = 1.0,
               method: str | None = None) -> tuple[jax.Array, dict]:
    """Images G(z, y) for the samplers: y are class labels, or indices of the fixed captions. BN
    uses the chunk's statistics in training mode; no state changes."""
    del truncation, method
    cond = g_vars["captions"]["table"][y] if self.text else y
    key = jax.random.PRNGKey(0) if key is None else key
    (images, _, _), _ = self._g_apply(params, g_vars, z, cond, key, train)
    return images, g_vars

  def init(self, key: jax.Array, data_shape: tuple) -> StackGANState:
    kg, kd, kn = jax.random.split(key, 3)
    cond = jnp.zeros((2, self.t_dim)) if self.text else jnp.zeros((2,), jnp.int32)
    g_all = self.generator.init({"params": kg, "noise": kn}, jnp.zeros((2, self.z_dim)), cond, train=False)
    d_all = self.discriminator.init({"params": kd}, jnp.zeros((2, *data_shape)), jnp.zeros((2, self.c_dim)),
                                    train=False)
    g_params = g_all["params"]
    g_vars = {k: v for k, v in g_all.items() if k != "params"}
    if self.text:
      g_vars["captions"] = {"table": jnp.zeros((self.num_captions, self.t_dim))}
    return StackGANState(step=jnp.zeros((), jnp.int32), g_params=g_params, g_vars=g_vars, d_params=d_all["params"],
                         d_vars={k: v for k, v in d_all.items() if k != "params"},
                         g_opt=self.g_tx.init(self.trainable(g_params)), d_opt=self.d_tx.init(d_all["params"]),
                         reg_state=machinery.nan_state(self.nan_skip))

  def warm_start(self, state: StackGANState, load: Callable[[str], Any]) -> StackGANState:
    """Stage 2, a fresh run: the Stage-I generator (and class table) of the newest state of the Stage-I
    run in `stage1_workdir` (`load(workdir)`, the loop's) in place of the initial one. Stage 1: the
    state. A Stage-II run that resumes, or one imported with its Stage I (scripts/import_checkpoint.py),
    needs no Stage-I run."""
    if self.stage == 1:
      return state
    if not self.stage1_workdir:
      raise ConfigError(_stage1_message("", "not set"))
    loaded = load(self.stage1_workdir)
    params, g_vars = loaded.g_params, loaded.g_vars
    new_params = {**state.g_params, **{k: v for k, v in params.items() if k != "stage2"}}
    new_vars = {**state.g_vars, **{k: v for k, v in g_vars.items() if k not in ("batch_stats", "captions")}}
    new_vars["batch_stats"] = {**state.g_vars["batch_stats"], "stage1": g_vars["batch_stats"]["stage1"]}
    old = (state.g_params, state.g_vars)
    if jax.tree.structure(old) != jax.tree.structure((new_params, new_vars)) or any(
        a.shape != b.shape for a, b in zip(jax.tree.leaves(old), jax.tree.leaves((new_params, new_vars)))):
      raise ConfigError(f"model.stage1_workdir={self.stage1_workdir}: its Stage-I generator does not fit this "
                        "Stage-II model (z_dim, c_dim, t_dim, g_width, class embedding and data must match)")
    new_params, new_vars = jax.tree.map(lambda new, o: jax.device_put(new, o.sharding), (new_params, new_vars), old)
    return state.replace(g_params=new_params, g_vars=new_vars)

  def step(self, state: StackGANState, batch: dict, key: jax.Array) -> tuple[StackGANState, dict]:
    return train_step(self, state, batch, key)


def train_step(sg: StackGAN, state: StackGANState, batch: dict, key: jax.Array) -> tuple[StackGANState, dict]:
  """key: the run's base key, folded with the step (z and the CA's eps)."""
  key = jax.random.fold_in(key, state.step)
  z_key, noise_key = jax.random.split(key)
  real = batch["x"][0]
  cond = batch["embedding"][0] if sg.text else batch["label"][0]
  z = sg.latents(z_key, real.shape[0])
  trainable = sg.trainable(state.g_params)

  # One G forward pass, shared by the D update (its outputs fixed) and the G update (its vjp).
  def forward(t):
    (fake, mu, logvar), g_vars = sg._g_apply({**state.g_params, **t}, state.g_vars, z, cond, noise_key, True)
    return (fake, mu, logvar), g_vars

  (fake, mu, logvar), g_vjp, g_vars = jax.vjp(forward, trainable, has_aux=True)
  d = sg.discriminator

  def d_call(params, d_vars, method, *args):
    out, new = d.apply({"params": params, **d_vars}, *args, method=method, mutable=["batch_stats"])
    return out, {**d_vars, **new}

  def d_loss_fn(d_params):
    v = state.d_vars
    fixed_fake, c = jax.lax.stop_gradient(fake), jax.lax.stop_gradient(mu)
    h_real, v = d_call(d_params, v, "encode", real, True)
    h_fake, v = d_call(d_params, v, "encode", fixed_fake, True)
    real_logits, v = d_call(d_params, v, "cond_logits", h_real, c, True)
    wrong_logits, v = d_call(d_params, v, "cond_logits", h_real[:-1], c[1:], True)   # image i, text i+1
    fake_logits, v = d_call(d_params, v, "cond_logits", h_fake, c, True)
    u_real = u_fake = None
    if sg.stage == 2:
      u_real = d.apply({"params": d_params}, h_real, method="uncond_logits")
      u_fake = d.apply({"params": d_params}, h_fake, method="uncond_logits")
    loss, logs = matching_aware_d_loss(real_logits, wrong_logits, fake_logits, u_real, u_fake)
    return loss, (v, {"d_loss": loss, "d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits), **logs})

  d_grads, (d_vars, d_logs) = jax.grad(d_loss_fn, has_aux=True)(state.d_params)
  d_params, d_opt, d_norm = machinery.update(sg.d_tx, d_grads, state.d_opt, state.d_params)

  # G against the updated D (its statistics updates dropped: only the D step moves D).
  def g_loss_fn(fake, mu, logvar):
    h, _ = d_call(d_params, d_vars, "encode", fake, True)
    logits, _ = d_call(d_params, d_vars, "cond_logits", h, jax.lax.stop_gradient(mu), True)
    uncond = d.apply({"params": d_params}, h, method="uncond_logits") if sg.stage == 2 else None
    adv = generator_adversarial_loss(logits, uncond)
    kl = kl_loss(mu, logvar)
    total = adv + sg.kl_coeff * kl
    return total, {"g_loss": adv, "kl_loss": kl, "g_total": total}

  out_grads, g_logs = jax.grad(g_loss_fn, argnums=(0, 1, 2), has_aux=True)(fake, mu, logvar)
  g_grads = g_vjp(out_grads)[0]
  new_trainable, g_opt, g_norm = machinery.update(sg.g_tx, g_grads, state.g_opt, trainable)
  g_params = {**state.g_params, **new_trainable}
  if sg.text:   # the grids' fixed captions: the first of the first batch
    table = g_vars["captions"]["table"]
    g_vars = {**g_vars, "captions": {"table": jnp.where(state.step == 0, cond[:table.shape[0]].astype(table.dtype),
                                                        table)}}
  after = state.replace(g_params=g_params, g_vars=g_vars, g_opt=g_opt, d_params=d_params, d_vars=d_vars, d_opt=d_opt)
  return machinery.finish(state, after, {**d_logs, **g_logs, "g_grad_norm": g_norm, "d_grad_norm": d_norm},
                          sg.nan_skip)


# ------------------------------------------------------------------------------ Stage I -> II

# The Stage-I run's keys that the Stage-II model shares (its generator is rebuilt from them).
_SHARED = ("z_dim", "t_dim", "c_dim", "g_width", "class_embedding")


def _stage1_message(workdir: str, why: str) -> str:
  return (f"model.stage1_workdir={workdir or '(unset)'}: {why}; Stage II needs a finished Stage-I run: train "
          "it first (python scripts/train.py --config experiments/stackgan_cub.py:stage=1 --workdir DIR) and "
          "pass --config.model.stage1_workdir=DIR")


def check_stage1_workdir(workdir: str, config: ConfigDict, spec: DataSpec) -> None:
  """A clear ConfigError, before anything is built, when `workdir` holds no Stage-I run this Stage II can
  start from (missing, not StackGAN stage 1, no checkpoint, other shared settings or data)."""
  if not workdir:
    raise ConfigError(_stage1_message(workdir, "not set"))
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ConfigError(_stage1_message(workdir, f"{path} not found"))
  with open(path) as f:
    s1 = json.load(f)
  m = s1.get("model", {})
  if m.get("name") != "stackgan" or m.get("stage") != 1:
    raise ConfigError(_stage1_message(workdir, f"that run is model {m.get('name')!r} stage {m.get('stage')!r}, "
                                      "not stackgan stage 1"))
  ckpts = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpts) or not any(n.isdigit() for n in os.listdir(ckpts)):
    raise ConfigError(_stage1_message(workdir, f"no checkpoint in {ckpts}"))
  changed = [f"model.{k} ({m.get(k)!r} -> {config.model[k]!r})" for k in _SHARED if m.get(k) != config.model[k]]
  res = s1.get("data", {}).get("resolution")
  if res * config.model.upscale != spec.shape[0]:
    changed.append(f"data.resolution ({res} x model.upscale {config.model.upscale} != {spec.shape[0]})")
  if s1.get("data", {}).get("name") != config.data.name:
    changed.append(f"data.name ({s1['data'].get('name')!r} -> {config.data.name!r})")
  if changed:
    raise ConfigError(_stage1_message(workdir, f"its settings differ: {', '.join(changed)}"))


# ------------------------------------------------------------------------------ construction

def build(config: ConfigDict, spec: DataSpec) -> StackGAN:
  """The StackGAN of `config` (model.name=stackgan) for data of `spec`; ConfigError for settings it
  cannot honour or a Stage-I run (stage 2, `model.stage1_workdir`) that does not fit."""
  if config.loss.name != "nonsaturating":
    raise ConfigError(f"model 'stackgan' trains with loss.name=nonsaturating (the official BCE losses), "
                      f"got {config.loss.name!r}")
  m = config.model
  if m.kl_coeff < 0 or m.lr_decay_steps < 0 or m.num_captions < 1:
    raise ConfigError("model.kl_coeff and model.lr_decay_steps must be >= 0, model.num_captions >= 1")
  if config.batch_size < 2:
    raise ConfigError("model 'stackgan' needs batch_size >= 2 (the mismatched pairs shift the batch by one)")
  generator, discriminator = build_models(m, spec)
  if m.stage == 2 and m.stage1_workdir:
    check_stage1_workdir(m.stage1_workdir, config, spec)
  return StackGAN(generator=generator, discriminator=discriminator,
                  g_tx=machinery.make_optimizer(config.optim.g, halving_lr(config.optim.g.lr, m.lr_decay_steps)),
                  d_tx=machinery.make_optimizer(config.optim.d, halving_lr(config.optim.d.lr, m.lr_decay_steps)),
                  stage=m.stage, z_dim=m.z_dim, c_dim=m.c_dim, t_dim=m.t_dim, kl_coeff=m.kl_coeff,
                  label_classes=spec.num_classes, num_captions=min(m.num_captions, config.batch_size),
                  stage1_workdir=m.stage1_workdir if m.stage == 2 else "", nan_skip=config.nan_policy == "skip",
                  batch_size=config.batch_size)


# What StackGAN reads beyond the keys of every run: random crops of its images, NaN skip, evaluation.
# One G forward shared by both updates (no accumulation), a frozen Stage I loaded per run (no
# populations), the official float32 losses.
KINDS.register("text2image")(Kind(build=build, blocks=("crop",), honours=("nan_policy", "eval.*")))
