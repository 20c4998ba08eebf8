"""Fault injection: each failure is made to happen for real (signals, leftover files, a failing
wandb writer) and the run must survive it with nothing lost."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest
from conftest import ROOT, experiment, free_port, popen_script, read_jsonl, run_main, run_processes, run_script

from gan_jax import logging as logs

RUNLOCAL = experiment("dcgan_digits") + ":runlocal"


def _wait_for(predicate, timeout: float, what: str) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    if time.monotonic() > deadline:
      raise AssertionError(f"timed out waiting for {what}")
    time.sleep(0.1)


@pytest.mark.slow
def test_second_run_refuses_a_live_workdir_and_a_killed_run_leaves_it_free(tmp_path):
  run = str(tmp_path / "run")
  args = ("--config", RUNLOCAL, "--workdir", run, "--config.total_steps=100000", "--config.ckpt_every=20")
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "WANDB_MODE": "disabled"}
  first = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args], env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    ckpts = os.path.join(run, "checkpoints")
    _wait_for(lambda: os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts)), 180,
              "the first run's first checkpoint")
    with open(os.path.join(run, "lock")) as f:
      holder = json.load(f)
    assert holder["pid"] == first.pid
    r = run_script("train.py", *args)
    assert r.returncode == 2
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: workdir {run} is in use by another run (") and f'"pid": {first.pid}' in line
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  # What a kill during an asynchronous checkpoint write leaves: an uncommitted temporary directory.
  steps = sorted(int(n) for n in os.listdir(ckpts) if n.isdigit())
  torn = os.path.join(ckpts, f"{steps[-1] + 20}.orbax-checkpoint-tmp-1234567")
  os.makedirs(os.path.join(torn, "state"))
  with open(os.path.join(torn, "state", "partial"), "wb") as f:
    f.write(b"\0" * 100)
  # The dead run's lock is gone with it: the same command resumes from its newest checkpoint,
  # names the interrupted write in a warning, never loads it and leaves it in place.
  r = run_script("train.py", *args[:-2], f"--config.total_steps={steps[-1] + 40}", "--config.ckpt_every=20")
  assert r.returncode == 0, r.stderr[-3000:]
  assert f"resuming at step {steps[-1]}" in r.stderr
  assert f"warning: ignoring {torn}, a checkpoint write that never completed" in r.stderr
  assert os.path.exists(os.path.join(torn, "state", "partial"))
  rows = read_jsonl(os.path.join(run, "metrics.jsonl"))
  assert [r["step"] for r in rows] == sorted({r["step"] for r in rows}) and rows[-1]["step"] == steps[-1] + 40


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
  """scripts/soak.py with 4 kills (seeded times, half of them SIGTERMs), a checkpoint every 3 steps and a
  metrics.jsonl row every 5: the final state and every metrics.jsonl value equal the uninterrupted
  run's; no torn or repeated line."""
  r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "soak.py"), "--kills", "4", "--steps", "40",
                      "--ckpt_every", "3", "--log_every", "5", "--sigterm", "0.5", "--seed", "1",
                      "--root", str(tmp_path / "soak"),
                      "--set", "sample_every=10"],
                     env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}, cwd=ROOT,
                     capture_output=True, text=True, timeout=900)
  assert r.returncode == 0, r.stdout + r.stderr[-3000:]
  summary = json.loads(r.stdout.strip().splitlines()[-1])
  assert summary["equal_to_reference"]
  assert summary["kills"] + summary["sigterms"] + summary["finished_before_kill"] >= 1


class _FailingRun:
  """A wandb run whose service goes away after `ok` calls."""

  def __init__(self, ok: int):
    self.ok, self.logged = ok, []

  def log(self, row, step):
    if len(self.logged) >= self.ok:
      raise ConnectionError("wandb service unreachable")
    self.logged.append(step)

  def finish(self):
    raise ConnectionError("wandb service unreachable")


def test_wandb_failing_mid_run_keeps_every_local_line(tmp_path):
  path = str(tmp_path / "metrics.jsonl")
  run = _FailingRun(ok=2)
  writer = logs.MetricWriter(path, run)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for step in range(1, 6):
      writer.write(step, {"d_loss": 0.1 * step})
    writer.close()
  assert run.logged == [1, 2] and writer.wandb_run is None
  assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3, 4, 5]
  assert sum("wandb logging failed, continuing with local logs only" in str(w.message) for w in caught) == 1


def test_wandb_that_cannot_start_leaves_a_warning_and_local_logging(monkeypatch, capsys, tmp_path):
  import types

  from gan_jax.config import base_config

  def broken_init(**kwargs):
    raise ConnectionError("no route to api.wandb.ai")
  monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=broken_init))
  config = base_config()
  config.wandb.mode = "online"
  assert logs.init_wandb(config, str(tmp_path)) is None
  assert "warning: wandb could not start (no route to api.wandb.ai); logging locally only" in capsys.readouterr().err


@pytest.mark.slow
def test_bad_image_files_are_skipped_counted_and_named(tmp_path):
  """A folder with good images, images of other sizes and channel layouts (converted), files that
  are not images (left out at start, counted) and a truncated PNG (replaced when read, named,
  logged as data_skipped); a folder with nothing usable exits 2."""
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(0)
  data = tmp_path / "images"
  data.mkdir()
  for i in range(9):
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(data / f"good{i}.png")
  Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(data / "grey.png")
  Image.fromarray(rng.integers(0, 255, (12, 20, 4), dtype=np.uint8)).save(data / "rgba.png")
  (data / "empty.png").write_bytes(b"")
  (data / "text.jpg").write_bytes(b"this is not an image")
  full = (data / "good0.png").read_bytes()
  (data / "truncated.png").write_bytes(full[:len(full) // 2])
  args = ("--config", RUNLOCAL, "--workdir", str(tmp_path / "run"), "--config.data.name=folder",
          f"--config.data.path={data}", "--config.data.resolution=16", "--config.data.channels=1",
          "--config.batch_size=8", "--config.total_steps=6", "--config.log_every=6", "--config.sample_every=0")
  r = run_script("train.py", *args)
  assert r.returncode == 0, r.stderr[-3000:]
  assert f"skipped 2 of 14 files under {data} that are not readable images (e.g. {data / 'empty.png'})" in r.stderr
  assert f"skipping {data / 'truncated.png'}: cannot decode it" in r.stderr
  assert read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))[-1]["data_skipped"] == 1
  for f in [*data.glob("good*.png"), data / "grey.png", data / "rgba.png"]:
    f.unlink()
  r = run_script("train.py", *args)
  assert r.returncode == 2
  assert ("no usable image under data.path" in r.stderr.strip().splitlines()[-1]
          and "none of its 3 files can be decoded" in r.stderr)


@pytest.mark.slow
def test_multi_host_run_with_a_killed_process_stops_and_resumes(tmp_path):
  """Two processes on 127.0.0.1; kill -9 of the non-coordinator: the coordinator stops with an
  error within a bounded time (heartbeat timeout 10 s here) instead of waiting in a collective
  forever, and rerunning the command on both processes resumes from the newest checkpoint."""
  run = str(tmp_path / "run")
  args = ("--config", RUNLOCAL, "--workdir", run, "--config.ckpt_every=20")
  env = {"GAN_JAX_HEARTBEAT_TIMEOUT_S": "10", "WANDB_MODE": "disabled"}
  port = free_port()
  procs = []
  for pid in range(2):
    full = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_NUM_CPU_DEVICES": "1",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(pid),
            **env}
    procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args,
                                   "--config.total_steps=100000"], env=full, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
  try:
    ckpts = os.path.join(run, "checkpoints")
    _wait_for(lambda: os.path.isdir(ckpts) and any(n.isdigit() for n in os.listdir(ckpts)), 240,
              "the first checkpoint")
    procs[1].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    code = procs[0].wait(timeout=120)
    assert code != 0 and time.monotonic() - t0 < 60
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  latest = max(int(n) for n in os.listdir(ckpts) if n.isdigit())
  outs = run_processes("train.py", *args, f"--config.total_steps={latest + 10}", processes=2, devices=1, env=env)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert f"resuming at step {latest}" in outs[0][2]


@pytest.fixture
def small_disk(tmp_path):
  """An 8 MB tmpfs (needs root and mount privileges; skipped elsewhere)."""
  path = tmp_path / "disk"
  path.mkdir()
  r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(path)], capture_output=True, text=True)
  if r.returncode != 0:
    pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or r.returncode}); needs root")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.slow
def test_disk_full_and_read_only_workdir_stop_cleanly_and_keep_checkpoints(small_disk):
  run = small_disk / "run"
  args = ("--config", RUNLOCAL, "--workdir", str(run), "--config.ckpt_every=10", "--config.log_every=10",
          "--config.sample_every=0")
  r = run_script("train.py", *args, "--config.total_steps=20")
  assert r.returncode == 0, r.stderr[-3000:]
  free_kb = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize // 1024
  with open(small_disk / "filler", "wb") as f:          # leave 40 KB: less than a checkpoint
    f.write(b"\0" * ((free_kb - 40) * 1024))
  r = run_script("train.py", *args, "--config.total_steps=40")
  assert r.returncode == 1
  line = r.stderr.strip().splitlines()[-1]
  assert line.startswith(f"error: cannot write checkpoint step 30 to {run / 'checkpoints'}: ")
  assert "MB free, a checkpoint needs about" in line and "the saved checkpoints (steps 10, 20) are intact" in line
  assert sorted(os.listdir(run / "checkpoints")) == ["10", "20"]
  # Read-only: the same clear stop.
  os.remove(small_disk / "filler")
  subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
  r = run_script("train.py", *args, "--config.total_steps=40")
  assert r.returncode in (1, 2) and r.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "Traceback" not in r.stderr
  subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
  assert sorted(os.listdir(run / "checkpoints")) == ["10", "20"]
  # With space again, the same command resumes and finishes.
  r = run_script("train.py", *args, "--config.total_steps=40")
  assert r.returncode == 0 and "resuming at step 20" in r.stderr, r.stderr[-3000:]


def test_an_empty_tfds_split_is_a_config_error():
  import tensorflow_datasets as tfds

  from gan_jax.config import base_config
  from gan_jax.data import build_dataset
  from gan_jax.errors import ConfigError
  c = base_config().data
  c.name = "cifar10"
  with tfds.testing.mock_data(num_examples=0), pytest.raises(ConfigError, match="split 'train' is empty"):
    build_dataset(c)


# --- Damaged checkpoints -------------------------------------------------------------------------------
# The files Orbax writes for a checkpoint step: array data (the OCDBT data files), array metadata
# (the tree's _METADATA, per-process array metadata, the OCDBT manifest), the checkpoint's metadata,
# and grain's data-iterator state.
ARRAY_DATA, ARRAY_METADATA = "state/d/*", "state/_METADATA"
def _truncate(path: str) -> None:
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _garbage(path: str) -> None:
  with open(path, "wb") as f:
    f.write(b"\x00not what Orbax wrote\x00" * 8)


DAMAGES = {"truncate": _truncate, "delete": os.remove, "garbage": _garbage}


def _damage(workdir: str, step: int, pattern: str, how: str) -> str:
  import glob
  files = sorted(glob.glob(os.path.join(workdir, "checkpoints", str(step), pattern)))
  assert files, pattern
  DAMAGES[how](files[0])
  return files[0]


@pytest.fixture
def run_copy(trained_run, tmp_path):
  """A copy of the finished 50-step run (checkpoints 25 and 50) to damage."""
  import shutil
  target = str(tmp_path / "run")
  shutil.copytree(trained_run, target)
  return target


@pytest.mark.parametrize("pattern,how", [(ARRAY_DATA, "truncate"), (ARRAY_DATA, "delete"), (ARRAY_DATA, "garbage"),
                                         (ARRAY_METADATA, "truncate"), (ARRAY_METADATA, "delete"),
                                         (ARRAY_METADATA, "garbage"), ("state/manifest.ocdbt", "delete"),
                                         ("state/array_metadatas/process_0", "garbage")])
def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_one_before_is_used(run_copy, pattern, how, capsys):
  """sample.py, evaluate.py and translate.py read runs through load_run, as the trainer's restore:
  the damaged step goes to checkpoints/damaged/50 (kept, not deleted) with a warning naming it."""
  from gan_jax.train import loop
  _damage(run_copy, 50, pattern, how)
  *_, step = loop.load_run(run_copy)
  assert step == 25
  assert sorted(os.listdir(os.path.join(run_copy, "checkpoints", "damaged"))) == ["50"]
  assert "50" not in os.listdir(os.path.join(run_copy, "checkpoints"))
  err = capsys.readouterr().err
  assert "warning: checkpoint step 50 is damaged (" in err and "moved to" in err


def test_damage_that_no_read_touches_is_not_damage(run_copy):
  """The checkpoint-level metadata and the array sharding file are not needed to read the state back:
  garbage there leaves the checkpoint in use."""
  from gan_jax.train import loop
  _damage(run_copy, 50, "_CHECKPOINT_METADATA", "garbage")
  _damage(run_copy, 50, "state/_sharding", "garbage")
  assert loop.load_run(run_copy)[-1] == 50


def test_training_resumes_from_the_newest_intact_checkpoint_and_none_intact_is_one_line(run_copy):
  """train.py on a run whose newest checkpoint lost an array file resumes from step 25 (exit 0); the
  data-iterator state of a checkpoint in garbage is recomputed from the step with a warning; when no
  checkpoint is intact: exit 1, one line naming them, the damaged ones kept."""
  _damage(run_copy, 50, ARRAY_DATA, "truncate")
  _damage(run_copy, 25, "data/process_0-of-1.json", "garbage")
  r = run_main("train.py", "--config", RUNLOCAL, "--workdir", run_copy, "--config.total_steps=30")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "checkpoint step 50 is damaged" in r.stderr and "resuming at step 25" in r.stderr
  assert "the data position in" in r.stderr and "follows from the step (25)" in r.stderr
  assert sorted(os.listdir(os.path.join(run_copy, "checkpoints", "damaged"))) == ["50"]
  for step in (25, 30):
    _damage(run_copy, step, ARRAY_METADATA, "garbage")
  r = run_main("sample.py", "--workdir", run_copy, "--num", "4", "--out", os.path.join(run_copy, "x.png"))
  assert r.returncode == 1, r.stderr[-3000:]
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("error: no intact checkpoint in") and "step 30 damaged" in last and "step 25 damaged" in last
  assert sorted(os.listdir(os.path.join(run_copy, "checkpoints", "damaged"))) == ["25", "30", "50"]


# --- The smaller breaks of the contract ----------------------------------------------------------------

def test_damaged_metrics_lines_are_kept_aside_with_a_warning(tmp_path, capsys):
  path = str(tmp_path / "metrics.jsonl")
  with open(path, "w") as f:
    f.write('{"step": 1, "d_loss": 0.5}\n{"step": 2, "d_lo\x00ss": garbage\n{"step": 3, "d_loss": 0.25}\n'
            '{"step": 4, "d_loss": 0.1}\n{"step": 5, "d_lo')
  logs.truncate_jsonl(path, 3)
  assert [r["step"] for r in read_jsonl(path)] == [1, 3]
  with open(path + ".damaged") as f:
    assert f.read() == '{"step": 2, "d_lo\x00ss": garbage\n'   # the torn last line (no newline) is not kept
  assert "1 damaged line(s) of" in capsys.readouterr().err


def test_the_changed_keys_message_names_only_keys_that_shape_the_state(tmp_path):
  from gan_jax import cli
  from gan_jax.train import loop
  config = cli.load_experiment(RUNLOCAL)
  with open(tmp_path / "config.json", "w") as f:
    json.dump(config.to_dict(), f)
  changed = cli.load_experiment(RUNLOCAL)
  changed.total_steps, changed.log_every, changed.model.g_width = 7, 3, 8
  message = loop.incompatible_resume_message(str(tmp_path), changed, 50, None)
  assert "(changed keys: model.g_width (16 -> 8));" in message and "total_steps" not in message


def test_a_divergence_before_any_checkpoint_says_so():
  import numpy as np

  from gan_jax.errors import TrainingDiverged
  from gan_jax.train import loop
  with pytest.raises(TrainingDiverged, match=r"d_loss became NaN or Inf within steps \(0, 10\]; no checkpoint was "
                     "saved yet"):
    loop.check_finite({"d_loss": np.nan, "g_loss": 1.0}, 10, 10, None)
  with pytest.raises(TrainingDiverged, match=r"the last checkpoint \(step 20\) is intact"):
    loop.check_finite({"d_loss": np.inf}, 30, 10, 20)


def test_a_grey_folder_keeps_one_channel_and_a_bad_folder_is_one_error_line(tmp_path, capsys):
  import numpy as np
  from PIL import Image

  from gan_jax.config import base_config
  from gan_jax.data import build_dataset
  from gan_jax.errors import ConfigError
  grey = tmp_path / "grey"
  grey.mkdir()
  for i in range(3):
    Image.fromarray(np.full((20, 20), 40 * i, np.uint8)).save(grey / f"{i}.png")
  c = base_config().data
  c.update(name="folder", path=str(grey), resolution=16, channels=0)
  assert build_dataset(c).spec.shape == (16, 16, 1)
  Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(grey / "rgb.png")
  assert build_dataset(c).spec.shape == (16, 16, 3)   # mixed: RGB
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "a.png").write_bytes(b"not an image")
  full = (grey / "0.png").read_bytes()
  (bad / "b.png").write_bytes(full[:40])
  c.update(path=str(bad), channels=1)
  capsys.readouterr()
  with pytest.raises(ConfigError, match="no usable image under data.path"):
    build_dataset(c)
  assert capsys.readouterr().err == ""


# --- Ctrl-C --------------------------------------------------------------------------------------------

def _start(args, wd, config=RUNLOCAL):
  return popen_script("train.py", "--config", config, "--workdir", wd, *args, stdout=subprocess.DEVNULL)


# The ring's MLPs, evaluation off: a run that trains within seconds of its start.
RING = experiment("ring8") + ":runlocal"


def _read_until(proc, text: str, timeout: float = 300) -> str:
  """stderr of `proc` up to the line containing `text`."""
  seen, deadline = [], time.monotonic() + timeout
  for line in proc.stderr:
    seen.append(line)
    if text in line or time.monotonic() > deadline:
      break
  return "".join(seen)


def test_ctrl_c_is_a_stop_request_and_a_second_one_stops_without_saving(tmp_path):
  """A first SIGINT while training (the ring's toy, in this interpreter: train.py's main with its signal
  handlers): the step is saved, one line, exit 0, and the run resumes from it; a SIGINT during set-up and
  compilation (DCGAN's, a process of its own: it exits at once): stopped at once (one error line, exit 130),
  nothing saved. (Two SIGINTs sent at once reach Python's handler once: the second one is checked
  in-process below.)"""
  wd = str(tmp_path / "run")
  args = ["--config.total_steps=100000", "--config.ckpt_every=100000", "--config.log_every=5",
          "--config.sample_every=0", "--config.eval.every=0"]
  metrics = os.path.join(wd, "metrics.jsonl")
  done = threading.Event()

  def interrupt_when_training():   # a first logged row: the run is in its training loop, its handler set
    while not done.is_set() and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
      time.sleep(0.1)
    time.sleep(0.5)
    if not done.is_set():
      os.kill(os.getpid(), signal.SIGINT)

  before = signal.getsignal(signal.SIGINT)
  watcher = threading.Thread(target=interrupt_when_training, daemon=True)
  watcher.start()
  try:
    r = run_main("train.py", "--config", RING, "--workdir", wd, *args)
  finally:
    done.set()
    watcher.join()
  assert signal.getsignal(signal.SIGINT) == before
  assert r.returncode == 0, r.stderr[-3000:]
  assert "stop requested (Ctrl-C)" in r.stderr and "Traceback" not in r.stderr
  saved = [int(s) for s in os.listdir(os.path.join(wd, "checkpoints")) if s.isdigit()]
  assert len(saved) == 1 and saved[0] >= 5
  assert max(row["step"] for row in read_jsonl(metrics)) <= saved[0]

  r = run_main("train.py", "--config", RING, "--workdir", wd, *args[1:], f"--config.total_steps={saved[0] + 1}")
  assert r.returncode == 0 and f"resuming at step {saved[0]}" in r.stderr, r.stderr[-3000:]

  fresh = str(tmp_path / "fresh")   # DCGAN: a set-up and compilation long enough to interrupt
  proc = _start(args, fresh)
  _read_until(proc, "gan_jax: starting")   # then the step compiles
  t0 = time.monotonic()
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 130 and time.monotonic() - t0 < 20, err[-3000:]
  assert "error: interrupted (Ctrl-C) during set-up or compilation" in err and "Traceback" not in err
  assert not [s for s in os.listdir(os.path.join(fresh, "checkpoints")) if s.isdigit()]


def test_a_second_ctrl_c_stops_without_saving_in_one_line(capsys):
  """The trainer's handler: the first SIGINT is a stop request, the second raises KeyboardInterrupt,
  which every script turns into one error line and exit 130."""
  from gan_jax import cli
  from gan_jax.train import loop
  before = signal.getsignal(signal.SIGINT)
  flag = loop._StopFlag()
  try:
    flag.training()
    flag._interrupt(signal.SIGINT, None)
    assert flag(1) and "stop requested (Ctrl-C)" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
      flag._interrupt(signal.SIGINT, None)
  finally:
    flag.close()
  assert signal.getsignal(signal.SIGINT) == before   # restored for the caller

  def interrupted(argv):
    raise KeyboardInterrupt
  assert cli.main(interrupted, ["train.py", "--workdir", "x"]) == 130
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: interrupted (a second Ctrl-C)")
