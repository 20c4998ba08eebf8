"""Training-step parity with the official BigGAN code (ajbrock/BigGAN-PyTorch), from the fixture
tests/fixtures/official/biggan_step/ that benchmarks/official/step_biggan.py made by running the
official training function (train_fns.py GAN_training_function: 2 D steps on their own real batches,
D on [fakes; reals] in one call, hinge loss, the G step with G_ortho 1e-4, the EMA with its start
iteration) for three iterations from the forward-parity checkpoint (tests/fixtures/official/biggan/,
imported through the `biggan-pytorch` format's mapping), with the same reals, labels, latents and fake
labels (`batch["draws"]`). G, D (weights and state: u vectors, sigma, BN statistics), G_ema's weights
and the losses must match within relative 1e-4, but for G's conv biases whose output reaches the loss
only through BatchNorm (a per-channel constant BN removes: their gradient is zero but for rounding, which
Adam's normalization turns into steps of up to lr, in both implementations alike): within 1e-3.
Behaviours are checked to matter: the EMA's start (quick: the EMA without it, from our own per-step
weights, misses the official G_ema) and, in the slow tier, each of the official loop's other behaviours
switched off in our config (D on reals and fakes separately, state updates from each network's own step
only, flax's biased BN running variance, no orthogonal regularization) moves some tensor beyond 1e-4.
No torch needed.
"""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from official_fixtures import fixture_dir, manifest, official_nets_after, relative_error, tree_errors

from gan_jax.config import validate
from gan_jax.importers import biggan as biggan_format
from gan_jax.importers import statedict as sdm
from gan_jax.importers import workdir as workdir_lib
from gan_jax.models import DataSpec
from gan_jax.train.kinds import build_trainer
from gan_jax.train.state import TrainState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = fixture_dir("biggan_step")


def reals(x_u8: np.ndarray, resolution: int = 32) -> np.ndarray:
  """As the fixture maker: uint8 16x16 -> nearest 2x upsampling -> x / 127.5 - 1 in float32."""
  f = resolution // x_u8.shape[-2]
  x = np.repeat(np.repeat(x_u8, f, axis=-3), f, axis=-2)
  return (x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


SPEC = DataSpec("image", (32, 32, 3), 5)
ATTENTION_BLOCK = 0   # G's self-attention follows block 0 (8x8)
# G's conv biases followed by BatchNorm alone: conv1 of every block (-> bn2), and the blocks' outputs after
# the attention block (-> the next block's bn1 and 1x1 shortcut conv, or the output BN).
BN_FED = {f"['block{i}']['{conv}']['conv']['bias']" for i in range(3) for conv in ("conv1", "conv2", "conv_sc")
          if conv == "conv1" or i > ATTENTION_BLOCK}
BN_FED_TOL = 1e-3


@functools.lru_cache(maxsize=None)
def _setup(overrides_json: str):
  m = manifest("biggan_step")
  cfg = m["config"]
  config = workdir_lib.load_config(cfg["experiment"], {**cfg["overrides"], **json.loads(overrides_json)})
  validate(config)
  gan = build_trainer(config, SPEC)
  return gan, jax.eval_shape(functools.partial(gan.init, data_shape=SPEC.shape), jax.random.PRNGKey(0))


def _trees(nets: dict, abstract) -> dict:
  """Official state dicts {"G", "D", "G_ema"} -> our trees, through the importer's mapping. G's
  buffers are G's own (the importer's directory import takes the one set of G buffers our state
  has from G_ema.pth; the official G trains with G.pth's)."""
  out = biggan_format.convert({k: v for k, v in nets.items() if k != "G_ema"}, abstract)
  if "G_ema" in nets:
    stats = dict(nets["G"])
    stats.update(nets["G_ema"])   # G_ema's weights; its buffers (EMA'd in the official code) are not ours
    out["ema_params"] = biggan_format.convert({"G": stats}, abstract)["g_params"]
  return out


def _official_after(m: dict, abstract) -> dict:
  return _trees(official_nets_after("biggan_step", m), abstract)


@functools.lru_cache(maxsize=None)
def _run(overrides_json: str = "{}"):
  """Our run from the fixture's start: (per-step metrics, final state). `overrides_json`: config
  changes on top of the manifest's (to show that a dropped behaviour is caught)."""
  m = manifest("biggan_step")
  gan, abstract = _setup(overrides_json)
  start = os.path.normpath(os.path.join(FIXTURE, m["start"]))
  nets = {n: sdm.read_state_dict(os.path.join(start, f"{n}.pth")) for n in ("G", "D", "G_ema")}
  trees = jax.tree.map(jnp.asarray, _trees(nets, abstract))
  g, d = trees["g_params"], trees["d_params"]
  # The state built directly (gan.init would compile the networks' initialization for nothing).
  state = TrainState(step=jnp.zeros((), jnp.int32), g_params=g, g_vars=trees["g_vars"], d_params=d,
                     d_vars=trees["d_vars"], ema_params=trees["ema_params"], g_opt=gan.g_tx.init(g),
                     d_opt=gan.d_tx.init(d), reg_state=jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                                                                    abstract.reg_state))
  inputs = dict(np.load(os.path.join(FIXTURE, m["inputs"])))
  x = reals(inputs["x_u8"])
  step = jax.jit(gan.step)
  metrics, states = [], [state]
  for i in range(m["steps"]):
    batch = {"x": x[i], "label": inputs["y"][i],
             "draws": {"d_z": inputs["d_z"][i], "d_labels": inputs["d_y"][i], "g_z": inputs["g_z"][i],
                       "g_labels": inputs["g_y"][i]}}
    state, out = step(state, batch, jax.random.PRNGKey(1))
    metrics.append({k: float(v) for k, v in out.items() if np.ndim(v) == 0})
    states.append(state)
  return metrics, states, abstract


@pytest.fixture(scope="module")
def official():
  m = manifest("biggan_step")
  _, abstract = _setup("{}")
  return m, _official_after(m, abstract), dict(np.load(os.path.join(FIXTURE, m["losses"])))


def _errors(state, after) -> dict:
  return {field: tree_errors(getattr(state, field), after[field])
          for field in ("g_params", "d_params", "ema_params", "g_vars", "d_vars")}


def _worst(errors: dict) -> tuple[str, float]:
  """The tensor furthest beyond its tolerance: (name, error / tolerance · 1e-4), BN_FED biases at BN_FED_TOL."""
  scaled = {k: e * (1e-4 / BN_FED_TOL if k in BN_FED else 1.0) for k, e in errors.items()}
  worst = max(scaled, key=scaled.get)
  return worst, scaled[worst]


def test_fixture_records_official_commit():
  m = manifest("biggan_step")
  assert len(m["official"]["commit"]) == 40 and m["official"]["repo"].endswith("ajbrock/BigGAN-PyTorch")
  total = sum(os.path.getsize(os.path.join(FIXTURE, f)) for f in os.listdir(FIXTURE))
  assert total <= 2.2 * 2 ** 20


def test_train_steps_match_official(official):
  m, after, losses = official
  metrics, states, _ = _run()
  state = states[-1]
  tol = m["tolerance"]
  # The training function returns the last D step's terms; the G loss excludes the ortho term (a gradient).
  d_last = losses["D_loss_real"][:, -1] + losses["D_loss_fake"][:, -1]
  for name, ref in (("d_loss", d_last), ("g_loss", losses["G_loss"])):
    errors = [relative_error(step[name], r) for step, r in zip(metrics, ref)]
    assert max(errors) <= tol, (name, errors, [s[name] for s in metrics], ref)
  for field, errors in _errors(state, after).items():
    worst = max(errors, key=errors.get)
    strict = max((e for k, e in errors.items() if k not in BN_FED), default=0.0)
    print(field, f"max relative error {errors[worst]:.2g} ({worst}); without the BN-fed biases {strict:.2g}")
    name, scaled = _worst(errors)
    assert scaled <= tol, (field, name, errors[name])


def test_ema_start_matters(official):
  """G_ema with the EMA from the first step (no ema.start_step), recomputed from our own per-step G,
  misses the official G_ema: the first iteration's copy is what the fixture holds."""
  m, after, _ = official
  _, states, _ = _run()
  decay = m["ema_decay"]
  ema = states[0].ema_params
  for s in states[1:]:
    ema = jax.tree.map(lambda e, g: decay * e + (1 - decay) * g, ema, s.g_params)
  assert max(tree_errors(ema, after["ema_params"]).values()) > 10 * m["tolerance"]


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [{"model.d_joint": False}, {"model.state_updates": "own"},
                                       {"model.bn_bessel": False}, {"reg.ortho": 0.0}, {"ema.start_step": 0}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_parity_catches_dropped_behaviours(official, overrides):
  """Each behaviour of the official loop, switched off, moves some tensor beyond 5x the tolerance."""
  m, after, _ = official
  _, states, _ = _run(json.dumps(overrides))
  worsts = {field: _worst(errors) for field, errors in _errors(states[-1], after).items()}
  print(overrides, {field: f"{w[1]:.2g} {w[0]}" for field, w in worsts.items()})
  assert max(w[1] for w in worsts.values()) > 5 * m["tolerance"], (overrides, worsts)
