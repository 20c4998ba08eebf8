"""BigGAN (gan_jax/models/biggan.py): parameter counts equal to the official models, the layer spec,
hierarchical latents and the shared embedding, conditioning, the residual blocks against a direct
computation, cross-replica BatchNorm for free, and the trainer end to end (4 devices == 1, learning)."""
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_script

from gan_jax.cli import load_experiment
from gan_jax.config import validate
from gan_jax.errors import ConfigError
from gan_jax.models import MODELS, DataSpec, biggan, build_models, layers, model_config

CIFAR = DataSpec("image", (32, 32, 3), 10)
IMAGENET = {res: DataSpec("image", (res, res, 3), 1000) for res in (64, 128)}


def _cfg(**overrides):
  c = model_config("biggan")
  c.conditional = True
  c.update(overrides)
  return c


def _abstract_params(g, d, spec, z_dim):
  """Parameter shapes of G and D without computing anything (jax.eval_shape of init)."""
  b = 2
  y = jnp.zeros((b,), jnp.int32)
  gv = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((b, z_dim)), y, train=False))
  dv = jax.eval_shape(lambda: d.init(jax.random.PRNGKey(0), jnp.zeros((b, *spec.shape)), y, train=False))
  return gv["params"], dv["params"]


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# Official counts: BigGAN-PyTorch (ajbrock/BigGAN-PyTorch, commit 98459431) `BigGAN.Generator` and
# `BigGAN.Discriminator` instantiated with torch 2.13 (CPU, in a scratch directory outside the repo) with
# each launch script's model flags, counting sum(p.numel() for p in model.parameters()) (all parameters,
# BN gains and attention gammas included; the script's own "Param count" print skips those). The 128x128
# ch96 numbers are also printed in google/compare_gan compare_gan/architectures/resnet_biggan.py line 42
# ("Number of parameters: (D) 87,982,370 (G) 70,433,988").
OFFICIAL = {
    # scripts/launch_BigGAN_bs256x8.sh: --G_ch 96 --D_ch 96 --hier --dim_z 120 --shared_dim 128 --G_attn 64
    "imagenet128": (70_433_988, 87_982_370),
    # scripts/launch_BigGAN_ch64_bs256x8.sh: the same at G_ch = D_ch = 64 (paper table 1: 71.3M for G + D)
    "imagenet128_ch64": (31_978_628, 39_448_258),
    # G_arch[64] / D_arch[64] with the 128 model's flags and attention at 32 (no official launch script)
    "imagenet64": (70_377_348, 45_511_970),
    # scripts/launch_cifar_ema.sh: G_ch = D_ch = 64 (defaults), dim_z 128, no --G_shared/--hier, --G_attn 0
    "cifar10": (4_304_387, 4_207_361),
}


def _experiment_model(name: str):
  c = load_experiment(experiment(name))
  validate(c)
  return c


@pytest.mark.parametrize("name", ["imagenet128", "imagenet128_ch64", "imagenet64", "cifar10"])
def test_parameter_counts_equal_official(name):
  if name == "cifar10":
    c, spec = _experiment_model("biggan_cifar10").model, CIFAR
  elif name.startswith("imagenet128"):
    c, spec = _experiment_model("biggan_imagenet128").model, IMAGENET[128]
    if name.endswith("ch64"):
      c.g_width = c.d_width = 64
  else:
    c, spec = _cfg(attention=32), IMAGENET[64]
  g, d = build_models(c, spec)
  gp, dp = _abstract_params(g, d, spec, c.z_dim)
  assert (_count(gp), _count(dp)) == OFFICIAL[name]


def test_imagenet128_layer_spec():
  """Paper appendix B / BigGAN.py: z 120 = 6 x 20, shared embedding 128, ccbn input 148,
  4x4x16ch linear, blocks 16,16,8,4,2 -> 16,8,4,2,1 (x96), attention at 64x64 in G and after D's
  first block, D 1,2,4,8,16,16 with a 16ch projection embedding."""
  g, d = build_models(_cfg(), IMAGENET[128])
  gp, dp = _abstract_params(g, d, IMAGENET[128], 120)
  ch = 96
  assert gp["shared"]["embedding"].shape == (1000, 128)
  assert gp["linear"]["dense"]["kernel"].shape == (20, 4 * 4 * 16 * ch)
  g_out = [16, 8, 4, 2, 1]
  for i, (cin, cout) in enumerate(zip([16, 16, 8, 4, 2], g_out)):
    blk = gp[f"block{i}"]
    assert blk["bn1"]["gain"]["dense"]["kernel"].shape == (128 + 20, cin * ch)
    assert "bias" not in blk["bn1"]["gain"]["dense"]                  # ccbn's linear maps have no bias
    assert blk["conv1"]["conv"]["kernel"].shape == (3, 3, cin * ch, cout * ch)
    assert blk["conv_sc"]["conv"]["kernel"].shape == (1, 1, cin * ch, cout * ch)
  assert [k for k in gp if k.startswith("attention")] == ["attention3"]   # after the 64x64 block
  assert gp["attention3"]["theta"]["conv"]["kernel"].shape == (1, 1, 2 * ch, 2 * ch // 8)
  assert set(gp["out_bn"]) == {"scale", "bias"}
  assert gp["out_conv"]["conv"]["kernel"].shape == (3, 3, ch, 3)
  d_out = [1, 2, 4, 8, 16, 16]
  assert [dp[f"block{i}"]["conv1"]["conv"]["kernel"].shape[-1] for i in range(6)] == [m * ch for m in d_out]
  assert "conv_sc" not in dp["block5"]                               # 16ch -> 16ch, no pooling: identity
  assert [k for k in dp if k.startswith("attention")] == ["attention0"]
  assert dp["embed"]["embed"]["embedding"].shape == (1000, 16 * ch)
  assert dp["linear"]["dense"]["kernel"].shape == (16 * ch, 1)
  # BigGAN's orthogonal regularization skips only embeddings (regularizers.orthogonal excludes paths
  # with "embedding"): in G that is exactly the shared class embedding, as BigGAN-PyTorch's blacklist.
  paths = ["/".join(str(k.key) for k in p) for p, _ in jax.tree_util.tree_flatten_with_path(gp)[0]]
  assert [p for p in paths if "embedding" in p] == ["shared/embedding"]


@pytest.fixture(scope="module")
def toy():
  """A 32x32 BigGAN at toy width (hierarchical z, shared embedding, attention at 16), probed in one
  compiled program: G on z/label variants stacked in one eval-mode batch (each sample is computed
  independently there), D on its samples under two labelings, the inputs of every conditional BN and of
  D's head (recorded by method interceptors while tracing), and the state after eval and train calls."""
  c = _cfg(g_width=4, d_width=4, attention=16)
  g, d = build_models(c, DataSpec("image", (32, 32, 1), 10))
  z = jax.random.normal(jax.random.PRNGKey(1), (6, 120))
  y = jnp.array([0, 1, 2, 3, 4, 5], jnp.int32)
  y2 = (y + 1) % 10
  # Variants: [z, y], [z, y2], then z with chunk k (k = 0..3, 30 values each) moved by 1.
  zs = jnp.concatenate([z, z] + [z.at[:, 30 * k:30 * (k + 1)].add(1.0) for k in range(4)])
  ys = jnp.concatenate([y, y2] + [y] * 4)
  cbn_inputs, head = {}, {}

  def g_spy(next_fun, args, kwargs, context):
    if isinstance(context.module, layers.ConditionalBatchNorm) and context.method_name == "__call__":
      cbn_inputs[tuple(context.module.path)] = args[1]
    return next_fun(*args, **kwargs)

  def d_spy(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and tuple(context.module.path) in (("linear",), ("embed",)):
      head[context.module.path[0]] = (args[0], out)
    return out

  def probe(kg, kd):
    gv = g.init(kg, z, y, train=False)
    dv = d.init(kd, jnp.zeros((6, 32, 32, 1)), y, train=False)
    with nn.intercept_methods(g_spy):
      x, eval_state = g.apply(gv, zs, ys, train=False, mutable=["batch_stats"])
    with nn.intercept_methods(d_spy):
      logits = d.apply(dv, jnp.concatenate([x[:6], x[:6]]), jnp.concatenate([y, y2]), train=False)
    _, train_state = g.apply(gv, z, y, train=True, mutable=["batch_stats"])
    return dict(gv=gv, x=x, logits=logits, cbn_inputs=dict(cbn_inputs), head=dict(head),
                eval_state=eval_state["batch_stats"], train_state=train_state["batch_stats"])

  return dict(jax.jit(probe)(jax.random.PRNGKey(2), jax.random.PRNGKey(3)), z=z, y=y)


def test_shapes_ranges_state_and_conditioning(toy):
  x, logits = toy["x"], toy["logits"]
  base = x[:6]
  assert base.shape == (6, 32, 32, 1) and float(jnp.max(jnp.abs(x))) <= 1.0 and float(jnp.std(base)) > 0
  assert logits.shape == (12,) and bool(jnp.all(jnp.isfinite(logits)))
  # Labels change G's samples and D's logits.
  assert float(jnp.max(jnp.abs(x[6:12] - base))) > 1e-3
  assert float(jnp.max(jnp.abs(logits[6:] - logits[:6]))) > 1e-4
  # Every z chunk reaches the image (the first through the linear layer, the others through the cBNs).
  for k in range(4):
    assert float(jnp.max(jnp.abs(x[12 + 6 * k:18 + 6 * k] - base))) > 1e-4, k
  # State (BN statistics, spectral-norm vectors) changes only in training.
  init_state = jax.tree.leaves(toy["gv"]["batch_stats"])
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(toy["eval_state"]), init_state))
  assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(toy["train_state"]), init_state))


def test_hierarchical_z_and_shared_embedding_feed_every_conditional_bn(toy):
  """BigGAN.py forward: z splits into len(blocks) + 1 chunks; both BNs of block i read
  [shared(y), z_{i+1}] and the first chunk alone feeds the linear layer."""
  gv, z, y, seen = toy["gv"], toy["z"], toy["y"], toy["cbn_inputs"]
  emb = gv["params"]["shared"]["embedding"][y]
  assert emb.shape == (6, 128)
  assert sorted(seen) == [(f"block{i}", bn) for i in range(3) for bn in ("bn1", "bn2")]
  for (block, _), cond in seen.items():
    i = int(block[-1])
    np.testing.assert_array_equal(cond[:6], jnp.concatenate([emb, z[:, 30 * (i + 1):30 * (i + 2)]], axis=-1))
  assert gv["params"]["linear"]["dense"]["kernel"].shape == (30, 4 * 4 * 16)


def test_projection_discriminator_head(toy):
  """D = linear(sum_hw relu(h)) + <embed(y), sum_hw relu(h)> (Miyato & Koyama 2018; BigGAN.py forward)."""
  (h, lin), (_, emb) = toy["head"]["linear"], toy["head"]["embed"]
  assert h.shape == (12, 4 * 4) and bool(jnp.all(h >= 0))      # summed ReLU features of the last block
  np.testing.assert_allclose(toy["logits"], lin[:, 0] + jnp.sum(emb * h, axis=-1), rtol=1e-5, atol=1e-5)


def test_unshared_generator_conditions_bn_on_class_tables():
  """The CIFAR script's G (no --G_shared): ccbn's gains are nn.Embedding tables, gain = 1 + W[y]."""
  c = _cfg(g_width=2, d_width=2, shared=False, hier=False, attention=0, z_dim=128, init="N02")
  g, _ = build_models(c, DataSpec("image", (32, 32, 3), 10))
  gp = jax.eval_shape(lambda: g.init(jax.random.PRNGKey(0), jnp.zeros((2, 128)), jnp.zeros((2,), jnp.int32)))
  assert "shared" not in gp["params"]
  assert gp["params"]["block0"]["bn1"]["gain"]["dense"]["kernel"].shape == (10, 8)
  assert set(gp["batch_stats"]["block0"]["bn1"]) == {"bn"}         # BN statistics only: no SN on the tables
  assert gp["params"]["linear"]["dense"]["kernel"].shape == (128, 4 * 4 * 8)    # all of z


def _conv(h, p):
  """Direct 'SAME' convolution in NumPy: sum over the kernel taps of shifted inputs times the tap matrix."""
  k = p["kernel"]
  r = k.shape[0] // 2
  hp = np.pad(h, ((0, 0), (r, r), (r, r), (0, 0)))
  out = sum(hp[:, i:i + h.shape[1], j:j + h.shape[2]] @ k[i, j] for i in range(k.shape[0]) for j in range(k.shape[1]))
  return out + p["bias"]


def _up(h):
  return h[:, np.arange(2 * h.shape[1]) // 2][:, :, np.arange(2 * h.shape[2]) // 2]


def _pool(h):
  b, hh, ww, c = h.shape
  return h.reshape(b, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))


def _relu(h):
  return np.maximum(h, 0)


def _run_block(block, key, *args):
  """Initializes `block`, perturbs its parameters away from their init, applies it in training mode
  (one compiled program); returns (output, parameters) as NumPy arrays."""
  def run(key):
    v = block.init(key, *args)
    p = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.fold_in(key, a.size), a.shape), v["params"])
    out = block.apply({**v, "params": p}, *args, mutable=["batch_stats"])[0]
    return out, p
  return jax.tree.map(np.asarray, jax.jit(run)(key))


def test_gblock_equals_direct_computation():
  """layers.py GBlock: relu(ccbn1) -> up -> conv -> relu(ccbn2) -> conv, plus conv1x1(up(x))."""
  cbn = functools.partial(layers.ConditionalBatchNorm, use_sn=False, use_bias=False)
  block = biggan.GBlock(6, cbn, functools.partial(layers.SNConv, use_sn=False))
  x = np.random.default_rng(0).normal(size=(3, 4, 4, 5)).astype(np.float32)
  cond = np.random.default_rng(1).normal(size=(3, 7)).astype(np.float32)
  out, p = _run_block(block, jax.random.PRNGKey(2), x, cond, True)

  def ccbn(h, q):
    h = (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + 1e-5)
    gain = 1 + cond @ q["gain"]["dense"]["kernel"]
    return h * gain[:, None, None] + (cond @ q["bias"]["dense"]["kernel"])[:, None, None]

  h = _conv(_up(_relu(ccbn(x, p["bn1"]))), p["conv1"]["conv"])
  h = _conv(_relu(ccbn(h, p["bn2"])), p["conv2"]["conv"])
  ref = h + _conv(_up(x), p["conv_sc"]["conv"])
  assert out.shape == (3, 8, 8, 6)
  np.testing.assert_allclose(out, ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("cin,cout,preact,down", [(3, 6, False, True), (6, 6, True, False), (6, 8, True, True),
                                                  (6, 6, True, True)])
def test_dblock_equals_direct_computation(cin, cout, preact, down):
  """layers.py DBlock (wide): [relu] conv relu conv [pool]; shortcut: pool-then-conv1x1 in the first
  block, conv1x1-then-pool after it, identity when the channels and size stay."""
  block = biggan.DBlock(cout, preact, down, functools.partial(layers.SNConv, use_sn=False))
  x = np.random.default_rng(0).normal(size=(2, 8, 8, cin)).astype(np.float32)
  out, p = _run_block(block, jax.random.PRNGKey(1), x, True)
  h = _relu(x) if preact else x
  h = _conv(_relu(_conv(h, p["conv1"]["conv"])), p["conv2"]["conv"])
  h = _pool(h) if down else h
  if cin == cout and not down:
    assert "conv_sc" not in p
    sc = x
  elif preact:
    sc = _conv(x, p["conv_sc"]["conv"])
    sc = _pool(sc) if down else sc
  else:
    sc = _conv(_pool(x) if down else x, p["conv_sc"]["conv"])
  np.testing.assert_allclose(out, h + sc, atol=2e-4, rtol=1e-4)


def test_registry_entry_truncates_z():
  entry = MODELS.get("biggan")
  assert entry.truncation == "z"
  assert entry.defaults()["z_dist"] == "normal"


@pytest.mark.parametrize("spec,overrides,match", [
    (DataSpec("image", (16, 16, 1), 10), {}, "supports square resolutions"),
    (DataSpec("image", (256, 256, 3), 1000), {}, "supports square resolutions"),
    (DataSpec("vector", (2,), 0), {}, "needs image data"),
    (CIFAR, {"hier": True, "shared": False}, "needs model.shared"),
    (CIFAR, {"z_dim": 126}, "multiple of 4"),
    (CIFAR, {"init": "xavier"}, "valid choices: ortho, N02, glorot"),
    (CIFAR, {"z_dist": "uniform"}, "truncated at sampling"),
    (CIFAR, {"g_width": 1, "attention": 16}, "multiple of 8"),
])
def test_bad_configs_raise_config_error(spec, overrides, match):
  with pytest.raises(ConfigError, match=match):
    build_models(_cfg(**overrides), spec)


@pytest.mark.parametrize("hier", [True, False])
def test_unconditional_variant(hier):
  """Without labels (compare_gan's unconditional BigGAN): no class embedding or projection; with
  hierarchical z each block's BN is conditioned on its z chunk, without it the BNs are plain."""
  g, d = build_models(_cfg(conditional=False, hier=hier, shared=hier, z_dim=120 if hier else 128, g_width=4,
                           d_width=4, attention=0), DataSpec("image", (32, 32, 1), 10))
  z = jax.random.normal(jax.random.PRNGKey(0), (4, g.z_dim))
  gv = g.init(jax.random.PRNGKey(1), z, train=False)
  x, _ = g.apply(gv, z, train=True, mutable=["batch_stats"])
  assert x.shape == (4, 32, 32, 1) and float(jnp.max(jnp.abs(x))) <= 1.0
  names = "/".join(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(gv["params"])[0])
  assert "shared" not in names and ("gain" in names) == hier
  dv = d.init(jax.random.PRNGKey(2), x, train=False)
  assert d.apply(dv, x, train=False).shape == (4,) and "embed" not in dv["params"]
  if hier:   # the last z chunk moves the last block's BN
    z2 = z.at[:, -4:].add(1.0)
    x2, _ = g.apply(gv, z2, train=True, mutable=["batch_stats"])
    assert float(jnp.max(jnp.abs(x2 - x))) > 1e-4
  with pytest.raises(ValueError, match="exactly when"):
    g.apply(gv, z, jnp.zeros((4,), jnp.int32), train=False)


def test_conditional_bn_over_4_devices_equals_one_device(toy):
  """Cross-replica BatchNorm for free: G's conditional BNs on a batch sharded over 4 simulated
  devices (of this interpreter's CPU devices) normalize with the global batch's statistics, as on one
  device (and not with each device's quarter, which differs). The toy fixture's G and weights."""
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P
  g, _ = build_models(_cfg(g_width=4, d_width=4, attention=16), DataSpec("image", (32, 32, 1), 10))
  z = jax.random.normal(jax.random.PRNGKey(0), (16, 120))
  y = jnp.arange(16, dtype=jnp.int32) % 10
  v = toy["gv"]
  step = jax.jit(lambda v, z, y: g.apply(v, z, y, train=True, mutable=["batch_stats"]))
  one_x, one_s = step(v, z, y)                          # one device
  mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
  put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))  # noqa: E731
  four_x, four_s = step(put(v, P()), put(z, P("data")), put(y, P("data")))
  quarter_x, quarter_s = step(v, z[:4], y[:4])         # what a per-device BatchNorm would see
  leaves = lambda t: jax.tree.leaves(t["batch_stats"])  # noqa: E731
  bn = lambda t: t["batch_stats"]["block0"]["bn1"]["bn"]["mean"]  # noqa: E731
  assert len(four_x.sharding.device_set) == 4
  assert float(jnp.max(jnp.abs(four_x - one_x))) < 1e-5
  assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves(four_s), leaves(one_s))) < 1e-5
  assert float(jnp.max(jnp.abs(bn(one_s) - bn(quarter_s)))) > 1e-3
  assert float(jnp.max(jnp.abs(one_x[:4] - quarter_x))) > 1e-3


# The trainer end to end on the cifar10 runlocal model (BigGAN-PyTorch's 32x32 arch, class-table cBNs,
# projection D, 4 D steps per G step, hinge loss; G_ch = D_ch = 4): one run of LEARN_STEPS steps on one
# device serves both the learning check and, through its first logged steps, the 4-device comparison.
LEARN_STEPS = 100
_RUN = ["--config.log_every=1", "--config.sample_every=0"]


@pytest.fixture(scope="module")
def learning_run(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp("biggan") / "one")
  r = run_script("train.py", "--config", experiment("biggan_cifar10") + ":runlocal", "--workdir", wd, *_RUN,
                 f"--config.total_steps={LEARN_STEPS}", f"--config.eval.every={LEARN_STEPS}",
                 f"--config.ckpt_every={LEARN_STEPS}")
  assert r.returncode == 0, r.stderr[-3000:]
  return read_jsonl(os.path.join(wd, "metrics.jsonl"))


@pytest.mark.slow
def test_trainer_on_4_devices_equals_1(learning_run, tmp_path):
  """The same first 3 steps with the batch sharded over 4 simulated devices (evaluation uses its own
  key, so the 1-device run's step-0 digit_fd does not shift its training stream)."""
  wd = str(tmp_path / "four")
  r = run_script("train.py", "--config", experiment("biggan_cifar10") + ":runlocal", "--workdir", wd, *_RUN,
                 "--config.total_steps=3", "--config.eval.every=0", devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "4 devices" in r.stderr
  four = read_jsonl(os.path.join(wd, "metrics.jsonl"))
  one = [row for row in learning_run if "d_loss" in row][:3]
  assert [row["step"] for row in four] == [row["step"] for row in one] == [1, 2, 3]
  for a, b in zip(four, one):
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
      np.testing.assert_allclose(a[key], b[key], atol=1e-4, rtol=1e-4, err_msg=key)


@pytest.mark.slow
def test_runlocal_learns_digits(learning_run):
  """digit_fd (Fréchet distance in the digit classifier's features) at LEARN_STEPS vs step 0."""
  rows = [row for row in learning_run if "d_loss" in row]
  assert len(rows) == LEARN_STEPS
  assert all(np.isfinite(row["d_loss"]) and np.isfinite(row["g_loss"]) for row in rows)
  fd = {row["step"]: row["digit_fd"] for row in learning_run if "digit_fd" in row}
  assert sorted(fd) == [0, LEARN_STEPS]
  assert fd[LEARN_STEPS] < 0.75 * fd[0], fd
