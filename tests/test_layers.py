"""The sub-pixel forms equal the plain Flax layers: values, gradients (first and second order), parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.config import ConfigError
from gan_jax.models import layers
from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator

# (kernel, stride, input size, padding): even and odd kernels and sizes, both paddings, stride 3.
CASES = [(2, 2, 5, "SAME"), (3, 2, 4, "SAME"), (3, 2, 5, "VALID"), (4, 2, 4, "SAME"), (4, 2, 5, "VALID"),
         (5, 2, 4, "SAME"), (5, 2, 5, "VALID"), (1, 2, 5, "SAME"), (3, 3, 7, "SAME"), (4, 3, 8, "VALID")]


def _values_and_grads(module, params, x, g):
  """Output, and gradients w.r.t. (params, x) of the random linear functional sum(out * g)."""
  return module.apply(params, x), jax.grad(lambda p, x: jnp.sum(module.apply(p, x) * g), argnums=(0, 1))(params, x)


@pytest.mark.parametrize("ours,plain", [(layers.ConvTranspose, nn.ConvTranspose), (layers.Conv, nn.Conv)])
@pytest.mark.parametrize("k,s,n,pad", CASES)
def test_values_and_gradients_equal_plain_layer(ours, plain, k, s, n, pad):
  x = jax.random.normal(jax.random.PRNGKey(n + 10 * k), (2, n, n + 1, 3))
  ref = plain(4, (k, k), strides=(s, s), padding=pad)
  params = ref.init(jax.random.PRNGKey(1), x)
  g = jax.random.normal(jax.random.PRNGKey(3), jax.eval_shape(ref.apply, params, x).shape)
  run = jax.jit(_values_and_grads, static_argnums=0)
  y_ref, grads_ref = run(ref, params, x, g)
  y, grads = run(ours(4, (k, k), strides=(s, s), padding=pad, impl="subpixel"), params, x, g)
  assert y.shape == y_ref.shape
  np.testing.assert_allclose(y, y_ref, atol=2e-5)
  for a, b in zip(jax.tree.leaves(grads_ref), jax.tree.leaves(grads)):
    np.testing.assert_allclose(b, a, atol=5e-5, rtol=1e-5)


def test_kernel_gradient_of_padded_stride1_conv():
  """`_conv1` with padding larger than SAME takes the per-tap matmul kernel gradient."""
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 5, 4))
  w = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 4, 7))
  pads = [(1, 1), (1, 1)]
  plain = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), pads,  # noqa: E731
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
  g = jax.random.normal(jax.random.PRNGKey(2), plain(x, w).shape)
  ref = jax.grad(lambda x, w: jnp.sum(plain(x, w) * g), argnums=(0, 1))(x, w)
  ours = jax.grad(lambda x, w: jnp.sum(layers._conv1(x, w, pads) * g), argnums=(0, 1))(x, w)
  for a, b in zip(ref, ours):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def _generate_all(gens, v, z):
  return [g.apply(v, z, mutable=["batch_stats"])[0] for g in gens]


def test_dcgan_generator_same_parameters_and_outputs_for_both_impls():
  z = jax.random.uniform(jax.random.PRNGKey(0), (4, 100), minval=-1, maxval=1)
  for k in (4, 5):
    gens = (DCGANGenerator(16, 3, 8, k, "xla"), DCGANGenerator(16, 3, 8, k, "subpixel"))
    v = jax.jit(gens[0].init)(jax.random.PRNGKey(1), z)
    assert jax.tree.structure(v) == jax.tree.structure(jax.eval_shape(gens[1].init, jax.random.PRNGKey(1), z))
    outs = jax.jit(_generate_all, static_argnums=0)(gens, v, z)
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)


def _r1_grad(disc, v, x):
  """Gradient w.r.t. D's parameters of the R1 penalty ||grad_x D(x)||^2 (double backward)."""
  def penalty(params):
    dx = jax.grad(lambda x: jnp.sum(disc.apply({**v, "params": params}, x, mutable=["batch_stats"])[0]))(x)
    return jnp.sum(dx**2)
  return jax.grad(penalty)(v["params"])


def test_dcgan_discriminator_first_and_second_order_gradients_equal_for_both_impls():
  x = jax.random.uniform(jax.random.PRNGKey(0), (4, 16, 16, 3), minval=-1, maxval=1)
  for k in (4, 5):
    discs = (DCGANDiscriminator(16, 8, k, "xla"), DCGANDiscriminator(16, 8, k, "subpixel"))
    v = jax.jit(discs[0].init)(jax.random.PRNGKey(1), x)
    grads = [jax.jit(_r1_grad, static_argnums=0)(d, v, x) for d in discs]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
      np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_resolve_impl():
  assert layers.resolve_impl("xla") == "xla"
  assert layers.resolve_impl("subpixel") == "subpixel"
  assert layers.resolve_impl("auto") == ("subpixel" if jax.default_backend() == "cpu" else "xla")
  with pytest.raises(ConfigError, match="valid: auto, subpixel, xla"):
    layers.resolve_impl("cudnn")
