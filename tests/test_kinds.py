"""The trainer protocol's contract (gan_jax/train/kinds), checked the same way for every registered kind
on its runlocal toy, in-process: the step is pure, a restored checkpoint continues exactly,
nan_policy=skip undoes a step, population member i is the run of seed + i where the kind supports
populations, settings a kind does not read are refused (exit 2), and 4 devices give 1 device's
step (full tier: a 4-device interpreter)."""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_main

from gan_jax import cli
from gan_jax.checkpoint import Checkpointer, abstract_like
from gan_jax.config import validate
from gan_jax.data import build_dataset
from gan_jax.errors import ConfigError
from gan_jax.models import MODELS
from gan_jax.train import loop
from gan_jax.train.kinds import KINDS, build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every kind's toy: the runlocal variant of one of its experiments at batch 8 (4 for CycleGAN, at
# 16x16 with 1 residual block: its step has eight generator passes to compile). The GAN toy runs the
# default two-forward step (grad_accum is a feature of it; train.reuse_fake is tested in test_conditional.py).
TOYS = {"gan": ("dcgan_digits", {"batch_size": 8, "train.reuse_fake": False}),
        "progressive": ("progan_celebahq1024", {"batch_size": 8}),
        "translation": ("cyclegan_horse2zebra", {"batch_size": 4, "data.resolution": 16, "model.g_blocks": 1,
                                                 "model.d_layers": 2, "model.pool_size": 4}),
        "text2image": ("stackgan_cub", {"batch_size": 8})}
# The features the loop and the shared step machinery provide, as the config keys that turn them on.
FEATURES = {"population": 2, "nan_policy": "skip", "grad_accum": 2, "precision": "bfloat16", "n_critic": 2,
            "ema.rampup": 0.05, "reg.r1": 1.0, "augment.name": "diffaugment"}


def test_every_kind_has_a_toy_and_every_model_a_kind():
  assert set(TOYS) == set(KINDS.names())
  assert {MODELS.get(m).kind for m in MODELS.names()} <= set(KINDS.names())


# Adam's first update is g / (|g| + eps): gradients that are zero but for float noise (CycleGAN's
# biases before instance norm) would move by lr with a random sign, so programs that differ only in
# rounding (vmap-ed or not, 1 or 4 devices) would drift apart. A larger eps keeps them together.
ADAM_EPS = {"optim.g.eps": 1e-3, "optim.d.eps": 1e-3}


def toy_config(kind: str, **overrides):
  name, settings = TOYS[kind]
  c = cli.load_experiment(os.path.join(ROOT, "experiments", f"{name}.py:runlocal"))
  c.update_from_flattened_dict({**settings, **ADAM_EPS, **overrides})
  validate(c)
  return c


@functools.lru_cache(maxsize=None)
def compiled_step(kind: str, population: int = 1, impl: str = "vmap"):
  """The jitted step (no donation) of `kind`'s toy with nan_policy=skip (the guard is part of every
  checked step), over members by `population_impl` `impl` when population > 1 (the trainer's own
  `loop.over_members`); shared by every seed (the seed lives in the keys and the state, not in the trainer)."""
  c = toy_config(kind, nan_policy="skip", population=population, population_impl=impl)
  gan = build_trainer(c, build_dataset(c.data).spec)
  step = gan.step_for(gan.phase_at(0))
  return gan, jax.jit(loop.over_members(step, impl) if population > 1 else step)


@functools.lru_cache(maxsize=None)
def toy(kind: str, population: int = 1, seed: int = 0, impl: str = "vmap"):
  """(trainer, mesh, initial state, first batch, step key, jitted step) of `kind`'s toy."""
  c = toy_config(kind, nan_policy="skip", population=population, seed=seed)
  ds = build_dataset(c.data)
  _, mesh, init, init_key, step_key, _ = loop.setup(c, ds.spec)
  gan, step = compiled_step(kind, population, impl)   # the same trainer: its config differs by the seed alone
  state = init(init_key)
  lead = gan.batch_layout(gan.phase_at(0))
  n = int(np.prod(lead)) * gan.data_batch
  examples = [ds.transform(ds.source[i % len(ds.source)]) for i in range(n)]
  batch = {k: jnp.asarray(np.stack([e[k] for e in examples]).reshape(*lead, gan.data_batch, *np.shape(examples[0][k])))
           for k in examples[0]}
  return gan, mesh, state, batch, step_key, step


def run(kind: str, steps: int, population: int = 1, seed: int = 0, state=None, start: int = 0):
  gan, _, state0, batch, key, step = toy(kind, population, seed)
  state = state0 if state is None else state
  metrics = None
  for _ in range(start, steps):
    state, metrics = step(state, batch, key)
  return state, metrics


def assert_trees_equal(a, b, rtol=0.0, atol=0.0):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", sorted(TOYS))
def test_the_step_is_pure(kind):
  """The same state, batch and key give the same new state and metrics; the input state is untouched."""
  gan, _, state, batch, key, step = toy(kind)
  before = jax.tree.map(np.asarray, state)
  a = step(state, batch, key)
  b = step(state, batch, key)
  assert_trees_equal(a, b)
  assert_trees_equal(state, before)
  assert int(a[0].step) == 1 and float(a[1]["step_ok"]) == 1.0


@pytest.mark.parametrize("kind", sorted(TOYS))
def test_a_restored_checkpoint_continues_exactly(kind, tmp_path):
  straight, _ = run(kind, 3)
  state, _ = run(kind, 2)
  ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=1, async_save=False)
  ckpt.save(2, state, None)
  restored = ckpt.restore(2, abstract_like(state))
  ckpt.close()
  resumed, _ = run(kind, 3, state=restored, start=2)
  assert_trees_equal(resumed, straight)


@pytest.mark.parametrize("kind", sorted(TOYS))
def test_nan_skip_undoes_a_step(kind):
  gan, _, state, batch, key, step = toy(kind)
  poisoned = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x, batch)
  after, metrics = step(state, poisoned, key)
  assert float(metrics["step_ok"]) == 0.0 and int(metrics["nonfinite_skipped"]) == 1
  assert int(after.step) == int(state.step) + 1
  assert_trees_equal(after.replace(step=state.step, reg_state={}), state.replace(reg_state={}))
  assert int(after.reg_state["nonfinite_skipped"]) == 1
  good, metrics = step(after, batch, key)   # and the next good step counts as good
  assert float(metrics["step_ok"]) == 1.0 and int(good.reg_state["nonfinite_skipped"]) == 1


def _supports(kind: str, key: str) -> bool:
  """Whether `kind` reads `key`; if not, the one-line refusal names the key and the kind: for a key of
  the base config, validate's; for a key of a block the kind's config has not, the command line's."""
  c = toy_config(kind)
  try:
    c.update_from_flattened_dict({key: FEATURES[key]})
  except KeyError:   # a key of a block the config has not, in a section: the command line says so
    message = cli._unknown_key_message(c, [key], "config")
    assert message.startswith(f"config.{key} is not used by training kind {kind!r}"), message
    return False
  try:
    validate(c)
  except ConfigError as e:
    assert f"{key}={FEATURES[key]!r} is not used by training kind {kind!r}" in str(e)
    return False
  return True


def population_beside_seeds(kind: str, impl: str, rtol: float, atol: float):
  """Two steps of `kind`'s 2-member population (`population_impl` `impl`) and of the runs of seeds 0 and
  1 on the same batch, every step's metrics compared member by member within (rtol, atol). Returns the
  population's state and the two runs' states after the steps."""
  _, _, pop, batch, pop_key, pop_step = toy(kind, 2, impl=impl)
  singles = [list(toy(kind, 1, seed=i))[2:] for i in range(2)]
  for _ in range(2):
    pop, pop_metrics = pop_step(pop, batch, pop_key)
    for i, (state, _, key, step) in enumerate(singles):
      singles[i][0], metrics = step(state, batch, key)
      for name, value in metrics.items():
        np.testing.assert_allclose(pop_metrics[name][i], value, rtol=rtol, atol=atol, err_msg=f"member {i} {name}")
  return pop, [state for state, *_ in singles]


@pytest.mark.parametrize("kind", sorted(TOYS))
def test_population_member_i_is_the_run_of_seed_i(kind):
  """Two steps of a 2-member population against the runs of seeds 0 and 1: the same losses and metrics
  at every step, and the same weights but for rounding (the vmap-ed program convolves in groups and sums
  in another order; Adam turns the few near-zero gradients' rounding into steps of up to lr)."""
  if not _supports(kind, "population"):
    pytest.skip(f"{kind} refuses populations (asserted by the refusal test)")
  pop_gan = toy(kind, 2, impl="vmap")[0]   # (the cache entry population_beside_seeds uses)
  lr = max(float(pop_gan.g_tx.init({}).hyperparams["learning_rate"]), float(pop_gan.d_tx.init({}).hyperparams[
      "learning_rate"]))
  # (gradient norms of the second step: rounding as above, ~5e-4)
  pop, singles = population_beside_seeds(kind, "vmap", rtol=2e-3, atol=1e-6)
  for i, state in enumerate(singles):
    member = jax.tree.map(lambda x, i=i: x[i], pop)
    assert_trees_equal((member.g_params, member.d_params), (state.g_params, state.d_params), rtol=1e-4, atol=2.5 * lr)
    assert int(member.step) == int(state.step) == 2


def test_an_unrolled_population_computes_each_members_own_run():
  """population_impl="unroll": each member runs its single run's computation, so two steps of a 2-member
  population give the runs of seeds 0 and 1 to float32 rounding (metrics 1e-6, weights 1e-6 absolute:
  a few hundred times inside the vmap-ed tolerance above)."""
  pop, singles = population_beside_seeds("gan", "unroll", rtol=1e-6, atol=1e-7)
  for i, state in enumerate(singles):
    assert_trees_equal(jax.tree.map(lambda x, i=i: x[i], pop), state, rtol=1e-5, atol=1e-6)


def test_unsupported_features_are_refused_by_the_config():
  """Every kind either supports a feature of the machinery or refuses it with one line naming the key and
  the kind (checked inside `_supports`); what each kind supports today."""
  table = {kind: sorted(k for k in FEATURES if _supports(kind, k)) for kind in sorted(TOYS)}
  assert table == {
      "gan": sorted(FEATURES),
      "progressive": sorted(FEATURES),
      "translation": ["nan_policy", "population", "precision"],
      "text2image": ["nan_policy"],
  }


def test_a_refused_feature_exits_2_with_one_line(tmp_path):
  workdir = tmp_path / "run"
  r = run_main("train.py", "--config", os.path.join(ROOT, "experiments", "stackgan_cub.py:runlocal"), "--workdir",
               str(workdir), "--config.population=2")
  assert r.returncode == 2, r.stderr[-2000:]
  assert r.stderr.strip().splitlines() == [
      "error: population=2 is not used by training kind 'text2image' (model 'stackgan'); leave it at 1"]
  assert not workdir.exists()


def four_devices_equal_one() -> None:
  """Every kind's toy, 2 steps on a 1-device mesh and on 4 devices (of this interpreter's CPU devices)."""
  from gan_jax import parallel
  assert jax.device_count() >= 4
  for kind in sorted(TOYS):
    gan, _, state, batch, key, _ = toy(kind)
    outs = []
    for devices in (jax.devices()[:1], jax.devices()[:4]):
      mesh = jax.sharding.Mesh(np.array(devices), ("data",))
      rep = parallel.replicated(mesh)
      s = jax.device_put(jax.device_get(state), rep)   # a copy: the step donates its input state
      step = loop.jit_step(gan, mesh, 1, jax.tree.map(lambda _, r=rep: r, state))
      b = jax.device_put(batch, parallel.batch_sharding(mesh, batch_axis=len(gan.batch_layout(gan.phase_at(0)))))
      k = jax.device_put(key, rep)
      for _ in range(2):
        s, m = step(s, b, k)
      outs.append((jax.device_get(s), jax.device_get(m)))
    (s1, m1), (s4, m4) = outs
    for name in ("d_loss", "g_loss"):
      np.testing.assert_allclose(m4[name], m1[name], rtol=2e-4, atol=2e-5, err_msg=f"{kind} {name}")
    assert_trees_equal(s4.g_params, s1.g_params, rtol=2e-3, atol=2e-4)
    print(f"{kind}: 4 devices = 1 device (d_loss {float(m1['d_loss']):.6f}, g_loss {float(m1['g_loss']):.6f})")


@pytest.mark.slow
def test_four_devices_equal_one_for_every_kind(capsys):
  four_devices_equal_one()
  out = capsys.readouterr().out
  assert out.count("4 devices = 1 device") == len(TOYS), out
