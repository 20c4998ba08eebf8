import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config


def _init(module, x):
  """The variables, jitted (one program, not the initializers run op by op)."""
  return jax.jit(lambda x: module.init(jax.random.PRNGKey(0), x, train=False))(x)


def _abstract_init(module, x):
  """The variables' shapes only (jax.eval_shape: nothing computed)."""
  return jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), x)


def _shapes(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): v.shape
          for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_dcgan_64_is_the_papers_layer_spec():
  """Radford et al. 2015, fig. 1: 100 -> 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3."""
  cfg = model_config("dcgan")
  g, d = build_models(cfg, DataSpec("image", (64, 64, 3)))
  gv = _abstract_init(g, jnp.zeros((2, 100)))
  shapes = _shapes(gv["params"])
  assert shapes["Dense_0/kernel"] == (100, 4 * 4 * 1024)
  assert [shapes[f"ConvTranspose_{i}/kernel"] for i in range(4)] == [
      (5, 5, 1024, 512), (5, 5, 512, 256), (5, 5, 256, 128), (5, 5, 128, 3)]
  assert len(gv["batch_stats"]) == 4            # BN after the projection and 3 hidden layers, not the output
  out = jax.eval_shape(lambda v: g.apply(v, jnp.zeros((2, 100)), train=False), gv)
  assert out.shape == (2, 64, 64, 3)
  dv = _abstract_init(d, jnp.zeros((2, 64, 64, 3)))
  dshapes = _shapes(dv["params"])
  assert [dshapes[f"Conv_{i}/kernel"] for i in range(4)] == [
      (5, 5, 3, 128), (5, 5, 128, 256), (5, 5, 256, 512), (5, 5, 512, 1024)]
  assert dshapes["Dense_0/kernel"] == (4 * 4 * 1024, 1)
  assert len(dv["batch_stats"]) == 3            # no BN on D's first layer
  # Parameter count by hand (no biases, as in the reference code): G = dense + 4 transposed convs + BN.
  g_count = 100 * 16 * 1024 + 25 * (1024 * 512 + 512 * 256 + 256 * 128 + 128 * 3) + 2 * (1024 + 512 + 256 + 128)
  assert sum(x.size for x in jax.tree.leaves(gv["params"])) == g_count
  d_count = 25 * (3 * 128 + 128 * 256 + 256 * 512 + 512 * 1024) + 2 * (256 + 512 + 1024) + 16 * 1024
  assert sum(x.size for x in jax.tree.leaves(dv["params"])) == d_count


def test_dcgan_init_std_is_0_02():
  g, _ = build_models(model_config("dcgan"), DataSpec("image", (64, 64, 3)))
  # One kernel asked of the jitted initializer: XLA computes that one alone.
  k = jax.jit(lambda x: g.init(jax.random.PRNGKey(0), x, train=False)["params"]["ConvTranspose_0"]["kernel"])(
      jnp.zeros((1, 100)))
  np.testing.assert_allclose(np.std(k), 0.02, rtol=0.02)


@pytest.mark.parametrize("res,channels", [(16, 1), (32, 3), (8, 1)])
def test_dcgan_resolutions(res, channels):
  cfg = model_config("dcgan")
  cfg.g_width = cfg.d_width = 8
  g, d = build_models(cfg, DataSpec("image", (res, res, channels)))
  z = jax.random.uniform(jax.random.PRNGKey(1), (3, 100), minval=-1, maxval=1)
  gv = _init(g, z)
  x = jax.jit(lambda v, z: g.apply(v, z, train=False))(gv, z)
  assert x.shape == (3, res, res, channels)
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  assert jax.eval_shape(lambda v: d.apply(v, x, train=False), _abstract_init(d, x)).shape == (3,)


def test_dcgan_rejects_bad_resolution_and_vector_data():
  with pytest.raises(ConfigError, match="resolution of 4"):
    build_models(model_config("dcgan"), DataSpec("image", (24, 24, 3)))
  with pytest.raises(ConfigError, match="needs image data"):
    build_models(model_config("dcgan"), DataSpec("vector", (2,)))


def test_mlp_is_pacgans_architecture():
  g, d = build_models(model_config("mlp"), DataSpec("vector", (2,)))
  gv = _abstract_init(g, jnp.zeros((4, 2)))
  assert [v["kernel"].shape for v in gv["params"].values()] == [(2, 400), (400, 400), (400, 400), (400, 400), (400, 2)]
  dv = _abstract_init(d, jnp.zeros((4, 2)))
  assert [dv["params"][f"Maxout_{i}"]["Dense_0"]["kernel"].shape for i in range(3)] == [
      (2, 1000), (200, 1000), (200, 1000)]
  assert jax.eval_shape(lambda v: d.apply(v, jnp.ones((4, 2))), dv).shape == (4,)


def test_maxout_takes_the_max_piece():
  from gan_jax.models.mlp import Maxout
  m = Maxout(features=2, pieces=3)
  v = m.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))
  x = jnp.arange(4.0)[None]
  y = x @ v["params"]["Dense_0"]["kernel"] + v["params"]["Dense_0"]["bias"]
  np.testing.assert_allclose(m.apply(v, x), y.reshape(1, 2, 3).max(-1), rtol=1e-6)
