"""TransGAN (gan_jax/models/transgan.py): parameter counts of the official CIFAR-10 and STL-10
networks, every layer and both networks against direct NumPy computations, grid self-attention
against full attention restricted to windows, conditioning, and the trainer end to end.

Reference parameter counts: VITA-Group/TransGAN @ 6b85440, `models_search/ViT_custom_rp.py`
`Generator` and `models_search/ViT_custom_scale2_rp_noise.py` `Discriminator`, built from the
arguments of cfg.parse_args() with the model flags of the launch scripts: exps/cifar_train.py
(--bottom_width 8 --img_size 32 --gf_dim 1024 --g_depth 5,4,2 --latent_dim 256 --df_dim 384
--d_depth 3 --patch_size 2, norms at their default ln) and exps/stl_train.py (--bottom_width 12
--img_size 48 --g_depth 7,5,3 --latent_dim 512 --g_norm pn --d_norm pn, otherwise as CIFAR-10);
instantiated with torch 2.13 (CPU) in a scratch directory outside this repository and counted as
sum(p.numel() for p in module.parameters()) (the relative-position index is a buffer, not counted).
"""
import concurrent.futures
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_script
from scipy.special import erf

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models import transgan as tg


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _models(res=32, channels=3, num_classes=0, **model):
  c = model_config("transgan")
  c.update(conditional=num_classes > 0, **model)
  return c, build_models(c, DataSpec("image", (res, res, channels), num_classes))


KEYS = {"params": jax.random.PRNGKey(0), "noise": jax.random.PRNGKey(1)}


def _shapes(module, *args):
  return jax.eval_shape(lambda: module.init(KEYS, *args, train=False))


# --- parameter counts ------------------------------------------------------------------------

OFFICIAL = {
    # name: (resolution, model keys, G params, D params), official counts (module docstring)
    "cifar10": (32, {}, 83_312_495, 10_210_400),
    "stl10": (48, dict(bottom_width=12, g_depths="7,5,3", z_dim=512, g_norm="pn", d_norm="pn"),
              168_466_623, 10_341_536),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_parameter_counts_equal_the_official_networks(name):
  res, kw, g_count, d_count = OFFICIAL[name]
  c, (g, d) = _models(res, **kw)
  gp = _shapes(g, jnp.zeros((2, c.z_dim)))["params"]
  dp = _shapes(d, jnp.zeros((2, res, res, 3)))["params"]
  assert _count(gp) == g_count
  assert _count(dp) == d_count
  s = c.bottom_width
  assert gp["l1"]["kernel"].shape == (c.z_dim, s * s * 1024)
  assert [gp[f"pos_embed{i}"].shape for i in range(3)] == [(s * s, 1024), (4 * s * s, 256), (16 * s * s, 64)]
  # Full attention at every stage: relative tables of the whole token map (8, 16, 32 for CIFAR-10).
  assert gp["stage2_block0"]["attn"]["relative_position_bias"].shape == ((2 * 4 * s - 1) ** 2, 4)
  assert gp["stage1_block0"]["fc1"]["kernel"].shape == (256, 1024) and "bias" not in gp["stage0_block0"]["attn"]["qkv"]
  assert gp["to_rgb"]["kernel"].shape == (64, 3)
  assert ("norm1" in gp["stage0_block0"]) == (name == "cifar10")    # pixel norm has no parameters
  assert dp["patch_embed1"]["kernel"].shape == (2, 2, 3, 288) and dp["patch_embed2"]["kernel"].shape == (4, 4, 3, 96)
  assert dp["pos_embed1"].shape == ((res // 2) ** 2, 288) and dp["pos_embed2"].shape == ((res // 4) ** 2, 384)
  assert dp["stage0_block0"]["attn"]["noise_strength"].shape == ()
  assert "relative_position_bias" not in dp["last_block"]["attn"] and dp["cls_token"].shape == (384,)


# --- layers against direct computations -------------------------------------------------------

def _np_norm(x, p, kind):
  if kind == "ln":
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * p["ln"]["scale"] + p["ln"]["bias"]
  if kind == "pn":
    return x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-8)
  return x


def _np_attention(x, p, heads, side=None, window=None, noise=None):
  """Direct multi-head attention over tokens x [B, N, C]: every pair (i, j) scored one by one;
  with `side`, tokens are the row-major cells of a side x side map, (i, j) gets the table entry of
  its offset, and only pairs inside the same `window` x `window` cell of the map attend."""
  b, n, c = x.shape
  hd = c // heads
  if noise is not None:
    x = x + noise * p["noise_strength"]
  qkv = (x @ p["qkv"]["kernel"]).reshape(b, n, 3, heads, hd)
  q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
  out = np.zeros((b, n, heads, hd))
  for i in range(n):
    scores, allowed = np.zeros((b, heads, n)), np.ones(n, bool)
    for j in range(n):
      scores[:, :, j] = np.einsum("bhd,bhd->bh", q[:, i], k[:, j]) / np.sqrt(hd)
      if side is not None:
        (yi, xi), (yj, xj) = divmod(i, side), divmod(j, side)
        w = window or side
        allowed[j] = (yi // w, xi // w) == (yj // w, xj // w)
        if allowed[j]:
          scores[:, :, j] += p["relative_position_bias"][(yi - yj + w - 1) * (2 * w - 1) + (xi - xj + w - 1)]
    scores = np.where(allowed, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out[:, i] = np.einsum("bhj,bjhd->bhd", weights, v)
  return out.reshape(b, n, c) @ p["proj"]["kernel"] + p["proj"]["bias"]


def _np_block(x, p, heads, norm="ln", act="gelu", side=None, window=None, noise=None):
  gain = np.sqrt(0.5) if norm == "none" and noise is not None else 1.0
  x = (x + _np_attention(_np_norm(x, p.get("norm1"), norm), p["attn"], heads, side, window, noise)) * gain
  h = _np_norm(x, p.get("norm2"), norm) @ p["fc1"]["kernel"] + p["fc1"]["bias"]
  h = 0.5 * h * (1 + erf(h / np.sqrt(2))) if act == "gelu" else np.where(h > 0, h, 0.2 * h)
  return (x + h @ p["fc2"]["kernel"] + p["fc2"]["bias"]) * gain


def _perturbed(variables, seed=0, scale=0.3):
  """Variables with every leaf moved by noise, so no initial zero or one hides a mistake."""
  leaves, tree = jax.tree.flatten(variables)
  rs = np.random.RandomState(seed)
  return jax.tree.unflatten(tree, [np.asarray(a) + scale * np.asarray(rs.randn(*a.shape), np.float32) for a in leaves])


def _random_variables(module, *args, seed=0, scale=0.3, **kwargs):
  """Variables of the module's shapes with N(0, scale²) entries around the init's constants (norm
  scales 1, else 0): no compile of the initializers, and no zero or one hides a mistake."""
  shapes = jax.eval_shape(lambda: module.init(KEYS, *args, **kwargs))
  ones = jax.tree_util.tree_map_with_path(lambda path, s: float(str(path[-1].key) == "scale"), shapes)
  return _perturbed(jax.tree.map(lambda s, one: np.full(s.shape, one, np.float32), shapes, ones), seed, scale)


def _np_tree(variables):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])


def test_pixel_shuffle_is_pytorchs_channel_order():
  x = np.random.RandomState(0).randn(2, 3, 5, 8).astype(np.float32)
  y = np.asarray(tg.pixel_shuffle(jnp.asarray(x)))
  assert y.shape == (2, 6, 10, 2)
  for h, w, c, i, j in np.ndindex(3, 5, 2, 2, 2):     # nn.PixelShuffle(2): out[c, 2h+i, 2w+j] = in[4c + 2i + j, h, w]
    np.testing.assert_array_equal(y[:, 2 * h + i, 2 * w + j, c], x[:, h, w, 4 * c + 2 * i + j])


def test_window_partition_round_trip_and_order():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  win = np.asarray(tg.window_partition(jnp.asarray(x), 2))
  assert win.shape == (2 * 2 * 3, 4, 3)
  np.testing.assert_array_equal(win[4], x[0, 2:4, 2:4].reshape(4, 3))     # image 0, window row 1, column 1
  np.testing.assert_array_equal(tg.window_reverse(jnp.asarray(win), 2, 4, 6), x)


@pytest.mark.parametrize("w", [1, 3, 4])
def test_relative_position_bias_equals_the_official_index_gather(w):
  """The official table lookup: relative_coords = coords_i - coords_j, + (w - 1), row offset times
  (2w - 1), summed (Attention.__init__ / forward)."""
  table = np.random.RandomState(w).randn((2 * w - 1) ** 2, 3).astype(np.float32)
  coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
  rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
  index = rel[..., 0] * (2 * w - 1) + rel[..., 1]
  np.testing.assert_array_equal(tg.relative_position_index(w), index)
  np.testing.assert_allclose(tg.relative_position_bias(jnp.asarray(table), w), table[index].transpose(2, 0, 1),
                             rtol=1e-6, atol=1e-6)


def _block_apply(block, x, seed=0):
  v = _random_variables(block, jnp.asarray(x), seed=seed)
  return _np_tree(v), np.asarray(jax.jit(lambda v, x: block.apply(v, x, rngs={"noise": KEYS["noise"]}))(v, x))


def test_grid_self_attention_is_full_attention_restricted_to_windows(norm="ln", act="gelu"):
  """A block on an 8x8 token map with 4x4 grid attention equals the direct computation in which
  token pairs of different windows do not attend (and the table has the window's offsets); with
  the window equal to the map it is full attention with the map's table."""
  x = np.random.RandomState(1).randn(2, 64, 8).astype(np.float32)
  grid = tg.Block(heads=2, window=4, grid=(8, 8), norm=norm, act=act)
  p, out = _block_apply(grid, x)
  assert p["attn"]["relative_position_bias"].shape == (49, 2)
  np.testing.assert_allclose(out, _np_block(x, p, 2, norm, act, side=8, window=4), rtol=2e-4, atol=2e-4)
  full = tg.Block(heads=2, window=8, grid=(8, 8), norm=norm, act=act)
  pf, out_full = _block_apply(full, x)
  np.testing.assert_allclose(out_full, _np_block(x, pf, 2, norm, act, side=8), rtol=2e-4, atol=2e-4)
  # The restriction matters: the same parameters attending across windows (no relative bias) give
  # other outputs than the grid block, and the direct computation without the mask disagrees with it.
  unrestricted = _np_block(x, p, 2, norm, act, side=None)
  assert np.max(np.abs(out - unrestricted)) > 1e-2


def test_discriminator_attention_noise_is_per_token_and_learned():
  """D's attention input is x + n · s with n ~ N(0, 1) per token ([B, N, 1]) drawn from the "noise"
  stream at every call and s a learned scalar (init 0, so D starts deterministic)."""
  x = np.random.RandomState(2).randn(3, 16, 8).astype(np.float32)
  att = tg.Attention(heads=2, window=4, noise=True)
  v = jax.jit(lambda: att.init(KEYS, jnp.asarray(x)))()
  assert float(v["params"]["noise_strength"]) == 0.0          # the official init: torch.zeros([])
  run = jax.jit(lambda v, key: att.apply(v, x, rngs={"noise": key}, mutable=["intermediates"]))
  np.testing.assert_allclose(run(v, jax.random.PRNGKey(3))[0], run(v, jax.random.PRNGKey(4))[0], atol=1e-6)
  v = _perturbed(v, 1)
  (out, inter), (other, _) = run(v, jax.random.PRNGKey(5)), run(v, jax.random.PRNGKey(6))
  noise = np.asarray(inter["intermediates"]["input_noise"][0])
  assert noise.shape == (3, 16, 1) and 0.5 < noise.std() < 1.5
  np.testing.assert_allclose(out, _np_attention(x, _np_tree(v), 2, side=4, noise=noise), rtol=2e-4, atol=2e-4)
  assert np.max(np.abs(np.asarray(out) - np.asarray(other))) > 1e-3


def _np_generator(z, p, depths, heads, norm="ln", tanh=True, y=None):
  """The generator computed directly: linear, + positional embedding, blocks; per further stage the
  pixel shuffle written out element by element, + embedding, blocks; 1x1 to RGB."""
  if y is not None:
    z = z + p["class_embed"]["embedding"][y]
  b = z.shape[0]
  c = p["pos_embed0"].shape[1]
  s = int(round(np.sqrt(p["pos_embed0"].shape[0])))
  x = (z @ p["l1"]["kernel"] + p["l1"]["bias"]).reshape(b, s * s, c) + p["pos_embed0"]
  for stage, depth in enumerate(depths):
    if stage:
      grid = x.reshape(b, s, s, c)
      up = np.zeros((b, 2 * s, 2 * s, c // 4))
      for h, w, ch, i, j in np.ndindex(s, s, c // 4, 2, 2):
        up[:, 2 * h + i, 2 * w + j, ch] = grid[:, h, w, 4 * ch + 2 * i + j]
      s, c = 2 * s, c // 4
      x = up.reshape(b, s * s, c) + p[f"pos_embed{stage}"]
    for i in range(depth):
      x = _np_block(x, p[f"stage{stage}_block{i}"], heads, norm, side=s)
  out = (x @ p["to_rgb"]["kernel"] + p["to_rgb"]["bias"]).reshape(b, s, s, -1)
  return np.tanh(out) if tanh else out


@pytest.mark.parametrize("norm,tanh,classes", [("ln", True, 0), ("pn", False, 5)])
def test_generator_equals_a_direct_computation(norm, tanh, classes):
  c, (g, _) = _models(8, 3, classes, z_dim=6, bottom_width=2, g_embed_dim=32, g_depths="1,1,1", g_heads=2,
                      g_norm=norm, g_tanh=tanh)
  z = np.random.RandomState(3).randn(2, 6).astype(np.float32)
  y = np.array([1, 4]) if classes else None
  args = (jnp.asarray(z),) + ((jnp.asarray(y),) if classes else ())
  v = _random_variables(g, *args, seed=2, scale=0.1, train=False)
  out = np.asarray(jax.jit(lambda v: g.apply(v, *args, train=False))(v))
  assert out.shape == (2, 8, 8, 3)
  np.testing.assert_allclose(out, _np_generator(z, _np_tree(v), (1, 1, 1), 2, norm, tanh, y), rtol=2e-4, atol=2e-4)
  if tanh:
    assert np.abs(out).max() <= 1.0


def _np_discriminator(x, p, depth, heads, patch, norm="ln", act="gelu", noise=None, y=None):
  """The multi-scale D computed directly: patch embeddings as sums over each patch's pixels, the
  2x2 average pool written out, the class token, blocks, the head (noise: the layers' draws)."""
  b, res, _, ch = x.shape
  noise = noise or {}

  def patches(q, kernel, bias):
    s = res // q
    out = np.zeros((b, s, s, kernel.shape[-1]))
    for i, j in np.ndindex(s, s):
      out[:, i, j] = np.einsum("bhwc,hwco->bo", x[:, i * q:(i + 1) * q, j * q:(j + 1) * q], kernel) + bias
    return out.reshape(b, s * s, -1)

  s1, s2 = res // patch, res // (2 * patch)
  h = patches(patch, p["patch_embed1"]["kernel"], p["patch_embed1"]["bias"]) + p["pos_embed1"]
  for i in range(depth):
    h = _np_block(h, p[f"stage0_block{i}"], heads, norm, act, side=s1, noise=noise[f"stage0_block{i}"])
  grid = h.reshape(b, s1, s1, -1)
  pooled = np.zeros((b, s2, s2, grid.shape[-1]))
  for i, j in np.ndindex(s2, s2):
    pooled[:, i, j] = grid[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2))
  pooled = pooled.reshape(b, s2 * s2, -1)
  coarse = patches(2 * patch, p["patch_embed2"]["kernel"], p["patch_embed2"]["bias"])
  h = np.concatenate([pooled, coarse], -1) + p["pos_embed2"]
  for i in range(depth):
    h = _np_block(h, p[f"stage1_block{i}"], heads, norm, act, side=s2, noise=noise[f"stage1_block{i}"])
  h = np.concatenate([np.broadcast_to(p["cls_token"], (b, 1, h.shape[-1])), h], 1)
  h = _np_norm(_np_block(h, p["last_block"], heads, norm, act, noise=noise["last_block"]), p.get("norm"), norm)[:, 0]
  out = (h @ p["head"]["kernel"] + p["head"]["bias"])[:, 0]
  if y is not None:
    out = out + np.sum(p["class_embed"]["embedding"][y] * h, -1)
  return out


@pytest.mark.parametrize("norm,act,classes", [("ln", "gelu", 0), ("none", "leakyrelu", 4)])
def test_discriminator_equals_a_direct_computation(norm, act, classes):
  _, (_, d) = _models(8, 1, classes, bottom_width=2, d_embed_dim=16, d_depth=1, d_heads=2, patch_size=2, d_norm=norm,
                      d_act=act)
  x = np.random.RandomState(4).randn(3, 8, 8, 1).astype(np.float32)
  y = np.array([0, 3, 1]) if classes else None
  args = (jnp.asarray(x),) + ((jnp.asarray(y),) if classes else ())
  v = _random_variables(d, *args, seed=3, scale=0.1, train=False)
  out, inter = jax.jit(lambda v: d.apply(v, *args, rngs={"noise": jax.random.PRNGKey(7)},
                                         mutable=["intermediates"]))(v)
  assert out.shape == (3,)
  noise = {k: np.asarray(m["attn"]["input_noise"][0]) for k, m in inter["intermediates"].items()}
  assert set(noise) == {"stage0_block0", "stage1_block0", "last_block"}
  ref = _np_discriminator(x, _np_tree(v), 1, 2, 2, norm, act, noise, y)
  np.testing.assert_allclose(out, ref, rtol=2e-4, atol=2e-4)


def test_unconditional_models_have_no_class_parameters_and_conditioning_is_required():
  c, (g, d) = _models(8, 1, 0, bottom_width=2, g_embed_dim=32, g_heads=2, d_embed_dim=16, d_heads=2)
  gp = _shapes(g, jnp.zeros((2, c.z_dim)))["params"]
  dp = _shapes(d, jnp.zeros((2, 8, 8, 1)))["params"]
  assert "class_embed" not in gp and "class_embed" not in dp
  c, (g, d) = _models(8, 1, 10, bottom_width=2, g_embed_dim=32, g_heads=2, d_embed_dim=16, d_heads=2)
  assert _shapes(g, jnp.zeros((2, c.z_dim)), jnp.zeros((2,), jnp.int32))["params"]["class_embed"]["embedding"].shape \
      == (10, c.z_dim)
  with pytest.raises(ValueError, match="needs labels"):
    _shapes(d, jnp.zeros((2, 8, 8, 1)))


def test_bad_configs_raise_config_errors():
  with pytest.raises(ConfigError, match="makes 32x32 images, the data is 16x16"):
    _models(16)
  with pytest.raises(ConfigError, match="valid choices: ln, pn, none"):
    _models(32, g_norm="bn")
  with pytest.raises(ConfigError, match="valid choices: gelu, leakyrelu"):
    _models(32, d_act="relu")
  with pytest.raises(ConfigError, match="comma-separated integers"):
    _models(32, g_depths="5;4;2")
  with pytest.raises(ConfigError, match="g_window_size=12 does not tile the 16x16 tokens"):
    _models(32, g_window_size=12)
  with pytest.raises(ConfigError, match="by g_heads=3"):
    _models(32, g_heads=3)
  with pytest.raises(ConfigError, match="into 6x6 patches"):
    _models(32, patch_size=3)
  with pytest.raises(ConfigError, match="d_heads=5"):
    _models(32, d_heads=5)
  with pytest.raises(ConfigError, match="needs a dataset with labels"):
    c = model_config("transgan")
    c.conditional = True
    build_models(c, DataSpec("image", (32, 32, 3), 0))


def test_experiment_configs(load_config):
  c = load_config("experiments/transgan_cifar10.py")
  assert (c.data.name, c.data.resolution, c.batch_size, c.n_critic, c.total_steps) == ("cifar10", 32, 64, 4, 500_000)
  assert (c.loss.name, c.reg.wgan_gp, c.reg.drift, c.reg.drift_form) == ("wasserstein", 10.0, 1e-3, "square_mean")
  assert (c.optim.g.lr, c.optim.d.lr, c.optim.g.b1, c.optim.d.b2) == (1e-4, 1e-4, 0.0, 0.99)
  assert c.optim.g.clip_norm == c.optim.d.clip_norm == 5.0
  assert (c.ema.halflife_kimg, c.ema.rampup) == (500.0, 0.4)
  assert (c.augment.name, c.augment.pipeline) == ("diffaugment", "translation,cutout,color")
  assert (c.model.g_depths, c.model.g_embed_dim, c.model.d_embed_dim, c.model.z_dim) == ("5,4,2", 1024, 384, 256)
  local = load_config("experiments/transgan_cifar10.py:runlocal")
  assert (local.data.name, local.data.resolution, local.model.g_window_size) == ("digits", 16, 8)


def test_ema_rampup_reproduces_the_official_per_g_step_decay():
  """functions.py: after g G steps (4g D iterations of 64 images), beta = 0.5^(64 / min(500k, 0.1 · 64 · 4g));
  the trainer's 0.5^(B / min(halflife, g · B · rampup)) with B = 64 and rampup 0.4 is the same."""
  g = np.array([1, 100, 10_000, 100_000, 500_000])
  official = 0.5 ** (64 / np.minimum(500_000, 0.1 * 64 * 4 * g))
  ours = 0.5 ** (64 / np.minimum(500.0 * 1000, g * 64 * 0.4))
  np.testing.assert_allclose(ours, official, rtol=1e-12)


# --- the trainer end to end --------------------------------------------------------------------

@pytest.mark.slow
def test_runlocal_four_devices_equal_one(tmp_path):
  """The runlocal config (R1, DiffAugment, EMA, grid attention in G, D's input noise) through
  scripts/train.py: its first 2 steps give the same losses on 4 simulated devices as on 1. Both
  runs go in parallel (compiles are mostly single-threaded)."""
  spec = experiment("transgan_cifar10") + ":runlocal"
  common = ["--config.log_every=1", "--config.sample_every=0", "--config.ckpt_every=2", "--config.total_steps=2",
            "--config.eval.every=0"]
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {n: pool.submit(run_script, "train.py", "--config", spec, *common, f"--workdir={tmp_path / str(n)}",
                              devices=n, timeout=1800) for n in (1, 4)}
    results = {n: f.result() for n, f in futures.items()}
  for r in results.values():
    assert r.returncode == 0, r.stderr[-3000:]
  assert "4 devices" in results[4].stderr
  keys = ("d_loss", "g_loss", "d_real", "d_fake", "r1")
  rows = {n: np.array([[r[k] for k in keys] for r in read_jsonl(os.path.join(tmp_path / str(n), "metrics.jsonl"))
                       if "d_loss" in r]) for n in (1, 4)}
  assert rows[1].shape == (2, 5) and np.all(np.isfinite(rows[1])) and np.all(rows[1][:, -1] > 0)
  np.testing.assert_allclose(rows[4], rows[1], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_runlocal_learns_digits(tmp_path):
  """The runlocal recipe (non-saturating + R1) through scripts/train.py for 250 of its 1000 steps:
  digit_fd well below the untrained generator's (measured 1794 -> 613 at step 250, 269 at 1000) and
  the sample grid written."""
  r = run_script("train.py", "--config", experiment("transgan_cifar10") + ":runlocal", "--config.total_steps=250",
                 f"--workdir={tmp_path}", timeout=1800)
  assert r.returncode == 0, r.stderr[-3000:]
  fd = {x["step"]: x["digit_fd"] for x in read_jsonl(os.path.join(tmp_path, "metrics.jsonl")) if "digit_fd" in x}
  assert sorted(fd) == [0, 250] and fd[250] < 0.5 * fd[0], fd
  assert os.path.exists(os.path.join(tmp_path, "samples", "step_00000250.png"))
