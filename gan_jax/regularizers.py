"""Discriminator regularizers (`reg.*`), composable with any loss.

Each penalty is a pure function of a discriminator `d_fn: x [B, ...] -> logits [B]` and
arrays; the D step adds the weighted penalties to the adversarial loss:

  reg.r1, reg.r2   gamma/2 · E ||∇ₓ D(x)||² on reals (R1) and fakes (R2); Mescheder et al. 2018,
                   eq. 9; R3GAN (Huang et al. 2024) uses both with the same gamma.
  reg.wgan_gp      λ · E (||∇ D(x̂)|| - 1)², x̂ on lines between reals and fakes; Gulrajani et al.
                   2017, eq. 3 (λ = 10 in the paper).
  reg.dragan       λ · E (||∇ D(x̂)|| - 1)², x̂ between reals and reals perturbed by
                   0.5·std(x)·U(0, 1) noise; Kodali et al. 2017 (their code's perturbation).
  reg.lecam        λ · R_LC, LeCam regularization (Tseng et al. 2021) with EMA anchors of the
                   mean real and fake logits kept in the train state.
  reg.clip         weight clipping of D to [-c, c] after each update (Arjovsky et al. 2017).
  reg.drift        ε · E D(x_real)², the drift penalty of ProGAN's WGAN-GP loss (Karras et al. 2018,
                   sec. A.1, ε = 0.001): keeps the critic's outputs near zero. With
                   reg.drift_form="square_mean": ε · (E D(x_real))², the square of the batch
                   mean, as TransGAN's `wgangp-eps` loss (official functions.py).
  reg.lazy_every   apply the gradient penalties on every k-th D step only, multiplied by k
                   (Karras et al. 2020, StyleGAN2, sec. 3.1); 1 (the default) = every step.
  reg.lazy_form    how a lazy penalty (D's, and G's path length) is applied: "combined" (the
                   default) adds the k-scaled penalty to the ordinary gradient of that step, so no
                   optimizer rescaling is needed; "separate" takes a separate optimizer step on the
                   penalty alone right after the ordinary one, with the lr scaled by k/(k+1) and
                   the betas raised to k/(k+1), as the official StyleGAN2(-ADA) loop (Dreg and Greg
                   phases, `mb_ratio`; gan_jax/train/kinds/gan.py).

Generator regularizers (added to the G loss in the G step):

  reg.ortho        β · Σ_W ½||W Wᵀ ⊙ (1 - I)||²_F over G's weight matrices (BigGAN, β = 1e-4).
  reg.pl_weight    w · E (|J_wᵀ y| - a)², StyleGAN2's path-length penalty, every `pl_every` G steps
                   multiplied by it, on 1/`pl_batch_shrink` of the batch; a is the EMA (rate
                   `pl_decay`) of the mean length, kept in the train state. Needs a generator
                   with `mapping` and `synthesis` (gan_jax/models/__init__.py).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict, config_dict

from gan_jax.blocks import BLOCKS, Block
from gan_jax.errors import ConfigError

DFn = Callable[[jax.Array], jax.Array]


def per_example_grad_sq_norm(d_fn: DFn, x: jax.Array) -> jax.Array:
  """||∇ₓ D(x_i)||² for each example: [B]. D's outputs are summed over the batch first, which
  gives per-example input gradients for any D whose examples do not interact."""
  g = jax.grad(lambda inp: jnp.sum(d_fn(inp).astype(jnp.float32)))(x)
  return jnp.sum(jnp.square(g.reshape(g.shape[0], -1).astype(jnp.float32)), axis=1)


def logits_and_grad_sq_norm(d_fn: DFn, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(D(x) [B], ||∇ₓ D(x_i)||² [B]) from one forward pass: the input gradient is the pullback
  (jax.vjp) of ones through the same pass that gives the logits, so a D step whose adversarial
  term and R1 (or R2) look at the same inputs differentiates one forward pass, not two (as
  R3GAN's official loss does with autograd.grad(create_graph=True) on its logits). Same
  per-example caveat as `per_example_grad_sq_norm`."""
  logits, pullback = jax.vjp(d_fn, x)
  (g,) = pullback(jnp.ones_like(logits))
  return logits, jnp.sum(jnp.square(g.reshape(g.shape[0], -1).astype(jnp.float32)), axis=1)


def zero_centred_penalty(d_fn: DFn, x: jax.Array) -> jax.Array:
  """E ||∇ₓ D(x)||²: R1 when x are reals, R2 when x are fakes (without the gamma/2)."""
  return jnp.mean(per_example_grad_sq_norm(d_fn, x))


def one_centred_penalty(d_fn: DFn, x: jax.Array) -> jax.Array:
  """E (||∇ₓ D(x)|| - 1)²."""
  norms = jnp.sqrt(per_example_grad_sq_norm(d_fn, x) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


def _per_example_uniform(key: jax.Array, x: jax.Array) -> jax.Array:
  return jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)


def wgan_gp(d_fn: DFn, real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
  """Gulrajani et al. 2017, eq. 3 without λ: x̂ = ε x_r + (1 - ε) x_f, ε ~ U[0, 1] per example."""
  eps = _per_example_uniform(key, real)
  return one_centred_penalty(d_fn, eps * real + (1.0 - eps) * fake)


def dragan_points(real: jax.Array, key: jax.Array, scale: float = 0.5) -> jax.Array:
  """x̂ = x + α (x_p - x), x_p = x + scale·std(x)·U(0, 1) noise, α ~ U[0, 1] per example."""
  k_noise, k_alpha = jax.random.split(key)
  perturbed = real + scale * jnp.std(real) * jax.random.uniform(k_noise, real.shape, real.dtype)
  return real + _per_example_uniform(k_alpha, real) * (perturbed - real)


def dragan(d_fn: DFn, real: jax.Array, key: jax.Array, scale: float = 0.5) -> jax.Array:
  """Kodali et al. 2017 without λ: E (||∇ D(x̂)|| - 1)² at points perturbed around the reals."""
  return one_centred_penalty(d_fn, dragan_points(real, key, scale))


def lecam(real_logits: jax.Array, fake_logits: jax.Array, anchor_real: jax.Array,
          anchor_fake: jax.Array) -> jax.Array:
  """Tseng et al. 2021, R_LC as in their released code: E relu(D(x) - α_F)² + E relu(α_R - D(G(z)))²,
  with α_R, α_F the EMAs of the mean real and fake logits (the paper's eq. 3 without the relu)."""
  r = jnp.reshape(real_logits, (-1,)).astype(jnp.float32)
  f = jnp.reshape(fake_logits, (-1,)).astype(jnp.float32)
  return jnp.mean(jnp.square(jax.nn.relu(r - anchor_fake))) + jnp.mean(jnp.square(jax.nn.relu(anchor_real - f)))


def lecam_anchors(state: dict, real_logits: jax.Array, fake_logits: jax.Array,
                  decay: float) -> tuple[dict, jax.Array, jax.Array]:
  """Updates the EMAs of the mean logits (zero-debiased, as the TF reference) and returns them."""
  count = state["count"] + 1
  ema_r = decay * state["ema_real"] + (1 - decay) * jax.lax.stop_gradient(jnp.mean(real_logits).astype(jnp.float32))
  ema_f = decay * state["ema_fake"] + (1 - decay) * jax.lax.stop_gradient(jnp.mean(fake_logits).astype(jnp.float32))
  debias = 1.0 - decay ** count.astype(jnp.float32)
  return {"count": count, "ema_real": ema_r, "ema_fake": ema_f}, ema_r / debias, ema_f / debias


def lecam_init() -> dict:
  return {"count": jnp.zeros((), jnp.int32), "ema_real": jnp.zeros((), jnp.float32),
          "ema_fake": jnp.zeros((), jnp.float32)}


DRIFT_FORMS = ("mean_square", "square_mean")
LAZY_FORMS = ("combined", "separate")


def drift(real_logits: jax.Array, form: str = "mean_square") -> jax.Array:
  """The drift penalty without ε. "mean_square": E D(x_real)², ProGAN's epsilon penalty (official
  loss.py `D_wgangp_acgan`, the mean of the squared real scores); "square_mean": (E D(x_real))²,
  TransGAN's `wgangp-eps` (official functions.py: torch.mean(real_validity) ** 2)."""
  r = jnp.reshape(real_logits, (-1,)).astype(jnp.float32)
  if form == "square_mean":
    return jnp.square(jnp.mean(r))
  if form != "mean_square":
    raise ValueError(f"unknown drift form {form!r}; valid choices: {', '.join(DRIFT_FORMS)}")
  return jnp.mean(jnp.square(r))


def clip_weights(params, c: float):
  return jax.tree.map(lambda p: jnp.clip(p, -c, c), params)


def project_unit_heads(params):
  """Every layer named `unit_head` with its kernel scaled to unit L2 norm (over all its entries: the
  [fan_in, 1] kernel of an output layer), as torch.nn.functional.normalize does with eps 1e-12;
  everything else unchanged. The trainer applies it after each D update (model.d_unit_head)."""
  def walk(tree):
    if not isinstance(tree, dict):
      return tree
    out = {k: walk(v) for k, v in tree.items()}
    head = out.get("unit_head")
    if isinstance(head, dict) and "kernel" in head:
      out["unit_head"] = {**head, "kernel": head["kernel"] / jnp.maximum(jnp.linalg.norm(head["kernel"]), 1e-12)}
    return out
  return walk(params)


@dataclasses.dataclass(frozen=True)
class Regularization:
  """The static regularizer settings of a run (0 disables a term)."""
  r1: float = 0.0
  r2: float = 0.0
  wgan_gp: float = 0.0
  dragan: float = 0.0
  lecam: float = 0.0
  lecam_decay: float = 0.99
  clip: float = 0.0
  lazy_every: int = 1
  drift: float = 0.0            # ε of ProGAN's drift penalty ε E D(x_real)²
  drift_form: str = "mean_square"   # or "square_mean": ε (E D(x_real))² (TransGAN)
  ortho: float = 0.0            # generator: BigGAN's orthogonal regularization
  pl_weight: float = 0.0        # generator: StyleGAN2's path-length regularization
  pl_every: int = 4
  pl_decay: float = 0.01
  pl_batch_shrink: int = 2
  lazy_form: str = "combined"   # or "separate": lazy penalties in optimizer steps of their own

  @property
  def has_gradient_penalty(self) -> bool:
    return any(w > 0 for w in (self.r1, self.r2, self.wgan_gp, self.dragan))


def gradient_penalties(reg: Regularization, d_fn: DFn, real: jax.Array, fake: jax.Array, key: jax.Array,
                       gammas: dict | None = None, d_fn_fake: DFn | None = None,
                       sq_norms: dict | None = None) -> tuple[jax.Array, dict]:
  """Weighted sum of the enabled gradient penalties and each raw value (for logging).

  `sq_norms` may give R1's and R2's per-example ||∇ₓ D||² already computed by the caller
  ({"r1": [B], "r2": [B]}, from `logits_and_grad_sq_norm` on the adversarial term's forward
  pass); the penalties not in it differentiate `d_fn` themselves.

  `gammas` may give the current R1/R2 weights ({"r1": ..., "r2": ...}) when gamma follows a
  schedule; otherwise reg.r1 and reg.r2 are used. A conditional D sees the real labels in `d_fn`
  (R1, and WGAN-GP/DRAGAN points, as StudioGAN does) and the fake ones in `d_fn_fake` (R2)."""
  d_fn_fake = d_fn_fake or d_fn
  gammas = gammas or {"r1": reg.r1, "r2": reg.r2}
  total, logs = jnp.zeros((), jnp.float32), {}
  k_gp, k_dragan = jax.random.split(key)
  sq_norms = sq_norms or {}
  for name, fn, x in (("r1", d_fn, real), ("r2", d_fn_fake, fake)):
    if getattr(reg, name) > 0:
      logs[name] = jnp.mean(sq_norms[name]) if name in sq_norms else zero_centred_penalty(fn, x)
      total += 0.5 * gammas[name] * logs[name]
  if reg.wgan_gp > 0:
    logs["wgan_gp"] = wgan_gp(d_fn, real, fake, k_gp)
    total += reg.wgan_gp * logs["wgan_gp"]
  if reg.dragan > 0:
    logs["dragan"] = dragan(d_fn, real, k_dragan)
    total += reg.dragan * logs["dragan"]
  return total, logs


def orthogonal(params, exclude: str = "embedding") -> jax.Array:
  """BigGAN's orthogonal regularization (Brock et al. 2019, eq. 3) as BigGAN-PyTorch's `ortho`
  applies it: for every weight with >= 2 dimensions, seen as W [out, in], the penalty
  1/2 ||W W^T ⊙ (1 - I)||_F^2, whose gradient 2 (W W^T ⊙ (1 - I)) W is what that code adds to the
  gradient. Parameters whose path contains `exclude` (embedding tables: BigGAN exempts the shared
  class embedding) are skipped."""
  total = jnp.zeros((), jnp.float32)
  for path, w in jax.tree_util.tree_flatten_with_path(params)[0]:
    if w.ndim < 2 or any(exclude in str(getattr(k, "key", k)) for k in path):
      continue
    w = w.reshape(-1, w.shape[-1]).T.astype(jnp.float32)     # flax kernels end with the output axis
    gram = w @ w.T
    total += 0.5 * jnp.sum(jnp.square(gram * (1.0 - jnp.eye(gram.shape[0]))))
  return total


def path_lengths(synthesis: Callable[[jax.Array], jax.Array], ws: jax.Array, key: jax.Array,
                 noise: jax.Array | None = None) -> jax.Array:
  """StyleGAN2's path lengths (Karras et al. 2020, sec. 3.2, as stylegan2-ada-pytorch computes them):
  |J_w^T y| for y ~ N(0, I) / sqrt(H·W) per image, the gradient with respect to ws [B, L, D]
  summed over the feature axis and averaged over the L layers: sqrt(mean_L sum_D g^2), per image.
  `noise`: the N(0, I) draw given instead of drawn from `key` (images' shape)."""
  images = synthesis(ws)
  if noise is None:
    noise = jax.random.normal(key, images.shape, jnp.float32)
  noise = noise.astype(jnp.float32) / np.sqrt(images.shape[1] * images.shape[2])
  grads = jax.grad(lambda w: jnp.sum(synthesis(w).astype(jnp.float32) * noise))(ws)
  return jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))


# ------------------------------------------------------------------------------ config block

def _reg_defaults() -> dict:
  """`reg.*`: D's regularizers (0 disables a term) and G's (BigGAN's orthogonal regularization;
  StyleGAN2's path-length regularization: weight, lazy interval, EMA rate of the target length,
  batch shrink factor). `gamma_final`: the R1/R2 weight's final value of the cosine schedule."""
  return {"r1": 0.0, "r2": 0.0, "gamma_final": config_dict.placeholder(float), "wgan_gp": 0.0, "dragan": 0.0,
          "lecam": 0.0, "lecam_decay": 0.99, "clip": 0.0, "lazy_every": 1,
          "lazy_form": "combined",       # or "separate": StyleGAN2's own optimizer steps for lazy penalties
          "drift": 0.0,                  # ProGAN's ε E D(x_real)²
          "drift_form": "mean_square",   # or "square_mean": ε (E D(x_real))² (TransGAN)
          "ortho": 0.0, "pl_weight": 0.0, "pl_every": 4, "pl_decay": 0.01, "pl_batch_shrink": 2}


def _check_reg(config: ConfigDict) -> None:
  r = config.reg
  for key in ("r1", "r2", "wgan_gp", "dragan", "lecam", "clip", "ortho", "pl_weight", "drift"):
    if r[key] < 0:
      raise ConfigError(f"reg.{key} must be >= 0 (0 disables it), got {r[key]}")
  checks = [(r.drift_form in DRIFT_FORMS, f"unknown reg.drift_form {r.drift_form!r}; valid choices: "
             f"{', '.join(DRIFT_FORMS)}"),
            (r.lazy_every >= 1, f"reg.lazy_every must be >= 1, got {r.lazy_every}"),
            (r.lazy_form in LAZY_FORMS,
             f"unknown reg.lazy_form {r.lazy_form!r}; valid choices: {', '.join(LAZY_FORMS)}"),
            (r.pl_every >= 1, f"reg.pl_every must be >= 1, got {r.pl_every}"),
            (r.pl_batch_shrink >= 1, f"reg.pl_batch_shrink must be >= 1, got {r.pl_batch_shrink}"),
            (0 < r.pl_decay <= 1, f"reg.pl_decay must be in (0, 1], got {r.pl_decay}"),
            (0 <= r.lecam_decay < 1, f"reg.lecam_decay must be in [0, 1), got {r.lecam_decay}")]
  for ok, message in checks:
    if not ok:
      raise ConfigError(message)


BLOCKS.register("reg")(Block("reg", _reg_defaults, _check_reg))
