"""Training-step parity with the official R3GAN code (brownvc/R3GAN), from the fixture
tests/fixtures/official/r3gan_step/ that benchmarks/official/step_r3gan.py made by running the official
loss and loop body: the same starting networks (the forward-parity snapshot, imported through the
`r3gan` format), the same real batches, labels and latents for each D and G phase, and every schedule
(lr, Adam beta2, gamma, EMA half-life) moving within the three steps. Our `train_step` with
`batch["draws"]` for the latents (the fakes' labels come from the paired real batches:
model.fake_labels="real") must give G, D and G_ema and the per-step losses within relative 1e-4.
No torch needed.
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from official_fixtures import fixture_dir, manifest, official_nets_after, relative_error, state_with, tree_errors

from gan_jax.config import validate
from gan_jax.importers import FORMATS
from gan_jax.importers import workdir as workdir_lib
from gan_jax.schedules import cosine_ramp
from gan_jax.train.kinds import build_trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = fixture_dir("r3gan_step")


def _official_after(m: dict) -> dict:
  """The official G, D and G_ema after the steps, as our parameter trees (the importer's name mapping)."""
  nets = official_nets_after("r3gan_step", m)
  trees = FORMATS.get(m["format"]).trees
  out = trees({"G": nets["G"], "D": nets["D"]})
  return {"g_params": out["g_params"], "d_params": out["d_params"],
          "ema_params": trees({"G": nets["G_ema"]})["g_params"]}


@functools.lru_cache(maxsize=None)
def _run(overrides_json: str = "{}"):
  """Our run from the fixture's start: (per-step metrics, final state). `overrides_json`: config
  changes on top of the manifest's (to show that a dropped behaviour is caught)."""
  m = manifest("r3gan_step")
  cfg = m["config"]
  config = workdir_lib.load_config(cfg["experiment"], {**cfg["overrides"], **json.loads(overrides_json)})
  validate(config)
  imp = FORMATS.get(m["format"]).read(os.path.normpath(os.path.join(FIXTURE, m["start"])))
  gan = build_trainer(config, imp.spec)
  state = state_with(gan, imp.spec.shape, g_params=imp.g_params, d_params=imp.d_params, ema_params=imp.ema_params)
  inputs = dict(np.load(os.path.join(FIXTURE, m["inputs"])))
  step = jax.jit(gan.step)
  metrics = []
  for i in range(m["steps"]):
    # Row 0 of each step feeds the D update, row 1 the G update; the fakes take those rows' labels.
    batch = {"x": inputs["x"][i], "label": inputs["label"][i],
             "draws": {"d_z": inputs["z"][i, :1], "g_z": inputs["z"][i, 1]}}
    state, out = step(state, batch, jax.random.PRNGKey(1))
    metrics.append({k: float(v) for k, v in out.items() if np.ndim(v) == 0})
  return metrics, state


@pytest.fixture(scope="module")
def official():
  m = manifest("r3gan_step")
  return m, _official_after(m), dict(np.load(os.path.join(FIXTURE, m["losses"])))


def test_fixture_records_official_commit():
  m = manifest("r3gan_step")
  assert len(m["official"]["commit"]) == 40 and m["official"]["repo"].endswith("brownvc/R3GAN")
  total = sum(os.path.getsize(os.path.join(FIXTURE, f)) for f in os.listdir(FIXTURE))
  assert total <= 2.2 * 2 ** 20


def test_train_steps_match_official(official):
  m, after, losses = official
  metrics, state = _run()
  tol = m["tolerance"]
  for name in ("d_loss", "r1", "r2", "g_loss"):
    errors = [relative_error(step[name], ref) for step, ref in zip(metrics, losses[name])]
    assert max(errors) <= tol, (name, errors, [s[name] for s in metrics], losses[name])
  for field in ("g_params", "d_params", "ema_params"):
    errors = tree_errors(getattr(state, field), after[field])
    worst = max(errors, key=errors.get)
    print(field, f"max relative error {errors[worst]:.2g} ({worst})")
    assert errors[worst] <= tol, (field, worst, errors[worst])


def test_the_comparison_has_teeth(official):
  """What the quick comparison rests on, without another compilation: the official steps moved every
  tensor of every network beyond the tolerance (G_ema from its own starting weights: the half-life
  ramps from 0, so step 0 copies G, then betas 0.5 and 0.71), and G_ema ends away from G, so an
  EMA that were dropped or a copy of G would fail."""
  m, after, losses = official
  tol = m["tolerance"]
  imp = FORMATS.get(m["format"]).read(os.path.normpath(os.path.join(FIXTURE, m["start"])))
  for field in ("g_params", "d_params", "ema_params"):
    moved = tree_errors(getattr(imp, field), after[field])
    assert min(moved.values()) > 10 * tol, (field, min(moved, key=moved.get))
  assert max(tree_errors(after["g_params"], after["ema_params"]).values()) > 10 * tol
  # Every schedule moved: base, midway, final at the three steps.
  np.testing.assert_allclose(losses["lr"], [1e-3, 6.25e-4, 2.5e-4], rtol=1e-6)
  np.testing.assert_allclose(losses["gamma"], [0.05, 0.0275, 0.005], rtol=1e-6)
  np.testing.assert_allclose(losses["ema_beta"], [0.0, 0.5, 0.5 ** 0.5], rtol=1e-6)
  # Our schedules at the same image counts. gamma is compared as values: at R3GAN's gamma (<= 0.05
  # here) the penalties' share of D's gradient is small, and holding gamma constant moves the tensors
  # after three steps by only 2.4e-5, below the tolerance.
  cfg = m["config"]
  config = workdir_lib.load_config(cfg["experiment"], cfg["overrides"])
  gan = build_trainer(config, imp.spec)
  images = np.arange(m["steps"]) * m["batch"]
  np.testing.assert_allclose([cosine_ramp(gan.reg.r1, gan.gamma_final, gan.schedule_images)(t) for t in images],
                             losses["gamma"], rtol=1e-6)
  np.testing.assert_allclose([gan.ema_beta(jnp.asarray(i)) for i in range(m["steps"])], losses["ema_beta"], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    {"model.fake_labels": "uniform"},                        # fakes not paired with their reals' classes
    {"reg.r1": 0.0, "reg.r2": 0.0},                          # no R1 + R2
    {"optim.g.lr_final": None, "optim.d.lr_final": None},    # constant learning rate
    {"optim.g.b2_final": None, "optim.d.b2_final": None},    # constant Adam beta2
    {"ema.halflife_kimg": 0.008, "ema.halflife_final_kimg": None},   # EMA half-life without its ramp
], ids=lambda o: ",".join(o))
def test_parity_catches_dropped_behaviours(official, overrides):
  """Each part of the recipe, changed alone, moves some tensor or loss beyond the tolerance."""
  m, after, losses = official
  metrics, state = _run(json.dumps(overrides))
  worst = max(max(tree_errors(getattr(state, f), after[f]).values()) for f in ("g_params", "d_params", "ema_params"))
  worst_loss = max(relative_error(s[k], ref) for k in ("d_loss", "g_loss") for s, ref in zip(metrics, losses[k]))
  assert max(worst, worst_loss) > 10 * m["tolerance"], (overrides, worst, worst_loss)
