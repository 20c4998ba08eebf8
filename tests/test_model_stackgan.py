"""StackGAN (gan_jax/models/stackgan.py, gan_jax/train/kinds/text2image.py, gan_jax/data/text_embeddings.py):
parameter counts of the official networks, conditioning augmentation against closed forms, the
matching-aware loss by hand, Stage II's frozen Stage-I generator and its start from a Stage-I workdir,
the official embedding files, 4 devices against 1, and the runlocal experiment end to end.

Reference parameter counts: hanzhanggit/StackGAN-Pytorch @ e72ef88, code/model.py STAGE1_G, STAGE1_D,
STAGE2_G(STAGE1_G()), STAGE2_D, with cfg = code/miscc/config.py's defaults (the CUB/Oxford-102 setting:
Z_DIM 100, TEXT.DIMENSION 1024, CONDITION_DIM 128, GF_DIM 128, DF_DIM 64, R_NUM 4) and with
code/cfg/coco_s1.yml / coco_s2.yml (GF_DIM 192, DF_DIM 96, R_NUM 2); instantiated with torch 2.13.0 (CPU)
in a scratch directory outside this repository (miscc.config replaced by a stub holding those values)
and counted as sum(p.numel() for p in net.parameters()). STAGE2_G's count includes its frozen STAGE1_G
(requires_grad False), as ours includes params["stage1"]; its trainable part is given separately.
"""
import json
import os
import pickle
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, experiment, read_jsonl, run_main
from PIL import Image

from gan_jax.config import base_config
from gan_jax.data import build_dataset
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec, build_models, model_config
from gan_jax.models.stackgan import CANet
from gan_jax.train import machinery
from gan_jax.train.kinds import text2image as sgs


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


KEYS = {"params": jax.random.PRNGKey(0), "noise": jax.random.PRNGKey(1)}


def _init(sg, res):
  """sg.init jitted from an "rbg" key: XLA:CPU compiles the initializers' threefry bits several times slower."""
  return jax.jit(lambda k: sg.init(k, (res, res, 1)))(jax.random.key(0, impl="rbg"))

# (stage, resolution, g_width, d_width, r_num): (G params, of them Stage II's own, D params)
OFFICIAL = {
    (1, 64, 128, 64, 4): (10_301_248, 0, 5_715_713),           # CUB / Oxford-102 Stage I
    (2, 256, 128, 64, 4): (36_591_328, 26_290_080, 71_269_122),  # CUB / Oxford-102 Stage II
    (1, 64, 192, 96, 2): (20_020_832, 0, 12_407_425),          # COCO Stage I
    (2, 256, 192, 96, 2): (57_151_312, 37_130_480, 159_889_538),  # COCO Stage II
}


@pytest.mark.parametrize("setting", list(OFFICIAL))
def test_parameter_counts_and_shapes_equal_the_official_code(setting):
  stage, res, gf, df, r = setting
  c = model_config("stackgan")
  c.update(stage=stage, g_width=gf, d_width=df, r_num=r)
  g, d = build_models(c, DataSpec("image", (res, res, 3)))
  z, e = jnp.zeros((2, 100)), jnp.zeros((2, 1024))
  gv = jax.eval_shape(lambda: g.init(KEYS, z, e, train=False))
  images, mu, logvar = jax.eval_shape(lambda v: g.apply(v, z, e, train=False, rngs=KEYS), gv)
  x = jnp.zeros((2, res, res, 3))
  dv = jax.eval_shape(lambda: d.init(KEYS, x, jnp.zeros((2, 128)), train=False))
  cond, uncond = jax.eval_shape(lambda v: d.apply(v, x, jnp.zeros((2, 128)), train=False), dv)
  g_count, own, d_count = OFFICIAL[setting]
  assert _count(gv["params"]) == g_count
  assert _count(gv["params"].get("stage2", {})) == own
  assert _count(dv["params"]) == d_count
  assert images.shape == (2, res, res, 3) and mu.shape == logvar.shape == (2, 128)
  assert cond.shape == (2,) and (uncond is None) == (stage == 1)
  p = gv["params"]["stage1"]
  assert p["ca_net"]["fc"]["kernel"].shape == (1024, 256)              # 1024 -> mu, logvar of 128 each
  assert p["fc"]["kernel"].shape == (100 + 128, 4 * 4 * 8 * gf)         # [z, c_hat] -> 4x4 x 8·gf
  if stage == 2:
    s2 = gv["params"]["stage2"]
    assert s2["hr_joint"]["kernel"].shape == (3, 3, 128 + 4 * gf, 4 * gf)
    assert sum(k.startswith("residual") for k in s2) == r
    assert s2["img"]["kernel"].shape == (3, 3, gf // 4, 3)


def _toy(stage=1, res=16, num_classes=10, batch=8, **model):
  """A toy-width StackGAN on digits-shaped data (class labels unless num_classes=0: text embeddings)."""
  c = base_config("stackgan")
  c.model.update({**dict(stage=stage, t_dim=8, c_dim=4, z_dim=8, g_width=4, d_width=4, r_num=1, upscale=2), **model})
  c.batch_size = batch
  spec = DataSpec("image", (res, res, 1), num_classes)
  g, d = build_models(c.model, spec)
  tx = machinery.make_optimizer(c.optim.g, sgs.halving_lr(c.optim.g.lr, 0))
  return sgs.StackGAN(generator=g, discriminator=d, g_tx=tx, d_tx=tx,
                      stage=stage, z_dim=8, c_dim=4, t_dim=8, label_classes=num_classes, num_captions=4)


def test_bad_resolutions_are_config_errors():
  with pytest.raises(ConfigError, match="power of 2"):
    _toy(2, 48, upscale=3)
  with pytest.raises(ConfigError, match="Stage-I resolution of 8, 16"):
    _toy(1, 4)


# ------------------------------------------------------------------------- conditioning augmentation

def test_kl_loss_is_the_closed_form_averaged_over_dimensions_and_matches_monte_carlo():
  rng = np.random.default_rng(0)
  mu = rng.normal(0, 0.7, (3, 5)).astype(np.float32)
  logvar = rng.normal(0, 0.5, (3, 5)).astype(np.float32)
  var = np.exp(logvar)
  closed = 0.5 * np.sum(mu ** 2 + var - logvar - 1, axis=1)           # KL per example, summed over dims
  np.testing.assert_allclose(float(sgs.kl_loss(mu, logvar)), closed.mean() / 5, rtol=1e-6)
  # Monte Carlo: E_q[log q(c) - log p(c)] with 400k draws per example.
  n = 400_000
  c = mu[:, None] + np.sqrt(var)[:, None] * rng.normal(size=(3, n, 5))
  log_q = -0.5 * np.sum((c - mu[:, None]) ** 2 / var[:, None] + logvar[:, None] + np.log(2 * np.pi), -1)
  log_p = -0.5 * np.sum(c ** 2 + np.log(2 * np.pi), -1)
  mc = (log_q - log_p).mean(axis=1)
  np.testing.assert_allclose(mc, closed, rtol=0.02, atol=0.01)
  assert float(sgs.kl_loss(np.zeros((2, 3)), np.zeros((2, 3)))) == 0.0   # N(0, I) itself


def test_reparameterized_condition_has_mean_mu_and_std_sigma():
  ca = CANet(6)
  e = jax.random.normal(jax.random.PRNGKey(0), (1, 12))
  v = jax.jit(lambda e: jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(2), x.shape),
                                     ca.init(KEYS, e)))(e)   # away from 0
  n = 20_000
  c_hat, mu, logvar = jax.jit(lambda v, e, k: ca.apply(v, e, rngs={"noise": k}))(v, jnp.repeat(e, n, 0),
                                                                                  jax.random.PRNGKey(3))
  mu, sigma = np.asarray(mu)[0], np.exp(0.5 * np.asarray(logvar)[0])
  # The official encode: ReLU over the fc output, so mu >= 0 and logvar >= 0 (sigma >= 1).
  assert np.all(mu >= 0) and np.all(sigma >= 1) and np.any(mu > 0)
  c_hat = np.asarray(c_hat)
  np.testing.assert_allclose(c_hat.mean(0), mu, atol=4 * sigma.max() / np.sqrt(n))
  np.testing.assert_allclose(c_hat.std(0), sigma, rtol=0.03)
  z = (c_hat - mu) / sigma
  assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.05                 # independent dimensions


# ------------------------------------------------------------------------------------- the losses

def test_matching_aware_losses_by_hand():
  sp = lambda x: np.log1p(np.exp(x))  # noqa: E731 - softplus
  real, wrong, fake = np.array([2.0, -1.0, 0.5]), np.array([0.3, -0.2]), np.array([-1.5, 0.0, 1.0])
  r = (sp(-2.0) + sp(1.0) + sp(-0.5)) / 3                           # BCE(sigmoid(real), 1)
  w = (sp(0.3) + sp(-0.2)) / 2                                      # BCE(sigmoid(wrong), 0)
  f = (sp(-1.5) + sp(0.0) + sp(1.0)) / 3
  loss, logs = sgs.matching_aware_d_loss(real, wrong, fake)
  np.testing.assert_allclose(float(loss), r + 0.5 * (f + w), rtol=1e-6)
  np.testing.assert_allclose(float(logs["d_wrong_loss"]), w, rtol=1e-6)
  u_real, u_fake = np.array([1.0, 1.0, -2.0]), np.array([0.5, -0.5, 0.0])
  ur, uf = (2 * sp(-1.0) + sp(2.0)) / 3, (sp(0.5) + sp(-0.5) + sp(0.0)) / 3
  loss2, _ = sgs.matching_aware_d_loss(real, wrong, fake, u_real, u_fake)
  np.testing.assert_allclose(float(loss2), (r + ur) / 2 + (f + w + uf) / 3, rtol=1e-6)
  np.testing.assert_allclose(float(sgs.generator_adversarial_loss(fake)), (sp(1.5) + sp(0.0) + sp(-1.0)) / 3,
                             rtol=1e-6)
  np.testing.assert_allclose(float(sgs.generator_adversarial_loss(fake, u_fake)),
                             (sp(1.5) + sp(0.0) + sp(-1.0)) / 3 + (sp(-0.5) + sp(0.5) + sp(0.0)) / 3, rtol=1e-6)


def test_step_pairs_each_real_image_with_the_next_text_as_mismatched():
  """The step's logged losses equal the loss recomputed from D's heads on (x_i, mu_i), (x_i, mu_{i+1})
  and (G(z_i, c_i), mu_i): the batch shift of the official code."""
  sg = _toy(1, 16, num_classes=10, batch=6)
  state = _init(sg, 16)
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 6, 16, 16, 1), minval=-1, maxval=1)
  labels = jnp.array([[0, 1, 2, 3, 4, 5]])
  key = jax.random.PRNGKey(7)
  _, metrics = jax.jit(sg.step)(state, {"x": x, "label": labels}, key)

  @jax.jit
  def by_hand(state, x, labels, key):
    """The D loss recomputed by hand with the same draws (the step's key folding), and the unshifted pairing's."""
    k = jax.random.fold_in(key, 0)
    z_key, noise_key = jax.random.split(k)
    (fake, mu, _), _ = sg._g_apply(state.g_params, state.g_vars, sg.latents(z_key, 6), labels[0], noise_key, True)
    d, v = sg.discriminator, {"params": state.d_params, **state.d_vars}

    def head(method, *args):
      return d.apply(v, *args, method=method, mutable=["batch_stats"])[0]

    h_real, h_fake = head("encode", x[0], True), head("encode", fake, True)
    real = head("cond_logits", h_real, mu, True)
    wrong = head("cond_logits", h_real[:-1], mu[1:], True)
    fake_logits = head("cond_logits", h_fake, mu, True)
    return *sgs.matching_aware_d_loss(real, wrong, fake_logits), sgs.bce(head("cond_logits", h_real, mu, True), 0)

  expected, logs, unshifted = by_hand(state, x, labels, key)
  np.testing.assert_allclose(float(metrics["d_loss"]), float(expected), rtol=1e-4)
  np.testing.assert_allclose(float(metrics["d_wrong_loss"]), float(logs["d_wrong_loss"]), rtol=1e-4)
  # A wrong pairing (no shift) would give another value.
  assert abs(float(unshifted) - float(logs["d_wrong_loss"])) > 1e-4


def test_halving_learning_rate():
  lr = sgs.halving_lr(2e-4, 10)
  for count, value in [(0, 2e-4), (9, 2e-4), (10, 1e-4), (19, 1e-4), (20, 5e-5), (35, 2.5e-5)]:
    np.testing.assert_allclose(float(lr(count)), value, rtol=1e-6)
  assert float(sgs.halving_lr(1e-3, 0)(10 ** 6)) == pytest.approx(1e-3)


# ------------------------------------------------------------------- conditioning on class labels

def test_class_embeddings_learned_or_fixed():
  z, y = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (4, 8))), np.array([0, 1, 2, 3], np.int32)
  for kind, collection in (("learned", "params"), ("fixed", "constants")):
    sg = _toy(1, 16, class_embedding=kind)
    state = _init(sg, 16)
    tree = state.g_params if collection == "params" else state.g_vars["constants"]
    table = tree["embed"]["embedding"] if kind == "learned" else tree["class_embedding"]
    assert table.shape == (10, 8)
    # One compiled call: the same latents with labels y and with other labels.
    both = np.asarray(jax.jit(sg.generate)(state.g_params, state.g_vars, np.concatenate([z, z]),
                                           np.concatenate([y, (y + 5) % 10]), jax.random.PRNGKey(1))[0])
    a, b = both[:4], both[4:]
    assert a.shape == (4, 16, 16, 1) and float(np.max(np.abs(a))) <= 1.0
    assert float(np.max(np.abs(a - b))) > 1e-4
    trainable = sg.trainable(state.g_params)
    assert ("embed" in trainable) == (kind == "learned")     # the learned table trains with Stage I
  with pytest.raises(ValueError, match="class labels"):
    sg.generator.apply({"params": state.g_params, **{k: v for k, v in state.g_vars.items()}}, z,
                       jnp.zeros((4, 8)), train=False, rngs=KEYS)


# ------------------------------------------------------------------------------ Stage I -> Stage II

def test_stage2_steps_leave_stage1_frozen_and_its_gradient_zero():
  sg = _toy(2, 32, num_classes=10, batch=4)
  state = _init(sg, 32)
  assert set(state.g_params) == {"embed", "stage1", "stage2"}
  before = jax.tree.map(np.asarray, (state.g_params, state.g_vars))
  step = jax.jit(sg.step)
  batch = {"x": jax.random.uniform(jax.random.PRNGKey(1), (1, 4, 32, 32, 1), minval=-1, maxval=1),
           "label": jnp.array([[1, 2, 3, 4]])}
  for _ in range(2):
    state, metrics = step(state, batch, jax.random.PRNGKey(2))
  after = jax.tree.map(np.asarray, (state.g_params, state.g_vars))
  for part in ("stage1", "embed"):
    jax.tree.map(np.testing.assert_array_equal, before[0][part], after[0][part])
  jax.tree.map(np.testing.assert_array_equal, before[1]["batch_stats"]["stage1"], after[1]["batch_stats"]["stage1"])
  moved = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[0]["stage2"]),
                                                    jax.tree.leaves(after[0]["stage2"]))]
  assert all(moved)                                           # every Stage-II weight trains
  assert np.isfinite(float(metrics["g_total"])) and "d_wrong_loss" in metrics

  # The Stage-II image's gradient with respect to the Stage-I weights is exactly zero (stop_gradient),
  # with respect to Stage II's not.
  z, y = jax.random.normal(jax.random.PRNGKey(3), (4, 8)), jnp.array([1, 2, 3, 4])

  def out(params):
    return jnp.sum(sg.generate(params, state.g_vars, z, y, jax.random.PRNGKey(4))[0] ** 2)

  grads = jax.jit(jax.grad(out))(state.g_params)
  assert jax.eval_shape(sg.generate, state.g_params, state.g_vars, z, y, jax.random.PRNGKey(4))[0].shape == (
      4, 32, 32, 1)
  assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(grads["stage1"]))
  assert any(np.any(np.asarray(g)) for g in jax.tree.leaves(grads["stage2"]))
  # The class table feeds Stage II's CA too, so it has a gradient, but like a text embedding it is an input
  # of Stage II: not trained (unchanged above).
  assert any(np.any(np.asarray(g)) for g in jax.tree.leaves(grads["embed"])) and set(sg.trainable(grads)) == {"stage2"}


def _stage2_config(stage1_workdir: str):
  from gan_jax import cli
  c = cli.load_experiment(experiment("stackgan_cub") + ":stage=2,runlocal")
  c.model.stage1_workdir = stage1_workdir
  return c


def test_stage2_without_a_stage1_run_is_a_clear_error(tmp_path):
  from gan_jax.train.kinds import build_trainer as build_gan
  spec = DataSpec("image", (32, 32, 1), 10)
  unset = build_gan(_stage2_config(""), spec)   # builds (a resumed or imported Stage II needs no Stage I) ...
  with pytest.raises(ConfigError, match=r"model.stage1_workdir=\(unset\): not set; Stage II needs a finished"):
    unset.warm_start(None, lambda workdir: pytest.fail("nothing to load"))   # ... but cannot start fresh
  with pytest.raises(ConfigError, match="config.json not found; .*stackgan_cub.py:stage=1"):
    build_gan(_stage2_config(str(tmp_path / "none")), spec)
  wd = tmp_path / "s1"
  wd.mkdir()
  s1 = _stage2_config("").to_dict()
  s1["model"].update(stage=1, stage1_workdir="")
  s1["data"]["resolution"] = 16
  (wd / "config.json").write_text(json.dumps({**s1, "model": {**s1["model"], "name": "dcgan"}}))
  with pytest.raises(ConfigError, match="model 'dcgan' stage 1, not stackgan stage 1"):
    build_gan(_stage2_config(str(wd)), spec)
  (wd / "config.json").write_text(json.dumps(s1))
  with pytest.raises(ConfigError, match="no checkpoint in"):
    build_gan(_stage2_config(str(wd)), spec)
  (wd / "checkpoints" / "100").mkdir(parents=True)
  s1["model"]["c_dim"] = 32
  (wd / "config.json").write_text(json.dumps(s1))
  with pytest.raises(ConfigError, match=r"its settings differ: model.c_dim \(32 -> 16\)"):
    build_gan(_stage2_config(str(wd)), spec)


# --------------------------------------------------------------------------- the embedding files

def _write_official_layout(root, n=3, captions=10, dim=1024, size=40, bytes_names=True):
  """The official Data/birds layout: train/{char-CNN-RNN-embeddings,filenames}.pickle (protocol 2, the
  filenames as Python-2 byte strings) and CUB_200_2011/{images/<key>.jpg, images.txt, bounding_boxes.txt}."""
  rng = np.random.default_rng(0)
  keys = [f"00{i + 1}.Bird_{i}/Bird_{i}_000{i}" for i in range(n)]
  embeddings = [rng.normal(size=(captions, dim)).astype(np.float32) for _ in range(n)]
  (root / "train").mkdir(parents=True)
  with open(root / "train" / "char-CNN-RNN-embeddings.pickle", "wb") as f:
    pickle.dump(embeddings, f, protocol=2)
  with open(root / "train" / "filenames.pickle", "wb") as f:
    pickle.dump([k.encode() if bytes_names else k for k in keys], f, protocol=2)
  cub = root / "CUB_200_2011"
  for k in keys:
    (cub / "images" / k).parent.mkdir(parents=True, exist_ok=True)
    image = np.zeros((size, size + 20, 3), np.uint8)              # black, a white bird box at (20, 10) 16x12
    image[10:22, 20:36] = 255
    Image.fromarray(image).save(cub / "images" / f"{k}.jpg", quality=100)
  (cub / "images.txt").write_text("".join(f"{i + 1} {k}.jpg\n" for i, k in enumerate(keys)))
  (cub / "bounding_boxes.txt").write_text("".join(f"{i + 1} 20.0 10.0 16.0 12.0\n" for i in range(n)))
  return keys, np.stack(embeddings)


def _text_data(root, **kw):
  c = base_config("stackgan").data
  c.update(name="text_embeddings", path=str(root), resolution=16, flip=True, **kw)
  return c


def test_embedding_reader_reads_the_official_files(tmp_path):
  keys, embeddings = _write_official_layout(tmp_path)
  e, names = sgs_reader()(str(tmp_path / "train"))
  assert names == keys and e.shape == (3, 10, 1024)
  np.testing.assert_array_equal(e, embeddings)
  ds = build_dataset(_text_data(tmp_path))
  assert ds.spec == DataSpec("image", (16, 16, 3), 0) and len(ds.source) == 3
  raw = ds.source[1]
  # The official bird crop: half-side 0.75 · 16 = 12 around the box centre (28, 16), clipped to the image:
  # x 16..40, y 4..28, then resized to 16·76/64 = 19: the box fills the middle, black around it.
  assert raw["image"].shape == (19, 19, 3)
  ex = ds.transform(raw)
  assert ex["x"].shape == (16, 16, 3) and ex["x"].dtype == np.float32
  np.testing.assert_array_equal(ex["embedding"], embeddings[1, 0])
  centre, corner = ex["x"][8, 8].mean(), ex["x"][0, 0].mean()
  assert centre > 0.9 and corner < -0.5
  picked = {int(np.argmax((embeddings[1] == ds.train_transform(raw, np.random.default_rng(s))["embedding"]).all(1)))
            for s in range(60)}
  assert len(picked) >= 8                                          # one of the 10 captions at random
  # The text model takes its embeddings: a stackgan build on this data is conditioned on text.
  c = base_config("stackgan")
  c.batch_size = 4
  sg = sgs.build(c, ds.spec)
  assert sg.text and sg.num_classes == 4


def sgs_reader():
  from gan_jax.data.text_embeddings import read_text_embeddings
  return read_text_embeddings


def test_missing_embedding_or_image_files_name_what_goes_where(tmp_path):
  with pytest.raises(ConfigError, match=r"train/char-CNN-RNN-embeddings.pickle not found: .*needs "
                                        r"<dir>/<split>/char-CNN-RNN-embeddings.pickle and .*filenames.pickle"):
    build_dataset(_text_data(tmp_path / "empty"))
  keys, _ = _write_official_layout(tmp_path / "d", bytes_names=False)
  os.remove(tmp_path / "d" / "CUB_200_2011" / "images" / f"{keys[2]}.jpg")
  with pytest.raises(ConfigError, match="1 of the 3 images named in .* are missing"):
    build_dataset(_text_data(tmp_path / "d"))
  os.remove(tmp_path / "d" / "CUB_200_2011" / "images" / f"{keys[0]}.jpg")
  with pytest.raises(ConfigError, match=r"not found under .*: put the images as .*CUB_200_2011/images/<key>.jpg"):
    build_dataset(_text_data(tmp_path / "d"))
  with pytest.raises(ConfigError, match="needs --config.data.path"):
    build_dataset(_text_data(""))


def test_missing_data_exits_2_with_one_line(tmp_path):
  r = run_main("train.py", "--config", experiment("stackgan_cub"), "--workdir", str(tmp_path / "run"),
               f"--config.data.path={tmp_path / 'birds'}")
  assert r.returncode == 2, r.stderr[-2000:]
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and "char-CNN-RNN-embeddings.pickle" in lines[0]


# ------------------------------------------------------------------------------ devices

_SHARDED = textwrap.dedent("""
  import json, sys
  import jax, numpy as np
  sys.path.insert(0, {root!r})
  from gan_jax import cli, parallel
  from gan_jax.models import DataSpec
  from gan_jax.train.kinds import build_trainer as build_gan
  from gan_jax.train.loop import jit_step
  c = cli.load_experiment({spec!r})
  c.model.update(g_width=4, d_width=4, t_dim=8, c_dim=4, z_dim=8)
  c.batch_size = 8
  gan = build_gan(c, DataSpec("image", (16, 16, 1), 10))
  rng = np.random.default_rng(0)
  batch = {{"x": rng.uniform(-1, 1, (1, 8, 16, 16, 1)).astype(np.float32),
           "label": rng.integers(0, 10, (1, 8)).astype(np.int32)}}
  out = {{}}
  for n in (1, 4):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:n]), ("data",))
    state = jax.jit(lambda k: gan.init(k, (16, 16, 1)), out_shardings=parallel.replicated(mesh))(
        jax.random.key(0, impl="rbg"))
    step = jit_step(gan, mesh, 1)
    sh = parallel.batch_sharding(mesh, batch_axis=1)
    for i in range(2):
      state, m = step(state, {{k: jax.device_put(v, sh) for k, v in batch.items()}}, jax.random.PRNGKey(1))
    out[n] = {{k: float(v) for k, v in m.items()}}
    out[f"g{{n}}"] = float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree.leaves(state.g_params)))
  print(json.dumps(out))
""")


@pytest.mark.slow
def test_two_steps_on_4_devices_equal_1_device():
  """Two train steps at toy width with the batch split over 4 simulated devices give 1 device's losses,
  gradient norms and weights (BN statistics over the global batch; the mismatched pairs shift across
  device boundaries). Slow: one subprocess compiling the initializer and the step twice."""
  code = _SHARDED.format(root=ROOT, spec=experiment("stackgan_cub") + ":stage=1,runlocal")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=900,
                     env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  assert r.returncode == 0, r.stderr[-3000:]
  out = json.loads(r.stdout.strip().splitlines()[-1])
  for k in ("d_loss", "d_wrong_loss", "g_loss", "kl_loss", "d_grad_norm", "g_grad_norm"):
    np.testing.assert_allclose(out["4"][k], out["1"][k], rtol=1e-4, atol=1e-5, err_msg=k)
  np.testing.assert_allclose(out["g4"], out["g1"], rtol=1e-5)


# ------------------------------------------------------------------------------ end to end

def _metric(workdir, key):
  return {r["step"]: r[key] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl")) if key in r}


@pytest.mark.slow
def test_runlocal_stage1_learns_digits_and_stage2_starts_from_it(tmp_path):
  """Stage I (runlocal, 500 of its 1000 steps) moves digit_fd far below the untrained generator's and
  follows the class: the digit classifier reads most samples as the digit they were drawn for
  (measured 0.76 at step 500, 0.25 at 250; chance 0.1), and writes its grid. Stage II (runlocal, 20
  steps) starts from that workdir with its Stage-I generator equal to the Stage-I checkpoint's,
  unchanged after training, and writes its one-row-per-digit grid."""
  from gan_jax import cli
  from gan_jax.train.loop import load_run, train

  s1 = str(tmp_path / "s1")
  c = cli.load_experiment(experiment("stackgan_cub") + ":stage=1,runlocal")
  c.total_steps = c.ckpt_every = c.sample_every = 500
  c.wandb.mode = "disabled"
  train(c, s1)
  fd, acc = _metric(s1, "digit_fd"), _metric(s1, "digit_accuracy")
  assert sorted(fd) == sorted(acc) == [0, 250, 500] and fd[500] < 0.15 * fd[0], fd
  assert acc[0] < 0.25 and acc[500] > 0.5, acc
  assert os.path.exists(os.path.join(s1, "samples", "step_00000500.png"))

  _, _, _, _, _, state, _ = load_run(s1)

  s2 = str(tmp_path / "s2")
  c2 = _stage2_config(s1)
  c2.total_steps = c2.ckpt_every = 20
  c2.eval.every = 0
  c2.sample_every = 20
  c2.wandb.mode = "disabled"
  train(c2, s2)
  _, _, _, gan2, _, state2, step2 = load_run(s2)
  assert step2 == 20 and state2.g_params["stage2"]
  for part in ("stage1", "embed"):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.g_params[part]),
                 jax.device_get(state2.g_params[part]))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.g_vars["batch_stats"]["stage1"]),
               jax.device_get(state2.g_vars["batch_stats"]["stage1"]))
  grid = np.asarray(Image.open(os.path.join(s2, "samples", "step_00000020.png")))
  assert grid.shape[0] > grid.shape[1]                          # 10 rows (digits) of 8 32x32 samples
  assert np.all(np.isfinite(list(_metric(s2, "g_total").values())))
