"""Shared by the official-parity tests: the fixture directories (tests/fixtures/official/<name>/, made by
benchmarks/official/make_fixtures.py), their manifests and the relative L2 error they are judged by."""
import json
import os

import jax
import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "official")


def fixture_dir(name: str) -> str:
  return os.path.join(FIXTURES, name)


def manifest(name: str) -> dict:
  with open(os.path.join(fixture_dir(name), "manifest.json")) as f:
    return json.load(f)


def official_nets_after(name: str, m: dict) -> dict:
  """The official networks after the fixture's steps ({"G", "D", "G_ema"}: state dicts), from the npz whose
  keys are "<net>/<parameter>"."""
  after = dict(np.load(os.path.join(fixture_dir(name), m["after"])))
  return {net: {k.split("/", 1)[1]: v for k, v in after.items() if k.startswith(net + "/")}
          for net in ("G", "D", "G_ema")}


def relative_error(ours, ref) -> float:
  """|ours - ref| / |ref| (L2, float64); the shapes must agree."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-30))


def tree_errors(ours, ref) -> dict:
  """{leaf path: relative error} over two trees of the same structure."""
  flat_ref = dict(jax.tree_util.tree_flatten_with_path(ref)[0])
  flat_ours = dict(jax.tree_util.tree_flatten_with_path(ours)[0])
  assert set(flat_ours) == set(flat_ref)
  return {jax.tree_util.keystr(k): relative_error(flat_ours[k], v) for k, v in flat_ref.items()}


def state_with(gan, data_shape: tuple, **fields):
  """Our train state holding `fields` (g_params, d_params, ema_params, and g_vars / d_vars where the networks
  have them), with fresh optimizer states for those weights and the rest (step, the other variables,
  reg_state) from our initializer, in one jitted program: the networks' initialization, replaced, is
  dropped by XLA (gan.init called unjitted runs it op by op instead: hundreds of compilations)."""
  def build(key, fields):
    return gan.init(key, data_shape).replace(**fields, g_opt=gan.g_tx.init(fields["g_params"]),
                                             d_opt=gan.d_tx.init(fields["d_params"]))
  return jax.jit(build)(jax.random.PRNGKey(0), fields)
