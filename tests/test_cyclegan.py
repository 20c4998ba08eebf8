"""CycleGAN (Zhu et al. 2017): the networks against the official code's, the losses, the history
pool and the schedule by hand, the two-domain data, and the trainer end to end (4 devices equal 1,
resume equals uninterrupted, the runlocal experiment learns the digits_pair translation,
scripts/translate.py)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_main
from PIL import Image

from gan_jax import cli
from gan_jax.config import base_config
from gan_jax.data import build_dataset
from gan_jax.data.pipeline import train_dataset
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models.cyclegan import UpsampleConv, instance_norm, reflect_pad
from gan_jax.train.kinds import translation as cg


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _abstract_params(module, shape):
  x = jnp.zeros((1, *shape))
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x))
  out = jax.eval_shape(lambda v: module.apply(v, x), variables)
  return variables, out.shape


# Parameter counts of the official PyTorch networks: junyanz/pytorch-CycleGAN-and-pix2pix,
# models/networks.py (commit 78913853ab4a4f5eba717af8433809300c99f0bb, whose ResnetGenerator and
# NLayerDiscriminator are unchanged in later versions), instantiated with torch 2.13 CPU as
# define_G(C, C, 64, 'resnet_9blocks' | 'resnet_6blocks', norm='instance') and
# define_D(C, 64, 'basic', norm='instance'), counted as sum(p.numel() for p in net.parameters()).
OFFICIAL_COUNTS = {("resnet_9blocks", 3): 11_378_179, ("resnet_6blocks", 3): 7_837_699,
                   ("resnet_9blocks", 1): 11_365_633, ("basic", 3): 2_764_737, ("basic", 1): 2_762_689}


@pytest.mark.parametrize("resolution,channels,blocks", [(256, 3, 9), (128, 3, 6), (256, 1, 9)])
def test_networks_have_the_official_shapes_and_parameter_counts(resolution, channels, blocks):
  g, d = build_models(model_config("cyclegan"), DataSpec("image", (resolution, resolution, channels)))
  assert g.num_blocks == blocks     # 9 residual blocks at 256x256, 6 at 128x128 (paper, appendix 7.2)
  gv, g_out = _abstract_params(g, (resolution, resolution, channels))
  dv, d_out = _abstract_params(d, (resolution, resolution, channels))
  assert g_out == (1, resolution, resolution, channels)
  side = {256: 30, 128: 14}[resolution]   # 70x70 receptive fields: 30x30 patches at 256 (official)
  assert d_out == (1, side, side)
  assert _count(gv) == OFFICIAL_COUNTS[(f"resnet_{blocks}blocks", channels)]
  assert _count(dv) == OFFICIAL_COUNTS[("basic", channels)]
  p = gv["params"]
  # c7s1-64, d128, d256, R256, u128, u64, c7s1-C (kernels HWIO, every conv with a bias).
  assert [p[n]["kernel"].shape for n in ("c7s1", "down_0", "down_1")] == [
      (7, 7, channels, 64), (3, 3, 64, 128), (3, 3, 128, 256)]
  assert p["block_0"]["conv_1"]["kernel"].shape == (3, 3, 256, 256) and f"block_{blocks - 1}" in p
  assert [p[n]["conv"]["kernel"].shape for n in ("up_0", "up_1")] == [(3, 3, 256, 128), (3, 3, 128, 64)]
  assert p["out"]["kernel"].shape == (7, 7, 64, channels) and p["out"]["bias"].shape == (channels,)
  # C64-C128-C256-C512 and the 1-channel patch output.
  assert [dv["params"][f"conv_{i}"]["kernel"].shape[-1] for i in range(4)] == [64, 128, 256, 512]
  assert dv["params"]["logits"]["kernel"].shape == (4, 4, 512, 1)


def test_too_small_images_for_the_patchgan_are_refused():
  with pytest.raises(ConfigError, match="leave no patch at 16x16"):
    build_models(model_config("cyclegan"), DataSpec("image", (16, 16, 3)))


def test_instance_norm_and_reflection_padding_against_numpy():
  x = np.random.default_rng(0).normal(2.0, 3.0, (2, 5, 6, 3)).astype(np.float32)
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)   # biased, as InstanceNorm2d
  np.testing.assert_allclose(np.asarray(instance_norm(jnp.asarray(x))), (x - mean) / np.sqrt(var + 1e-5),
                             rtol=1e-5, atol=1e-5)
  row = jnp.arange(1.0, 5.0).reshape(1, 1, 4, 1)           # 1 2 3 4, pad 2 -> 3 2 | 1 2 3 4 | 3 2
  np.testing.assert_array_equal(np.asarray(reflect_pad(row, 2))[0, 2, :, 0], [3, 2, 1, 2, 3, 4, 3, 2])
  padded = np.asarray(reflect_pad(jnp.asarray(x), 3))
  index = lambda n: [3, 2, 1, *range(n), n - 2, n - 3, n - 4]  # noqa: E731 - mirror, edge not repeated
  np.testing.assert_array_equal(padded, x[:, index(5)][:, :, index(6)])


def test_upsampling_is_pytorchs_transposed_convolution():
  """ConvTranspose2d(k=3, s=2, p=1, output_padding=1), written out: y[o] = Σ x[i] W[t] over o = 2i - 1 + t,
  with PyTorch's kernel W = ours flipped in H and W."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(1, 3, 4, 2)).astype(np.float32)
  for impl in ("subpixel", "xla"):
    m = UpsampleConv(5, impl)
    v = m.init(jax.random.PRNGKey(0), jnp.asarray(x))
    v = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), v)
    y = np.asarray(m.apply(v, jnp.asarray(x)))
    w = np.asarray(v["params"]["conv"]["kernel"])[::-1, ::-1]
    expected = np.zeros((1, 6, 8, 5), np.float32) + np.asarray(v["params"]["conv"]["bias"])
    for i in range(3):
      for j in range(4):
        for t in range(3):
          for u in range(3):
            oy, ox = 2 * i - 1 + t, 2 * j - 1 + u
            if 0 <= oy < 6 and 0 <= ox < 8:
              expected[0, oy, ox] += x[0, i, j] @ w[t, u]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_losses_by_hand():
  real, fake = jnp.array([[1.0, 0.5], [2.0, 1.0]]), jnp.array([[0.0, 0.5], [-1.0, 1.0]])
  # D: ½[mean (r-1)²] + ½[mean f²] = ½ (0 + .25 + 1 + 0)/4 + ½ (0 + .25 + 1 + 1)/4
  np.testing.assert_allclose(cg.lsgan_d(real, fake), 0.5 * 1.25 / 4 + 0.5 * 2.25 / 4, rtol=1e-6)
  # G: mean (f-1)² = (1 + .25 + 4 + 0)/4, no ½ (the official MSELoss)
  np.testing.assert_allclose(cg.lsgan_g(fake), 5.25 / 4, rtol=1e-6)
  np.testing.assert_allclose(cg.l1(real, fake), (1 + 0 + 3 + 0) / 4, rtol=1e-6)


def _images(values) -> jax.Array:
  """One 2x2x1 image per value."""
  return jnp.asarray(values, jnp.float32)[:, None, None, None] * jnp.ones((1, 2, 2, 1))


def test_history_pool_fills_then_swaps_half_the_time():
  pool = cg.pool_init(4, (2, 2, 1))
  pool, out = cg.pool_query(pool, _images([1, 2, 3]), jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, _images([1, 2, 3]))     # while filling, images pass through
  assert int(pool["count"]) == 3
  pool, out = cg.pool_query(pool, _images([4, 5]), jax.random.PRNGKey(1))
  assert int(pool["count"]) == 4 and float(out[0, 0, 0, 0]) == 4   # the 4th fills the last slot
  swaps, n = 0, 0
  query = jax.jit(cg.pool_query)
  for step in range(60):
    values = 100.0 + 10 * step + np.arange(8)
    before = set(np.asarray(pool["images"][:, 0, 0, 0]).tolist())
    pool, out = query(pool, _images(values), jax.random.PRNGKey(10 + step))
    got = np.asarray(out[:, 0, 0, 0])
    for i, (v, g) in enumerate(zip(values, got)):
      # The input itself, or an image held by the pool: from before, or stored by an earlier image of this batch.
      assert g == v or g in before | set(values[:i].tolist())
      swaps += g != v
      n += 1
    after = set(np.asarray(pool["images"][:, 0, 0, 0]).tolist())
    assert after <= before | set(values.tolist()) and int(pool["count"]) == 4
    assert set(got.tolist()) - set(values.tolist()) <= before   # swapped-out images were held before
  assert 0.44 < swaps / n < 0.56            # probability ½ (480 draws: 4.3 standard deviations)
  empty, out = cg.pool_query(cg.pool_init(0, (2, 2, 1)), _images([7]), jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, _images([7]))


def test_linear_decay_schedule():
  lr = cg.linear_decay(2e-4, hold_steps=10, decay_steps=5)
  for count, value in [(0, 2e-4), (9, 2e-4), (10, 2e-4), (12, 2e-4 * 3 / 5), (14, 2e-4 / 5), (15, 0.0), (40, 0.0)]:
    np.testing.assert_allclose(float(lr(count)), value, rtol=1e-6, atol=1e-12)
  np.testing.assert_allclose(float(cg.linear_decay(1e-3, 0, 0)(10_000)), 1e-3)


def _data(**kw):
  c = base_config("cyclegan").data
  c.update(kw)
  return c


def test_digits_pair_domains_are_disjoint_and_different():
  ds = build_dataset(_data(name="digits_pair", resolution=32))
  a, b = ds.source.domains["a"], ds.source.domains["b"]
  assert (len(a), len(b), len(ds.source)) == (899, 898, 899) and ds.spec.shape == (32, 32, 3)
  x = ds.transform(ds.source[0])
  assert x["a"].shape == x["b"].shape == (32, 32, 3) and x["a"].dtype == np.float32
  xa, xb = np.stack([a[i]["x"] for i in range(50)]), np.stack([b[i]["x"] for i in range(50)])
  assert np.allclose(xa[..., 0], xa[..., 1])                    # A is grey: white ink on black
  assert xa.mean() < -0.2 and xb.mean() > 0.2                   # B is light paper with dark ink
  assert xb[..., 0].mean() > xb[..., 2].mean() + 0.3            # and tinted
  with pytest.raises(ConfigError, match="digits_pair is RGB"):
    build_dataset(_data(name="digits_pair", channels=1))


def _write_folder(path, values, size=12):
  path.mkdir()
  for i, v in enumerate(values):
    Image.fromarray(np.full((size, size, 3), v, np.uint8)).save(path / f"{i}.png")


def test_folder_pair_reads_each_domain_in_its_own_order(tmp_path):
  _write_folder(tmp_path / "a", [10 * i for i in range(5)])
  _write_folder(tmp_path / "b", [100 + 10 * i for i in range(7)])
  ds = build_dataset(_data(name="folder_pair", path_a=str(tmp_path / "a"), path_b=str(tmp_path / "b"), resolution=8))
  assert ds.spec.shape == (8, 8, 3) and len(ds.source) == 7
  it = iter(train_dataset(ds, 1, seed=0, process_index=0, process_count=1))
  rows = [next(it) for _ in range(35)]
  ids_a = [round((float(r["a"][0, 0, 0, 0]) + 1) * 127.5) // 10 for r in rows]
  ids_b = [round((float(r["b"][0, 0, 0, 0]) + 1) * 127.5) // 10 - 10 for r in rows]
  for e in range(7):
    assert sorted(ids_a[5 * e:5 * e + 5]) == list(range(5))     # every A once per A epoch
  for e in range(5):
    assert sorted(ids_b[7 * e:7 * e + 7]) == list(range(7))     # every B once per B epoch
  partners = {a: {b for x, b in zip(ids_a, ids_b) if x == a} for a in range(5)}
  assert all(len(p) > 1 for p in partners.values())            # unpaired: no fixed partner
  with pytest.raises(ConfigError, match="needs --config.data.path_b=DIR"):
    build_dataset(_data(name="folder_pair", path_a=str(tmp_path / "a")))


def test_random_crop_and_flip_are_reproducible(tmp_path):
  rng = np.random.default_rng(0)
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  for d in "ab":
    for i in range(3):
      Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / d / f"{i}.png")
  c = _data(name="folder_pair", path_a=str(tmp_path / "a"), path_b=str(tmp_path / "b"), resolution=16,
            load_size=20, flip=True)
  ds = build_dataset(c)
  first = [next(iter(train_dataset(ds, 3, seed=1, process_index=0, process_count=1))) for _ in range(2)]
  np.testing.assert_array_equal(first[0]["a"], first[1]["a"])   # a function of the seed and position
  assert first[0]["a"].shape == (3, 16, 16, 3)
  crops = {ds.train_transform(ds.source[0], np.random.default_rng(s))["a"].tobytes() for s in range(20)}
  assert len(crops) > 5                                          # random crops (and flips) vary
  np.testing.assert_array_equal(ds.transform(ds.source[0])["a"], ds.transform(ds.source[0])["a"])
  with pytest.raises(ConfigError, match="load_size=8 must be 0 or >= data.resolution=16"):
    build_dataset(_data(name="folder_pair", path_a=str(tmp_path / "a"), path_b=str(tmp_path / "b"),
                        resolution=16, load_size=8))


def test_cycle_gan_tfds_through_data_source(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6):
    ds = build_dataset(_data(name="cycle_gan", tfds_name="horse2zebra", resolution=32))
    batch = next(iter(train_dataset(ds, 4, seed=0, process_index=0, process_count=1)))
  assert batch["a"].shape == batch["b"].shape == (4, 32, 32, 3) and ds.spec.shape == (32, 32, 3)
  assert -1 <= batch["a"].min() and batch["b"].max() <= 1
  with pytest.raises(ConfigError, match="tfds build cycle_gan/horse2zebra"):   # says what to run
    build_dataset(_data(name="cycle_gan", tfds_name="horse2zebra", data_dir=str(tmp_path)))
  with pytest.raises(ConfigError, match="needs --config.data.tfds_name"):
    build_dataset(_data(name="cycle_gan"))


def test_settings_the_step_cannot_honour_are_refused(load_config):
  from gan_jax.config import validate
  from gan_jax.train.kinds import build_trainer as build_gan
  spec = DataSpec("image", (32, 32, 3))
  c = load_config("experiments/cyclegan_horse2zebra.py:runlocal")
  c.loss.name = "hinge"
  with pytest.raises(ConfigError, match="least_squares"):
    build_gan(c, spec)
  c = load_config("experiments/cyclegan_horse2zebra.py:runlocal")
  c.grad_accum = 2
  with pytest.raises(ConfigError, match="grad_accum=2 is not used by training kind 'translation'"):
    validate(c)
  c = load_config("experiments/cyclegan_horse2zebra.py:runlocal")   # no n_critic, reg.*, ema.*, augment.*
  assert not {"n_critic", "reg", "ema", "augment", "schedule"} & set(c.keys())
  assert cli._unknown_key_message(c, ["reg.r1"], "config") == (
      "config.reg.r1 is not used by training kind 'translation' (model 'cyclegan'): its config has no 'reg' block")
  assert isinstance(build_gan(load_config("experiments/cyclegan_horse2zebra.py:runlocal"), spec), cg.CycleGAN)


def test_translate_rejects_bad_arguments(tmp_path):
  r = run_main("translate.py", "--workdir", str(tmp_path), "--input", str(tmp_path), "--out", str(tmp_path / "o"),
               "--direction", "sideways")
  assert r.returncode == 2 and r.stderr.strip().splitlines() == [
      "error: --direction must be one of a2b, b2a, got 'sideways'"]
  r = run_main("translate.py", "--workdir", str(tmp_path), "--input", str(tmp_path / "nope"), "--out", "x")
  assert r.returncode == 2 and "is not a folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------ end to end

TINY = ["--config.model.g_blocks=1", "--config.model.g_width=4", "--config.model.d_width=4",
        "--config.log_every=1", "--config.sample_every=0", "--config.ckpt_every=3", "--config.model.pool_size=6",
        "--config.model.lr_hold_steps=2", "--config.model.lr_decay_steps=4"]


def _train(workdir, steps, devices=1):
  r = run_main("train.py", "--config", experiment("cyclegan_horse2zebra") + ":runlocal", "--workdir", str(workdir),
               *TINY, f"--config.total_steps={steps}", devices=devices)
  assert r.returncode == 0, r.stderr[-3000:]
  return r


@pytest.mark.slow
def test_four_devices_equal_one_and_resume_equals_uninterrupted(tmp_path):
  """6 steps straight on 1 device; 3 steps, stop, 3 more (bitwise the same losses and final state, pools
  included); 6 steps on 4 simulated devices (the batch of 4 split over them): the same first step."""
  from gan_jax.train import loop
  _train(tmp_path / "straight", 6)
  _train(tmp_path / "resumed", 3)
  assert "resuming at step 3" in _train(tmp_path / "resumed", 6).stderr
  assert "4 devices" in _train(tmp_path / "four", 6, devices=4).stderr
  rows = {k: read_jsonl(str(tmp_path / k / "metrics.jsonl")) for k in ("straight", "resumed", "four")}
  assert [r["step"] for r in rows["resumed"]] == [r["step"] for r in rows["straight"]] == list(range(1, 7))
  keys = ("g_loss", "d_loss", "cycle_loss", "idt_loss", "g_lr")
  for a, b in zip(rows["straight"], rows["resumed"]):
    assert all(a[k] == b[k] for k in keys)
  # Step 1: the same losses and gradients whatever the device count (the gradient all-reduce sums in
  # another order: measured 3e-4 relative in G's gradient norm).
  one, four = rows["straight"][0], rows["four"][0]
  np.testing.assert_allclose([four[k] for k in keys], [one[k] for k in keys], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose([four["g_grad_norm"], four["d_grad_norm"]], [one["g_grad_norm"], one["d_grad_norm"]],
                             rtol=1e-3)
  # Later steps drift, measured up to 1e-2 relative by step 6, and not from Adam's eps: with eps 1e-3
  # instead of 1e-8 the drift is the same (up to 6.6e-3; relative differences at step 2 1e-5..9e-5 with
  # either). It is already in step 1's gradients (3e-4 in G's norm, above).
  for a, b in zip(rows["straight"][1:], rows["four"][1:]):
    np.testing.assert_allclose([b[k] for k in keys], [a[k] for k in keys], rtol=3e-2)
  assert rows["straight"][-1]["g_lr"] < rows["straight"][0]["g_lr"]   # the decay has started
  states = {k: loop.load_run(str(tmp_path / k))[5] for k in ("straight", "resumed", "four")}
  assert int(states["straight"].pool["a"]["count"]) == 6            # 6 steps x batch 4 filled the 6 slots
  for x, y in zip(jax.tree.leaves(states["straight"]), jax.tree.leaves(states["resumed"]), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert int(states["four"].step) == 6 and int(states["four"].pool["b"]["count"]) == 6   # restored on 1 device


@pytest.fixture(scope="module")
def runlocal(tmp_path_factory) -> str:
  """The runlocal experiment as shipped: digits_pair at 32x32, 300 steps."""
  workdir = str(tmp_path_factory.mktemp("cyclegan") / "runlocal")
  r = run_main("train.py", "--config", experiment("cyclegan_horse2zebra") + ":runlocal", "--workdir", workdir)
  assert r.returncode == 0, r.stderr[-3000:]
  return workdir


def _domain_classifier():
  """Logistic regression on pixels, trained on real A (0) against real B (1) of digits_pair."""
  from sklearn.linear_model import LogisticRegression

  from gan_jax.data.unpaired import digit_domains
  a, _, b, _ = digit_domains(32)
  x = np.concatenate([a[200:], b[200:]]).reshape(-1, 32 * 32 * 3)
  y = np.r_[np.zeros(len(a) - 200), np.ones(len(b) - 200)]
  clf = LogisticRegression(max_iter=200).fit(x, y)
  held_out = np.concatenate([a[:200], b[:200]]).reshape(400, -1)
  assert clf.score(held_out, np.r_[np.zeros(200), np.ones(200)]) > 0.99
  return clf, a[:200], b[:200]


@pytest.mark.slow
def test_runlocal_learns_the_digits_pair_translation(runlocal):
  """Cycle reconstruction error falls, and a classifier of real A vs real B recognises G_AB(a) as B
  and G_BA(b) as A."""
  from gan_jax.train import loop
  rows = read_jsonl(os.path.join(runlocal, "metrics.jsonl"))
  assert rows[-1]["step"] == 300 and "compile_s" in rows[0]
  assert rows[-1]["cycle_loss"] < 0.5 * rows[0]["cycle_loss"]
  assert rows[-1]["g_lr"] < 0.2 * rows[0]["g_lr"]   # mean lr of steps 276-300: decayed linearly towards 0
  assert sorted(os.listdir(os.path.join(runlocal, "samples"))) == [f"step_{s:08d}.png" for s in (100, 200, 300)]
  grid = np.asarray(Image.open(os.path.join(runlocal, "samples", "step_00000300.png")))
  assert grid.shape[1] > grid.shape[0] / 2 and grid.std() > 20         # 8 rows x 6 columns, not blank
  clf, a, b = _domain_classifier()
  _, _, _, gan, _, state, step = loop.load_run(runlocal)
  translate = jax.jit(gan.translate)
  ab = np.asarray(translate(state.g_params["g_ab"], jnp.asarray(a)))
  ba = np.asarray(translate(state.g_params["g_ba"], jnp.asarray(b)))
  acc_ab = float(np.mean(clf.predict(ab.reshape(len(ab), -1)) == 1))
  acc_ba = float(np.mean(clf.predict(ba.reshape(len(ba), -1)) == 0))
  print(f"domain accuracy of translations at step {step}: G_AB(a) as B {acc_ab:.3f}, G_BA(b) as A {acc_ba:.3f}")
  assert acc_ab > 0.9 and acc_ba > 0.9
  # Not just a recolouring into blobs: a digit classifier of both domains (logistic regression on pixels,
  # ~0.9 on held-out real digits) reads the input's digit in its translation (chance: 0.1).
  from sklearn.linear_model import LogisticRegression

  from gan_jax.data.unpaired import digit_domains
  xa, la, xb, lb = digit_domains(32)
  digits = LogisticRegression(max_iter=500).fit(np.concatenate([xa[200:], xb[200:]]).reshape(-1, 32 * 32 * 3),
                                                np.r_[la[200:], lb[200:]])
  kept_ab = float(np.mean(digits.predict(ab.reshape(len(ab), -1)) == la[:200]))
  kept_ba = float(np.mean(digits.predict(ba.reshape(len(ba), -1)) == lb[:200]))
  print(f"digit kept by the translation: a->b {kept_ab:.3f}, b->a {kept_ba:.3f}")
  assert kept_ab > 0.6 and kept_ba > 0.6
  # The cycle returns near the input (in [-1, 1] pixel units).
  aba = np.asarray(translate(state.g_params["g_ba"], jnp.asarray(ab)))
  assert np.abs(aba - a).mean() < 0.5 * np.abs(ab - a).mean()


@pytest.mark.slow
def test_translate_script_end_to_end(runlocal, tmp_path):
  from gan_jax.data.unpaired import digit_domains
  a, _, b, _ = digit_domains(32)
  inputs = tmp_path / "in"
  (inputs / "sub").mkdir(parents=True)
  for i in range(5):
    Image.fromarray(np.rint((a[i] + 1) * 127.5).astype(np.uint8)).save(inputs / ("sub" if i % 2 else "") / f"{i}.png")
  (inputs / "broken.png").write_bytes(b"not an image")
  r = run_main("translate.py", "--workdir", runlocal, "--input", str(inputs), "--out", str(tmp_path / "out"),
               "--batch", "2")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "translated 5 images a2b with step 300" in r.stderr and "skipped 1" in r.stderr
  outs = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
  assert outs == ["0.png", "2.png", "4.png", "sub/1.png", "sub/3.png"]
  clf, _, _ = _domain_classifier()
  x = np.stack([np.asarray(Image.open(tmp_path / "out" / p), np.float32) / 127.5 - 1 for p in outs])
  assert x.shape == (5, 32, 32, 3) and np.mean(clf.predict(x.reshape(5, -1)) == 1) >= 0.8   # they look like B
  r = run_main("translate.py", "--workdir", runlocal, "--input", str(inputs), "--out", str(tmp_path / "o2"),
               "--step", "7")
  assert r.returncode == 2 and "no checkpoint for step 7" in r.stderr
