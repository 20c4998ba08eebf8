"""scripts/ref_stats.py, scripts/evaluate.py and scripts/convert_weights.py end to end on the
digits data. The weight files written here are RANDOM WEIGHTS at reduced width (Inception at
1/8, VGG-16 at 1/16 of the channels): they exercise the whole path (weights files, sharding,
statistics, files written, errors), never the published networks' values."""
import json
import os
import shutil

import numpy as np
import pytest
from conftest import experiment, read_jsonl, run_main, run_processes, run_script

from gan_jax.metrics import features


def _write_random_weights(cache: str) -> None:
  import jax.numpy as jnp

  from gan_jax.metrics import vgg
  note = "RANDOM WEIGHTS written by tests/test_metrics_scripts.py"
  features.save_weights(features.default_path("inception"), features.random_inception_variables(0.125),
                        {"kind": "inception", "width": 0.125, "note": note})
  import jax
  module = vgg.VGG16(widths=tuple(max(4, c // 16) for c in vgg.VGG16().widths), fc_features=64)
  params = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)))
  features.save_weights(features.default_path("vgg16"), params, {"kind": "vgg16", "note": note})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("gan_jax_cache"))
  old = os.environ.get("GAN_JAX_CACHE")
  os.environ["GAN_JAX_CACHE"] = root
  try:
    _write_random_weights(root)
  finally:
    if old is None:
      del os.environ["GAN_JAX_CACHE"]
    else:
      os.environ["GAN_JAX_CACHE"] = old
  return root


def _env(cache_root: str) -> dict:
  return {"GAN_JAX_CACHE": cache_root}


def test_missing_weights_and_bad_flags_exit_2(tmp_path):
  empty = str(tmp_path / "empty_cache")
  r = run_main("evaluate.py", "--workdir", str(tmp_path / "run"), "--metrics", "fid", "--num", "10", env=_env(empty))
  assert r.returncode == 2, r.stderr[-2000:]
  line = r.stderr.strip().splitlines()[-1]
  assert line.startswith("error: inception weights not found: " + os.path.join(empty, "weights"))
  assert "pt_inception-2015-12-05-6726825d.pth" in line and "convert_weights.py --inception" in line
  r = run_main("ref_stats.py", "--data", "digits", "--out", str(tmp_path / "x.npz"), "--metrics", "fid,ssim",
               env=_env(empty))
  assert r.returncode == 2 and "unknown metric 'ssim'; valid metrics: fid, kid, is, pr" in r.stderr
  # The file name carries torch hub's hash prefix: content with another SHA-256 is refused (before torch).
  fake = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
  fake.write_bytes(b"not the weights")
  r = run_main("convert_weights.py", "--vgg16", str(tmp_path / "nothing.pth"), env=_env(empty))
  assert r.returncode == 2 and "nothing.pth not found" in r.stderr
  r = run_main("convert_weights.py", "--inception", str(fake), env=_env(empty))
  assert r.returncode == 2 and "does not start with the hash in its name (6726825d)" in r.stderr
  # The trainer checks weights, metric names and eval.best before it writes anything.
  run = tmp_path / "train_run"
  base = ("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", str(run),
          "--config.eval.every=10")
  for extra, expected in (
      (("--config.eval.metrics=fid",), "error: inception weights not found: "),
      (("--config.eval.metrics=fid,lpips",), "unknown metric 'lpips'; valid metrics: fid, kid, is, pr"),
      (("--config.eval.best=fdi",),
       "unknown eval.best 'fdi'; valid choices: coverage, density, digit_accuracy, digit_fd,"),
      (("--config.eval.best=fid",), "eval.best='fid' is not computed by this run; it computes: digit_fd"),
      # Only conditional generators are asked for digits: an unconditional run has no digit_accuracy.
      (("--config.eval.best=digit_accuracy",),
       "eval.best='digit_accuracy' is not computed by this run; it computes: digit_fd"),
      (("--config.eval.metrics=is", "--config.eval.every=0"), "eval.metrics needs eval.every > 0")):
    r = run_main(*base, *extra, env=_env(empty))
    assert r.returncode == 2 and expected in r.stderr.strip().splitlines()[-1], (extra, r.stderr[-1500:])
    assert not run.exists() or not os.listdir(run), extra


@pytest.mark.slow
def test_ref_stats_then_evaluate_on_digits(tmp_path, cache, trained_run):
  run = str(tmp_path / "run")
  shutil.copytree(trained_run, run)          # eval.jsonl goes into a copy of the shared run
  ref = str(tmp_path / "digits_ref.npz")
  r = run_script("ref_stats.py", "--data", "digits", "--split", "train", "--out", ref, "--num", "150",
                 "--metrics", "fid,kid,pr", "--resolution", "16", "--batch_size", "40", "--noprogress",
                 env=_env(cache), devices=2)
  assert r.returncode == 0, r.stderr[-3000:]
  with np.load(ref) as z:
    assert int(z["num"]) == 150 and z["mu"].shape == (256,) and z["sigma"].shape == (256, 256)
    assert z["pool3"].shape == (150, 256) and z["vgg16"].shape == (150, 64)
    assert z["mu"].dtype == np.float64 and np.isfinite(z["sigma"]).all()
    np.testing.assert_allclose(z["mu"], z["pool3"].astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-6)
    meta = json.loads(str(z["meta"]))
  assert meta["data"] == {"name": "digits", "split": "train", "resolution": 16, "channels": 0, "num": 150}
  assert "RANDOM WEIGHTS" in meta["protocol"]["inception"]["note"]
  assert meta["protocol"]["inception"]["resize"].startswith("bilinear to 299x299")

  args = ("--workdir", run, "--num", "60", "--batch_size", "25", "--noprogress")
  r = run_script("evaluate.py", *args, "--metrics", "fid,kid,is,pr", "--ref", ref, env=_env(cache), devices=2)
  assert r.returncode == 0, r.stderr[-3000:]
  # Without --ref: the run's own training data as the reference, computed once and cached.
  r2 = run_script("evaluate.py", *args, "--metrics", "fid", "--num_ref", "100", env=_env(cache))
  assert r2.returncode == 0, r2.stderr[-3000:]
  rows = read_jsonl(os.path.join(run, "eval.jsonl"))
  first, second = rows
  assert first["step"] == 50 and first["num"] == 60 and first["num_ref"] == 150 and first["ema"] is True
  for k in ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage"):
    assert np.isfinite(first[k]), k
  assert first["fid"] > 0 and 1.0 <= first["is"] <= 1008 and 0 <= first["precision"] <= 1
  assert first["kid_subset_size"] == 60 and first["pr_k"] == 3 and first["dc_k"] == 5
  assert first["protocol"]["inception"]["quantize_uint8"] is True and "vgg16" in first["protocol"]
  assert second["num_ref"] == 100 and "kid" not in second and second["fid"] > 0
  assert os.path.dirname(second["ref"]) == os.path.join(cache, "ref_stats")

  # A reference made with another preprocessing is refused.
  with np.load(ref) as z:
    arrays = {k: z[k] for k in z.files}
  meta["protocol"]["inception"]["resize"] = "none (input fed at its own size)"
  arrays["meta"] = np.array(json.dumps(meta))
  other = str(tmp_path / "other.npz")
  np.savez(other, **arrays)
  r = run_script("evaluate.py", *args, "--metrics", "fid", "--ref", other, env=_env(cache))
  assert r.returncode == 2 and "another inception protocol (resize" in r.stderr


def _share_digit_classifier(cache_root: str) -> None:
  """Puts the project's digit classifier (trained once in the default cache) into `cache_root`,
  so that digit_fd in a run with that cache does not train it again."""
  from gan_jax.data.digits import digit_images
  from gan_jax.metrics import digit_classifier
  digit_classifier.cached_params("digits_16", lambda: digit_images(16))
  for suffix in (".msgpack", ".msgpack.json"):
    name = f"digit_classifier_digits_16{suffix}"
    if not os.path.exists(os.path.join(cache_root, name)):
      shutil.copy(os.path.join(digit_classifier.cache_dir(), name), os.path.join(cache_root, name))


@pytest.mark.slow
def test_trainer_evaluates_keeps_the_best_and_agrees_with_evaluate_py(tmp_path, cache):
  _share_digit_classifier(cache)
  run = str(tmp_path / "run")
  args = ("--config", experiment("dcgan_digits") + ":runlocal", "--workdir", run, "--config.ckpt_every=20",
          "--config.eval.every=20", "--config.eval.metrics=fid,kid", "--config.eval.num=60",
          "--config.eval.num_ref=100", "--config.eval.batch_size=30", "--config.eval.best=fid")
  r = run_script("train.py", *args, "--config.total_steps=40", env=_env(cache), devices=2)
  assert r.returncode == 0, r.stderr[-3000:]
  rows = read_jsonl(os.path.join(run, "eval.jsonl"))
  assert [row["step"] for row in rows] == [0, 20, 40] and {row["source"] for row in rows} == {"train"}
  for row in rows:
    assert row["num"] == 60 and row["num_ref"] == 100 and row["ema"] is True and "RANDOM" in str(row["protocol"])
    assert np.isfinite(row["fid"]) and row["fid"] > 0 and np.isfinite(row["kid"]) and row["kid_subset_size"] == 60
  logged = {m["step"]: m for m in read_jsonl(os.path.join(run, "metrics.jsonl")) if "fid" in m}
  assert sorted(logged) == [0, 20, 40] and all(logged[row["step"]]["fid"] == row["fid"] for row in rows)
  assert all(np.isfinite(m["digit_fd"]) for m in logged.values())   # the dataset's own metric beside them
  fids = [row["fid"] for row in rows]
  with open(os.path.join(run, "best.json")) as f:
    best = json.load(f)
  assert best == {"metric": "fid", "mode": "min", "value": min(fids), "step": rows[int(np.argmin(fids))]["step"]}
  assert os.listdir(os.path.join(run, "best")) == [str(best["step"])]

  # scripts/evaluate.py --best on the kept checkpoint, with the same N and batch size (and the
  # cached reference), gives the trainer's numbers for that step.
  common = ("--workdir", run, "--metrics", "fid,kid", "--num", "60", "--batch_size", "30", "--num_ref", "100",
            "--noprogress")
  r = run_script("evaluate.py", *common, "--best", env=_env(cache), devices=2)
  assert r.returncode == 0, r.stderr[-3000:]
  last = read_jsonl(os.path.join(run, "eval.jsonl"))[-1]
  trained = next(row for row in rows if row["step"] == best["step"])
  assert last["step"] == best["step"] and last["source"] == "best"
  np.testing.assert_allclose([last["fid"], last["kid"]], [trained["fid"], trained["kid"]], rtol=1e-6)

  # Resuming past the end continues eval.jsonl from the checkpoint's step, without duplicates,
  # and keeps the scripts' rows.
  r = run_script("train.py", *args, "--config.total_steps=60", env=_env(cache), devices=2)
  assert r.returncode == 0, r.stderr[-3000:]
  rows = read_jsonl(os.path.join(run, "eval.jsonl"))
  assert [(row["step"], row["source"]) for row in rows] == [(0, "train"), (20, "train"), (40, "train"),
                                                            (best["step"], "best"), (60, "train")]
  with open(os.path.join(run, "best.json")) as f:
    after = json.load(f)
  assert after["value"] == min(fids + [rows[-1]["fid"]])
  assert os.listdir(os.path.join(run, "best")) == [str(after["step"])]


@pytest.mark.slow
def test_reference_statistics_from_two_processes_equal_one(tmp_path, cache):
  """Feature extraction data-parallel over 2 processes x 2 devices (jax.distributed on 127.0.0.1)
  gives the statistics of one process with one device; process 0 alone writes the file."""
  args = ("--data", "digits", "--num", "70", "--metrics", "fid,kid", "--resolution", "16", "--batch_size", "20",
          "--noprogress")
  one = str(tmp_path / "one.npz")
  r = run_script("ref_stats.py", *args, "--out", one, env=_env(cache))
  assert r.returncode == 0, r.stderr[-3000:]
  two = str(tmp_path / "two.npz")
  outs = run_processes("ref_stats.py", *args, "--out", two, processes=2, devices=2, env=_env(cache))
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert "4 devices, 2 processes" in outs[0][2] and "wrote" not in outs[1][2]
  assert sorted(os.listdir(tmp_path)) == ["one.npz", "two.npz"]
  with np.load(one) as a, np.load(two) as b:
    assert int(a["num"]) == int(b["num"]) == 70
    np.testing.assert_allclose(b["pool3"], a["pool3"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b["mu"], a["mu"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b["sigma"], a["sigma"], rtol=1e-4, atol=1e-6)
