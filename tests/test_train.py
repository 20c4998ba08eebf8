"""The trainer end to end through scripts/train.py: artifacts, device and process invariance, SIGTERM,
wandb offline, a population's samples, and a learning check (more in test_train_loop.py)."""
import json
import os
import signal
import time

import jax
import numpy as np
import pytest
from conftest import experiment, popen_script, read_jsonl, run_main, run_processes, run_script, state_mb
from PIL import Image

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


def _losses(workdir):
  return np.array([[r["d_loss"], r["g_loss"]] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))])


FIVE_STEPS = ["--config.total_steps=5", "--config.log_every=1", "--config.batch_size=32",
              "--config.sample_every=0", "--config.n_critic=2", "--config.ema.halflife_kimg=1.0"]


FSDP = ["--config.sharding.fsdp=True", "--config.sharding.min_size_mb=0"]
# The ring's MLPs (a step compiles in about a second). Adam's eps 1e-3: its first updates are
# g / (|g| + eps), so a weight whose gradient is float noise would move by lr with a random sign between
# programs that round differently (1 vs 8 devices).
RING = ["--config", experiment("ring8") + ":runlocal", "--config.eval.every=0", "--config.optim.g.eps=1e-3",
        "--config.optim.d.eps=1e-3"]


def test_one_device_equals_eight_with_fsdp_and_the_checkpoint_restores_anywhere(tmp_path):
  """5 steps of the 2-D ring's MLPs on 1 device, and on 8 with G, D, EMA and Adam states split over the
  devices (FSDP, every leaf): the same losses (both in this interpreter, train.py's main on 1 and on 8 of its CPU
  devices). The 8-device checkpoint restores on 1 device (equal to the 1-device run's state) and
  resumes on 2 processes x 2 devices started by scripts/launch.py's local backend (the quick tier's one
  multi-process run), whose steps 6-7 equal those of the 1-device run resumed to step 7. The 8-device
  run also traces steps 2-3 with the profiler. (The same with DCGAN's convolutions: the full tier's
  test_two_processes_through_the_launcher_equal_one and test_scale_out.py.)"""
  runs = {}
  for devices in (1, 8):
    wd = str(tmp_path / f"dev{devices}")
    extra = [*FSDP, "--config.profile_steps=2"] if devices == 8 else []
    r = run_main("train.py", *RING, "--workdir", wd,
                 *FIVE_STEPS, *extra, devices=devices)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{devices} devices" in r.stderr
    total, held = state_mb(r.stderr)
    # Replicated: each device holds the whole state; FSDP over 8: every leaf split but the few
    # whose dimensions 8 does not divide (the output layer's 2 biases, step counters).
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
                 "--log_dir", str(tmp_path / "logs"), "--", "train.py", *RING, "--workdir", str(tmp_path / "dev8"),
                 *FIVE_STEPS[1:], *FSDP, "--config.total_steps=7", timeout=600)
  assert r.returncode == 0, r.stderr[-3000:] + open(tmp_path / "logs" / "process_1.log").read()[-2000:]
  assert "resuming at step 5; 4 devices, 2 processes" in r.stderr, r.stderr[-3000:]   # process 0's output
  total, held = state_mb(r.stderr)
  assert held < total / 3   # restored split over the 4 devices of 2 processes
  assert [row["step"] for row in read_jsonl(os.path.join(tmp_path, "dev8", "metrics.jsonl"))][-2:] == [6, 7]
  r = run_main("train.py", *RING, "--workdir", str(tmp_path / "dev1"),
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


def test_sigterm_saves_and_exits_0(tmp_path):
  wd = str(tmp_path / "run")
  proc = popen_script("train.py", "--config", experiment("ring8") + ":runlocal", "--workdir", wd,
                      "--config.log_every=10", "--config.total_steps=100000", "--config.ckpt_every=100000",
                      "--config.eval.every=0")
  metrics = os.path.join(wd, "metrics.jsonl")
  deadline = time.time() + 120
  # Wait for the first training log.
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
                 "--config.log_every=10", f"--config.total_steps={saved[0] + 10}", "--config.ckpt_every=100000",
                 "--config.eval.every=0")
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


def test_population_on_the_2d_mixture_logs_member_metrics(load_config, tmp_path, monkeypatch):
  """A 4-member run logs every member's metrics, and sample.py draws from any member; the loop hands
  config.population_impl to over_members (the unrolled form's numbers: test_kinds.py; it runs vmap here,
  because at the quick tier's LLVM level 0 XLA:CPU computes NaN gradients in this MLP's unrolled step from
  the second step on, where the default level gives the vmap-ed run's losses to 1e-6 over 20 steps)."""
  c = load_config("experiments/ring8.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", "population": 4, "total_steps": 20, "log_every": 10,
                                "eval.every": 10, "sample_every": 20, "ckpt_every": 20, "population_impl": "unroll"})
  impls, over_members = [], loop.over_members
  monkeypatch.setattr(loop, "over_members", lambda step, impl: impls.append(impl) or over_members(step, "vmap"))
  loop.train(c, str(tmp_path))
  assert impls == ["unroll"]
  last = read_jsonl(str(tmp_path / "metrics.jsonl"))[-1]
  assert len(last["modes_covered"]) == 4 and len(last["d_loss"]) == 4
  r = run_main("sample.py", "--workdir", str(tmp_path), "--num", "10", "--out", str(tmp_path / "m3.npy"),
               "--member", "3")
  assert r.returncode == 0, r.stderr[-2000:]
  assert np.load(tmp_path / "m3.npy").shape == (10, 2)
