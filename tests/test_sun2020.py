"""Sun et al. 2020's toys: the gauss5 and two_cluster data, the collapse metric, the experiments'
networks (LeakyReLU D), and a few steps of training in-process."""
import numpy as np
import pytest
from ml_collections import ConfigDict

from gan_jax import config as config_lib
from gan_jax.data import build_dataset
from gan_jax.data.toy2d import SUN_STD, ring_modes
from gan_jax.errors import ConfigError
from gan_jax.metrics.modes import collapse_statistics


def _data(name: str, n: int) -> ConfigDict:
  return ConfigDict({"name": name, "num_examples": n, "seed": 3})


@pytest.mark.parametrize("name, modes", [("gauss5", ring_modes(5)), ("two_cluster", np.array([[1.0, 0], [-1, 0]]))])
def test_training_set_is_the_papers_balanced_mixture(name, modes):
  ds = build_dataset(_data(name, 10_000))
  x = np.stack([ds.source[i]["x"] for i in range(len(ds.source))])
  assert x.shape == (10_000, 2) and x.dtype == np.float32
  np.testing.assert_allclose(ds.modes, modes, atol=1e-12)
  assert ds.mode_std == SUN_STD == pytest.approx(np.sqrt(0.002))
  nearest = np.argmin(np.linalg.norm(x[:, None] - modes[None], axis=-1), axis=1)
  assert np.bincount(nearest).tolist() == [10_000 // len(modes)] * len(modes)   # exactly equal weights
  for k, mode in enumerate(modes):
    pts = x[nearest == k]
    np.testing.assert_allclose(pts.mean(0), mode, atol=0.01)
    np.testing.assert_allclose(pts.std(0), SUN_STD, rtol=0.1)
  # Shuffled, not grouped by mode; the same seed gives the same set.
  assert len(set(nearest[:50].tolist())) == len(modes)
  np.testing.assert_array_equal(x[:10], np.stack([build_dataset(_data(name, 10_000)).source[i]["x"]
                                                  for i in range(10)]))


def test_gauss5_modes_are_the_papers():
  degrees = np.linspace(0, 360, 6)[:-1] / 180 * np.pi   # their datasets.py: (cos d, sin d)
  np.testing.assert_allclose(ring_modes(5), np.stack([np.cos(degrees), np.sin(degrees)], 1), atol=1e-12)


def test_evaluation_reports_collapse():
  ds = build_dataset(_data("gauss5", 1000))
  assert set(ds.eval_metrics) == {"modes_covered", "high_quality_fraction", "reverse_kl", "mode_collapse",
                                  "min_mode_fraction"}
  rng = np.random.default_rng(0)
  modes = ring_modes(5)
  good = np.repeat(modes, 500, axis=0) + SUN_STD * 0.3 * rng.standard_normal((2500, 2))
  out = ds.evaluate(good)
  assert out["modes_covered"] == 5 and out["mode_collapse"] == 0.0
  np.testing.assert_allclose(out["min_mode_fraction"], 1.0)


def test_collapse_statistics_by_hand():
  modes = np.array([[0.0, 0.0], [1.0, 0.0]])
  # 100 samples: 96 at mode 0, 4 at mode 1 (a few stray samples: covered in PacGAN's sense).
  samples = np.array([[0.0, 0.0]] * 96 + [[1.0, 0.0]] * 4)
  out = collapse_statistics(samples, modes, std=0.01)
  # Mode 1 holds 4 % of the samples, 0.08 of its equal share 50 %: under a tenth, collapsed.
  assert out == {"min_mode_fraction": pytest.approx(0.08), "mode_collapse": 1.0}
  samples = np.array([[0.0, 0.0]] * 94 + [[1.0, 0.0]] * 6)   # 0.12 of its share: not collapsed
  assert collapse_statistics(samples, modes, std=0.01)["mode_collapse"] == 0.0
  # Samples beyond 3 std of every mode count for none.
  assert collapse_statistics(np.full((10, 2), 0.5), modes, std=0.01) == {"min_mode_fraction": 0.0,
                                                                          "mode_collapse": 1.0}


@pytest.mark.parametrize("name", ["gauss5", "two_cluster"])
def test_experiment_config_is_the_papers_protocol(load_config, name):
  c = load_config(f"experiments/{name}.py")
  config_lib.validate(c)
  assert (c.data.name, c.data.num_examples, c.batch_size, c.total_steps) == (name, 10_000, 128, 20_000)
  assert (c.model.g_width, c.model.g_layers, c.model.d_width, c.model.d_layers) == (128, 2, 128, 2)
  assert (c.model.d_maxout_pieces, c.model.d_leaky_slope, c.model.z_dim) == (1, 0.2, 2)
  for who in ("g", "d"):
    assert (c.optim[who].name, c.optim[who].lr, c.optim[who].b1, c.optim[who].b2) == ("adam", 1e-4, 0.0, 0.9)
  assert (c.reg.r1, c.reg.r2) == (0.0, 0.0)


def test_leaky_discriminator_layers():
  import jax
  import jax.numpy as jnp

  from gan_jax.models.mlp import MaxoutDiscriminator
  d = MaxoutDiscriminator(width=4, layers=1, pieces=1, leaky_slope=0.2)
  params = d.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
  w, b = params["params"]["Dense_0"]["kernel"], params["params"]["Dense_0"]["bias"]
  v, c = params["params"]["Dense_1"]["kernel"], params["params"]["Dense_1"]["bias"]
  x = jnp.array([[0.3, -1.2], [2.0, 0.5]])
  h = x @ w + b
  expected = (jnp.where(h > 0, h, 0.2 * h) @ v + c)[:, 0]
  np.testing.assert_allclose(d.apply(params, x), expected, rtol=1e-6)


def test_leaky_slope_needs_dense_layers(load_config):
  from gan_jax.models import DataSpec, build_models
  c = load_config("experiments/ring8.py")
  c.model.d_leaky_slope = 0.2   # ring8's D is maxout
  with pytest.raises(ConfigError, match="model.d_leaky_slope must be >= 0 and needs model.d_maxout_pieces=1"):
    build_models(c.model, DataSpec("vector", (2,)))


def test_a_few_steps_of_both_losses_in_process(load_config, tmp_path):
  """The experiment trains as configured (a 2-member population, 20 steps) and logs the collapse
  metrics per member."""
  import json

  from gan_jax.train import loop
  for loss in ("nonsaturating", "rsgan"):
    c = load_config(f"experiments/two_cluster.py:runlocal,loss={loss}")
    c.update_from_flattened_dict({"total_steps": 20, "population": 2, "log_every": 10, "eval.every": 10,
                                  "eval.num_samples": 200, "sample_every": 0, "ckpt_every": 20})
    loop.train(c, str(tmp_path / loss))
    rows = [json.loads(line) for line in (tmp_path / loss / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert last["step"] == 20 and len(last["mode_collapse"]) == 2
    assert all(v in (0.0, 1.0) for v in last["mode_collapse"]) and all(0 <= v for v in last["min_mode_fraction"])


def test_project_unit_heads_by_hand():
  import jax.numpy as jnp

  from gan_jax.regularizers import project_unit_heads
  params = {"params": {"Dense_0": {"kernel": jnp.full((2, 3), 5.0), "bias": jnp.ones(3)},
                       "unit_head": {"kernel": jnp.array([[3.0], [4.0], [0.0]])}}}
  out = project_unit_heads(params)
  np.testing.assert_allclose(out["params"]["unit_head"]["kernel"], [[0.6], [0.8], [0.0]], rtol=1e-7)
  np.testing.assert_array_equal(out["params"]["Dense_0"]["kernel"], params["params"]["Dense_0"]["kernel"])
  np.testing.assert_array_equal(out["params"]["Dense_0"]["bias"], params["params"]["Dense_0"]["bias"])
  zero = project_unit_heads({"unit_head": {"kernel": jnp.zeros((3, 1))}})   # torch's eps: 0 stays 0
  np.testing.assert_array_equal(zero["unit_head"]["kernel"], np.zeros((3, 1)))
  plain = {"Dense_1": {"kernel": jnp.ones((3, 1))}}
  assert project_unit_heads(plain)["Dense_1"]["kernel"] is plain["Dense_1"]["kernel"]


def test_unit_head_is_bias_free_and_projected_after_each_d_update(load_config, monkeypatch):
  """model.d_unit_head (Sun et al.'s RS-GAN toy D): the output layer has no bias, and after a train
  step its kernel is the Adam-updated kernel (the same step with the projection removed) divided by
  its norm."""
  import jax

  from gan_jax import regularizers
  from gan_jax.train import loop
  from gan_jax.train.kinds import build_trainer
  c = load_config("experiments/two_cluster.py:runlocal,loss=rsgan")
  c.update_from_flattened_dict({"model.d_unit_head": True, "population": 1})
  config_lib.validate(c)
  ds = build_dataset(c.data)
  _, _, init, init_key, step_key, _ = loop.setup(c, ds.spec)
  state = init(init_key)
  head = state.d_params["unit_head"]
  assert set(head) == {"kernel"} and head["kernel"].shape == (128, 1)
  gan = build_trainer(c, ds.spec)
  n = gan.batches_per_step
  x = np.stack([ds.source[i]["x"] for i in range(n * c.batch_size)]).reshape(n, c.batch_size, 2)

  def d_head_after_one_step():
    gan = build_trainer(c, ds.spec)   # a new trainer, so that jit traces again (and reads the patched module)
    new, _ = jax.jit(gan.step_for(gan.phase_at(0)))(state, {"x": x}, step_key)
    return np.asarray(new.d_params["unit_head"]["kernel"], np.float64)

  projected = d_head_after_one_step()
  monkeypatch.setattr(regularizers, "project_unit_heads", lambda params: params)
  raw = d_head_after_one_step()
  assert abs(np.linalg.norm(projected) - 1) < 1e-6 and abs(np.linalg.norm(raw) - 1) > 1e-3
  np.testing.assert_allclose(projected, raw / np.linalg.norm(raw), rtol=1e-5, atol=1e-7)
