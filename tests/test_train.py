"""The trainer end to end: artifacts, exact resume, device and process invariance, data paths,
SIGTERM, and a learning check."""
import json
import os
import signal
import time

import jax
import numpy as np
import pytest
from conftest import experiment, popen_script, read_jsonl, run_main, run_processes, run_script, state_mb
from PIL import Image

from gan_jax.errors import ConfigError
from gan_jax.train import loop


def test_default_run_leaves_its_artifacts(trained_run):
  names = set(os.listdir(trained_run))
  assert {"config.json", "metrics.jsonl", "samples", "loss_curves.png", "checkpoints", "data_spec.json"} <= names
  rows = read_jsonl(os.path.join(trained_run, "metrics.jsonl"))
  assert [r["step"] for r in rows] == list(range(10, 51, 10))
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  assert "compile_s" in rows[0] and rows[-1]["images_per_sec"] > 0
  assert sorted(os.listdir(os.path.join(trained_run, "samples"))) == ["step_00000025.png", "step_00000050.png"]
  grid = np.asarray(Image.open(os.path.join(trained_run, "samples", "step_00000050.png")))
  assert grid.shape[0] >= 256 and grid.std() > 10          # 64 16x16 samples, upscaled, not blank
  assert sorted(os.listdir(os.path.join(trained_run, "checkpoints"))) == ["25", "50"]


def _digits_config(load_config, **overrides):
  c = load_config("experiments/dcgan_digits.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", **overrides})
  return c


def _flat(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_resume_is_exact(load_config, tmp_path):
  """20 steps straight == 10 steps, stop, then 10 more (bitwise)."""
  common = {"ckpt_every": 5, "sample_every": 0, "ema.halflife_kimg": 0.5, "n_critic": 2}
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "straight"))
  loop.train(_digits_config(load_config, total_steps=10, **common), str(tmp_path / "resumed"))
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "resumed"))
  *_, a, step_a = loop.load_run(str(tmp_path / "straight"))
  *_, b, step_b = loop.load_run(str(tmp_path / "resumed"))
  assert step_a == step_b == 20
  for x, y in zip(_flat(a), _flat(b), strict=True):
    np.testing.assert_array_equal(x, y)
  rows_a = read_jsonl(str(tmp_path / "straight" / "metrics.jsonl"))
  rows_b = read_jsonl(str(tmp_path / "resumed" / "metrics.jsonl"))
  assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]  # no duplicated lines
  for ra, rb in zip(rows_a, rows_b):
    assert ra["d_loss"] == rb["d_loss"] and ra["g_loss"] == rb["g_loss"]


TIMING = ("steps_per_sec", "images_per_sec", "compile_s")


def _rows_without_timing(workdir):
  return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))]


def test_logs_after_a_stop_between_log_steps_equal_an_uninterrupted_run(load_config, tmp_path, monkeypatch):
  """A stop request (SIGTERM, Ctrl-C) at step 7 with log_every 4 and ckpt_every 5: the checkpoint
  keeps the open logging interval (steps 5-7), so the resumed run's step-8 row averages steps 5-8
  as the uninterrupted run's does: metrics.jsonl equal row for row and value for value (the timing
  keys aside), and the final states equal."""
  common = {"ckpt_every": 5, "log_every": 4, "sample_every": 0, "total_steps": 12, "ema.halflife_kimg": 0.5}
  loop.train(_digits_config(load_config, **common), str(tmp_path / "straight"))
  with monkeypatch.context() as m:
    m.setattr(loop._StopFlag, "__call__", lambda self, step: step == 7)
    loop.train(_digits_config(load_config, **common), str(tmp_path / "stopped"))
  assert sorted(os.listdir(tmp_path / "stopped" / "checkpoints")) == ["5", "7"]
  assert [r["step"] for r in read_jsonl(str(tmp_path / "stopped" / "metrics.jsonl"))] == [4]
  loop.train(_digits_config(load_config, **common), str(tmp_path / "stopped"))
  straight, resumed = _rows_without_timing(tmp_path / "straight"), _rows_without_timing(tmp_path / "stopped")
  assert [r["step"] for r in straight] == [4, 8, 12]
  assert resumed == straight
  states = [loop.load_run(str(tmp_path / name))[5] for name in ("straight", "stopped")]
  for x, y in zip(_flat(states[0]), _flat(states[1]), strict=True):
    np.testing.assert_array_equal(x, y)


def _losses(workdir):
  return np.array([[r["d_loss"], r["g_loss"]] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))])


FIVE_STEPS = ["--config.total_steps=5", "--config.log_every=1", "--config.batch_size=32",
              "--config.sample_every=0", "--config.n_critic=2", "--config.ema.halflife_kimg=1.0"]



FSDP = ["--config.sharding.fsdp=True", "--config.sharding.min_size_mb=0"]


def test_one_device_equals_eight_with_fsdp_and_the_checkpoint_restores_anywhere(tmp_path):
  """5 steps on 1 device, and on 8 with G, D, EMA and Adam states split over the devices (FSDP,
  every leaf): the same losses (both in this interpreter, train.py's main on 1 and on 8 of its CPU
  devices). The 8-device checkpoint restores on 1 device (equal to the 1-device run's state) and
  resumes on 2 processes x 2 devices started by scripts/launch.py's local backend (the quick tier's one
  multi-process run), whose steps 6-7 equal those of the 1-device run resumed to step 7. The 8-device
  run also traces steps 2-3 with the profiler."""
  runs = {}
  for devices in (1, 8):
    wd = str(tmp_path / f"dev{devices}")
    extra = [*FSDP, "--config.profile_steps=2"] if devices == 8 else []
    r = run_main("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", wd,
                 *FIVE_STEPS, *extra, devices=devices)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{devices} devices" in r.stderr
    total, held = state_mb(r.stderr)
    # Replicated: each device holds the whole state; FSDP over 8: every leaf split but the few
    # whose dimensions 8 does not divide (biases of 1 or 3 channels, step counters).
    assert held == total if devices == 1 else held < total / 6, r.stderr[:400]
    runs[devices] = _losses(wd)
  assert runs[1].shape == (5, 2)
  np.testing.assert_allclose(runs[8], runs[1], atol=1e-5, rtol=0)
  traces = [f for _, _, files in os.walk(tmp_path / "dev8" / "profile") for f in files if f.endswith(".xplane.pb")]
  assert traces and "profiled steps 2-3" in r.stderr
  *_, one, _ = loop.load_run(str(tmp_path / "dev1"))
  *_, eight, step = loop.load_run(str(tmp_path / "dev8"))
  assert step == 5
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
  # Through scripts/launch.py's local backend: the same train command on 2 processes x 2 devices.
  r = run_script("launch.py", "--backend", "local", "--num_processes", "2", "--devices_per_process", "2",
                 "--log_dir", str(tmp_path / "logs"), "--", "train.py", "--config",
                 experiment("dcgan_digits") + ":runlocal", "--workdir", str(tmp_path / "dev8"), *FIVE_STEPS[1:],
                 *FSDP, "--config.total_steps=7", timeout=600)
  assert r.returncode == 0, r.stderr[-3000:] + open(tmp_path / "logs" / "process_1.log").read()[-2000:]
  assert "resuming at step 5; 4 devices, 2 processes" in r.stderr, r.stderr[-3000:]   # process 0's output
  total, held = state_mb(r.stderr)
  assert held < total / 3   # restored split over the 4 devices of 2 processes
  assert [row["step"] for row in read_jsonl(os.path.join(tmp_path, "dev8", "metrics.jsonl"))][-2:] == [6, 7]
  r = run_main("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", str(tmp_path / "dev1"),
               *FIVE_STEPS[1:], "--config.total_steps=7")
  assert r.returncode == 0, r.stderr[-3000:]
  np.testing.assert_allclose(_losses(tmp_path / "dev8")[-2:], _losses(tmp_path / "dev1")[-2:], atol=1e-5, rtol=0)


@pytest.mark.slow   # the quick tier's multi-process run is the launcher's resume in the test above
def test_two_processes_through_the_launcher_equal_one(tmp_path):
  single = str(tmp_path / "single")
  r = run_script("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", single,
                 *FIVE_STEPS, devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  multi = str(tmp_path / "multi")
  # Through scripts/launch.py's local backend: the same train command on 2 processes x 2 devices.
  r = run_script("launch.py", "--backend", "local", "--num_processes", "2", "--devices_per_process", "2",
                 "--log_dir", str(tmp_path / "logs"), "--", "train.py", "--config",
                 experiment("dcgan_digits") + ":runlocal", "--workdir", multi, *FIVE_STEPS, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:] + open(tmp_path / "logs" / "process_1.log").read()[-2000:]
  assert "4 devices, 2 processes" in r.stderr
  np.testing.assert_allclose(_losses(multi), _losses(single), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_four_processes_with_fsdp_equal_one(tmp_path):
  """4 processes x 1 device, with the state split over the 4 processes (FSDP): the losses of
  1 process x 4 devices."""
  single = str(tmp_path / "single")
  r = run_script("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", single,
                 *FIVE_STEPS, devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  four = str(tmp_path / "four")
  outs = run_processes("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", four,
                       *FIVE_STEPS, *FSDP, processes=4, devices=1)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert "4 devices, 4 processes" in outs[0][2]
  total, held = state_mb(outs[0][2])
  assert held < total / 3
  np.testing.assert_allclose(_losses(four), _losses(single), atol=1e-5, rtol=0)


def test_tfds_path_end_to_end(load_config, tmp_path):
  import tensorflow_datasets as tfds
  c = load_config("experiments/dcgan_mnist.py:runlocal")
  c.update_from_flattened_dict({"total_steps": 4, "log_every": 2, "sample_every": 4, "ckpt_every": 4,
                                "wandb.mode": "disabled"})
  with tfds.testing.mock_data(num_examples=64):
    loop.train(c, str(tmp_path))
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [2, 4]
  assert Image.open(tmp_path / "samples" / "step_00000004.png").mode == "L"


def test_image_folder_end_to_end(load_config, tmp_path):
  images = tmp_path / "images"
  images.mkdir()
  rng = np.random.default_rng(0)
  for i in range(12):
    suffix = "png" if i % 2 else "jpeg"
    Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(images / f"{i}.{suffix}")
  c = _digits_config(load_config, **{"data.name": "folder", "data.path": str(images), "total_steps": 3,
                                     "log_every": 1, "sample_every": 3, "ckpt_every": 3, "batch_size": 8})
  loop.train(c, str(tmp_path / "run"))
  assert len(read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))) == 3
  assert Image.open(tmp_path / "run" / "samples" / "step_00000003.png").mode == "RGB"


def test_sigterm_saves_and_exits_0(tmp_path):
  wd = str(tmp_path / "run")
  proc = popen_script("train.py", "--config", experiment("ring8") + ":runlocal", "--workdir", wd,
                      "--config.log_every=10", "--config.total_steps=100000", "--config.ckpt_every=100000")
  metrics = os.path.join(wd, "metrics.jsonl")
  deadline = time.time() + 120
  # Wait for the first training log (the step-0 evaluation comes before it).
  def trained():
    if not os.path.exists(metrics):
      return False
    with open(metrics) as f:
      return any(line.endswith("\n") and json.loads(line)["step"] >= 10 for line in f)
  while time.time() < deadline and not trained():
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-3000:]
  assert "stop requested" in err
  saved = [int(s) for s in os.listdir(os.path.join(wd, "checkpoints")) if s.isdigit()]
  assert len(saved) == 1 and 10 <= saved[0] < 100000
  # Rerunning resumes from the saved step.
  r = run_main("train.py", "--config", experiment("ring8") + ":runlocal", "--workdir", wd,
                 "--config.log_every=10", f"--config.total_steps={saved[0] + 10}", "--config.ckpt_every=100000")
  assert r.returncode == 0, r.stderr[-3000:]
  assert f"resuming at step {saved[0]}" in r.stderr


@pytest.mark.slow
def test_ring8_learns_six_of_eight_modes(load_config, tmp_path):
  """Non-saturating loss, seed 0, 3000 steps (ring8:runlocal): at least 6 of 8 modes."""
  c = load_config("experiments/ring8.py:runlocal")
  c.wandb.mode = "disabled"
  c.sample_every = 0
  loop.train(c, str(tmp_path))
  final = [r for r in read_jsonl(str(tmp_path / "metrics.jsonl")) if "modes_covered" in r][-1]
  assert final["step"] == 3000
  assert final["modes_covered"] >= 6, final
  assert final["high_quality_fraction"] > 0.5, final


def test_wandb_offline_needs_no_network(tmp_path):
  wd = str(tmp_path / "run")
  r = run_main("train.py", "--config", experiment("ring8") + ":runlocal", "--workdir", wd,
               "--config.total_steps=20", "--config.log_every=10", "--config.sample_every=20",
               "--config.wandb.mode=offline", env={"WANDB_MODE": "offline"})
  assert r.returncode == 0, r.stderr[-3000:]
  runs = [d for d in os.listdir(os.path.join(wd, "wandb")) if d.startswith("offline-run-")]
  assert len(runs) == 1
  # Step 0: the untrained generator's mode metrics (ring8 evaluates); then the training logs.
  assert [row["step"] for row in read_jsonl(os.path.join(wd, "metrics.jsonl"))] == [0, 10, 20]


def test_divergence_stops_with_a_message_and_keeps_checkpoints(load_config, tmp_path):
  c = load_config("experiments/ring8.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", "total_steps": 40, "log_every": 10,
                                "ckpt_every": 10, "sample_every": 0, "eval.every": 0})
  loop.train(c, str(tmp_path))                         # 40 good steps, checkpoints 10..40
  # Logged every 100 steps, checkpointed every 10: the check before the step-50 checkpoint stops
  # the run, so no checkpoint ever holds the diverged state.
  c.update_from_flattened_dict({"total_steps": 200, "log_every": 100, "optim.d.lr": 1e30, "optim.g.lr": 1e30})
  with pytest.raises(loop.TrainingDiverged,
                     match=r"NaN or Inf within steps \(40, 50\]; the last checkpoint \(step 40\) is intact"):
    loop.train(c, str(tmp_path))
  assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [20, 30, 40]


def test_nan_policy_skip_undoes_and_counts_nonfinite_steps(load_config, tmp_path):
  """nan_policy=skip: 40 good steps, then a learning rate that makes every update non-finite:
  the run goes on to step 60, each bad step is undone inside the step (the parameters stay those
  of step 40, bit for bit) and counted; a bad config value exits with the valid choices."""
  c = load_config("experiments/ring8.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", "total_steps": 40, "log_every": 10, "ckpt_every": 20,
                                "sample_every": 0, "eval.every": 0, "nan_policy": "skip"})
  loop.train(c, str(tmp_path))
  *_, good, _ = loop.load_run(str(tmp_path))
  c.update_from_flattened_dict({"total_steps": 60, "optim.d.lr": 1e30, "optim.g.lr": 1e30})
  loop.train(c, str(tmp_path))
  *_, after, step = loop.load_run(str(tmp_path))
  assert step == 60 and int(after.step) == 60 and int(after.reg_state["nonfinite_skipped"]) == 20
  for a, b in zip(_flat((good.g_params, good.d_params, good.ema_params)),
                  _flat((after.g_params, after.d_params, after.ema_params))):
    np.testing.assert_array_equal(a, b)
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["nonfinite_skipped"] for r in rows] == [0, 0, 0, 0, 10, 20]
  assert all(np.isfinite(r["d_loss"]) for r in rows)
  c.nan_policy = "ignore"
  with pytest.raises(ConfigError, match="unknown nan_policy 'ignore'; valid choices: stop, skip"):
    loop.train(c, str(tmp_path / "other"))


@pytest.mark.slow
def test_population_members_equal_separate_runs(load_config, tmp_path):
  """population=3 trains seeds 5, 6, 7 as one vmap-ed program: member i == the run with seed 5+i."""
  common = {"total_steps": 6, "log_every": 2, "sample_every": 6, "ckpt_every": 6, "seed": 5}
  loop.train(_digits_config(load_config, population=3, **common), str(tmp_path / "pop"))
  pop_rows = read_jsonl(str(tmp_path / "pop" / "metrics.jsonl"))
  *_, pop_state, _ = loop.load_run(str(tmp_path / "pop"))
  for i in (0, 2):
    wd = str(tmp_path / f"seed{5 + i}")
    loop.train(_digits_config(load_config, **{**common, "seed": 5 + i}), wd)
    rows = read_jsonl(os.path.join(wd, "metrics.jsonl"))
    for r, p in zip(rows, pop_rows):
      np.testing.assert_allclose(p["d_loss"][i], r["d_loss"], atol=1e-5)
      np.testing.assert_allclose(p["g_loss"][i], r["g_loss"], atol=1e-5)
    *_, single, _ = loop.load_run(wd)
    for a, b in zip(_flat(loop.member(pop_state, i, 3)), _flat(single)):
      np.testing.assert_allclose(a, b, atol=1e-5)
  assert os.path.exists(tmp_path / "pop" / "samples" / "step_00000006.png")


def test_population_on_the_2d_mixture_logs_member_metrics(load_config, tmp_path):
  c = load_config("experiments/ring8.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", "population": 4, "total_steps": 20, "log_every": 10,
                                "eval.every": 10, "sample_every": 20, "ckpt_every": 20})
  loop.train(c, str(tmp_path))
  last = read_jsonl(str(tmp_path / "metrics.jsonl"))[-1]
  assert len(last["modes_covered"]) == 4 and len(last["d_loss"]) == 4
  r = run_main("sample.py", "--workdir", str(tmp_path), "--num", "10", "--out", str(tmp_path / "m3.npy"),
               "--member", "3")
  assert r.returncode == 0, r.stderr[-2000:]
  assert np.load(tmp_path / "m3.npy").shape == (10, 2)


@pytest.mark.slow
def test_resume_with_another_process_count_derives_the_data_position(load_config, tmp_path):
  """A checkpoint whose data item was written by 2 processes still resumes exactly on 1."""
  common = {"ckpt_every": 10, "sample_every": 0, "n_critic": 2}
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "straight"))
  loop.train(_digits_config(load_config, total_steps=10, **common), str(tmp_path / "moved"))
  data = tmp_path / "moved" / "checkpoints" / "10" / "data"
  os.rename(data / "process_0-of-1.json", data / "process_0-of-2.json")
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "moved"))
  *_, a, _ = loop.load_run(str(tmp_path / "straight"))
  *_, b, _ = loop.load_run(str(tmp_path / "moved"))
  for x, y in zip(_flat(a), _flat(b), strict=True):
    np.testing.assert_array_equal(x, y)
