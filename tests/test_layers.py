"""The sub-pixel forms equal the plain Flax layers: values, gradients (first and second order), parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.errors import ConfigError
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


@pytest.mark.parametrize("swap_rows", [0, 10**9])
def test_kernel_gradient_of_padded_stride1_conv(swap_rows, monkeypatch):
  """`_conv1` with padding larger than SAME takes the per-tap matmul kernel gradient, in both operand
  orders of its tap products (g^T x from `_TAP_SWAP_ROWS` rows on, x^T g below)."""
  monkeypatch.setattr(layers, "_TAP_SWAP_ROWS", swap_rows)
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


# Spectral norm, self-attention, conditional BatchNorm.

def test_spectral_norm_sigma_converges_to_the_largest_singular_value():
  """Power iteration across training calls: sigma -> the top singular value of the kernel seen as a
  [k·k·C_in, C_out] matrix (numpy SVD); the normalized kernel then has spectral norm 1."""
  from gan_jax.models.layers import SNConv
  x = jnp.ones((1, 6, 6, 5))
  m = SNConv(7, (3, 3), kernel_init=jax.nn.initializers.normal(1.0))
  v = jax.jit(m.init, static_argnames="train")(jax.random.PRNGKey(3), x, train=False)
  apply = jax.jit(m.apply, static_argnames=("train", "mutable"))
  kernel = np.asarray(v["params"]["conv"]["kernel"]).reshape(-1, 7)
  # The stored weights are the initializer's draw (std 1 here), not W / sigma as flax's own
  # SpectralNorm would store: the reference implementations keep the raw W.
  assert 0.8 < kernel.std() < 1.2
  top = np.linalg.svd(kernel, compute_uv=False)[0]
  stats = v["batch_stats"]
  sigmas = []
  for _ in range(30):
    _, upd = apply({"params": v["params"], "batch_stats": stats}, x, train=True, mutable=("batch_stats",))
    stats = upd["batch_stats"]
    sigmas.append(float(stats["SpectralNorm_0"]["conv/kernel/sigma"]))
  assert abs(sigmas[0] - top) > 1e-3 * top        # one iteration from a random u is not there yet
  np.testing.assert_allclose(sigmas[-1], top, rtol=1e-5)
  # Outside training the stored u is not written.
  _, upd = apply({"params": v["params"], "batch_stats": stats}, x, train=False, mutable=("batch_stats",))
  np.testing.assert_array_equal(upd["batch_stats"]["SpectralNorm_0"]["conv/kernel/u"],
                                stats["SpectralNorm_0"]["conv/kernel/u"])
  # The layer's output is the convolution with W / sigma.
  out = apply({"params": v["params"], "batch_stats": stats}, x, train=False)

  @jax.jit
  def conv(x, p):
    return jax.lax.conv_general_dilated(x, p["kernel"] / top, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]

  ref = conv(x, v["params"]["conv"])
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_spectral_norm_of_an_embedding_table():
  from gan_jax.models.layers import SNEmbed
  m = SNEmbed(10, 6)
  y = jnp.array([0, 4, 9])
  v = jax.jit(m.init, static_argnames="train")(jax.random.PRNGKey(0), y, train=False)
  table = np.asarray(v["params"]["embed"]["embedding"])
  stats = v["batch_stats"]
  apply = jax.jit(m.apply, static_argnames=("train", "mutable"))
  for _ in range(40):
    out, upd = apply({"params": v["params"], "batch_stats": stats}, y, train=True, mutable=("batch_stats",))
    stats = upd["batch_stats"]
  top = np.linalg.svd(table, compute_uv=False)[0]
  np.testing.assert_allclose(out, table[[0, 4, 9]] / top, rtol=1e-4)


def test_self_attention_against_a_direct_computation():
  from gan_jax.models.layers import SelfAttention
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 6, 16))
  m = SelfAttention(use_sn=False)
  v = jax.jit(m.init, static_argnames="train")(jax.random.PRNGKey(1), x, train=False)
  apply = jax.jit(m.apply, static_argnames="train")
  assert float(v["params"]["gamma"]) == 0.0
  np.testing.assert_array_equal(apply(v, x, train=False), x)   # gamma = 0 at init: the identity
  p = jax.tree.map(np.asarray, v["params"])
  p["gamma"] = np.float32(0.7)
  w = {k: p[k]["conv"]["kernel"][0, 0].astype(np.float64) for k in ("theta", "phi", "g", "o")}
  xn = np.asarray(x, np.float64)

  def pool(t):  # 2x2 max-pool of [B, H, W, C]
    b, h, ww, c = t.shape
    return t.reshape(b, h // 2, 2, ww // 2, 2, c).max(axis=(2, 4))

  out = np.empty_like(xn)
  for i in range(2):
    theta = (xn[i] @ w["theta"]).reshape(-1, 2)
    phi = pool((xn[i] @ w["phi"])[None])[0].reshape(-1, 2)
    g = pool((xn[i] @ w["g"])[None])[0].reshape(-1, 8)
    logits = theta @ phi.T
    beta = np.exp(logits - logits.max(1, keepdims=True))
    beta /= beta.sum(1, keepdims=True)
    out[i] = xn[i] + 0.7 * ((beta @ g) @ w["o"]).reshape(4, 6, 16)
  np.testing.assert_allclose(apply({"params": p}, x, train=False), out, rtol=1e-4, atol=1e-5)


def test_conditional_batch_norm_by_hand():
  from gan_jax.models.layers import ConditionalBatchNorm
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 3, 5)) * 3 + 1
  y = jnp.array([0, 2, 2, 1])
  m = ConditionalBatchNorm(num_classes=3)
  v = m.init(jax.random.PRNGKey(1), x, y, train=False)
  p = jax.tree.map(np.asarray, v["params"])
  p["gain"]["embedding"] = np.random.RandomState(0).randn(3, 5).astype(np.float32)
  p["bias"]["embedding"] = np.random.RandomState(1).randn(3, 5).astype(np.float32)
  out, upd = m.apply({"params": p, "batch_stats": v["batch_stats"]}, x, y, train=True, mutable=["batch_stats"])
  xn = np.asarray(x, np.float64)
  mean, var = xn.mean((0, 1, 2)), xn.var((0, 1, 2))
  ref = (xn - mean) / np.sqrt(var + 1e-5) * p["gain"]["embedding"][y][:, None, None] + p["bias"]["embedding"][y][
      :, None, None]
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(upd["batch_stats"]["bn"]["mean"], 0.1 * mean, rtol=1e-4)
  # Vector mode (BigGAN): gain = 1 + linear(cond), bias = linear(cond); at zero weights the plain BN.
  mv = ConditionalBatchNorm(use_sn=False)
  cond = jax.random.normal(jax.random.PRNGKey(2), (4, 7))
  vv = mv.init(jax.random.PRNGKey(1), x, cond, train=False)
  pv = jax.tree.map(np.asarray, vv["params"])
  out, _ = mv.apply({"params": pv, "batch_stats": vv["batch_stats"]}, x, cond, train=True, mutable=["batch_stats"])
  c = np.asarray(cond, np.float64)
  gain = 1 + c @ pv["gain"]["dense"]["kernel"] + pv["gain"]["dense"]["bias"]
  bias = c @ pv["bias"]["dense"]["kernel"] + pv["bias"]["dense"]["bias"]
  ref = (xn - mean) / np.sqrt(var + 1e-5) * gain[:, None, None] + bias[:, None, None]
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
