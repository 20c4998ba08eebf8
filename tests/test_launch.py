"""scripts/launch.py: the commands each backend runs, and the local backend for real."""
import shlex
import sys
import time

import pytest
from conftest import ROOT, run_main, run_script

TRAIN = ("train.py", "--config", "experiments/dcgan_digits.py:runlocal", "--workdir", "runs/x")


def _dry(*args):
  r = run_main("launch.py", *args, "--dry-run", "--", *TRAIN)
  assert r.returncode == 0, r.stderr
  return [shlex.split(line) for line in r.stdout.strip().splitlines()]


def test_dry_run_commands_of_every_backend():
  local = _dry("--backend", "local", "--num_processes", "3", "--devices_per_process", "2")
  assert len(local) == 3
  ports = set()
  for i, words in enumerate(local):
    env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-") and w.split("=")[0].isupper())
    assert env["JAX_PROCESS_ID"] == str(i) and env["JAX_NUM_PROCESSES"] == "3" and env["JAX_NUM_CPU_DEVICES"] == "2"
    assert env["JAX_COORDINATOR_ADDRESS"].startswith("127.0.0.1:")
    ports.add(env["JAX_COORDINATOR_ADDRESS"])
    assert words[-5:] == [f"{ROOT}/scripts/train.py", *TRAIN[1:]] and words[-6] == sys.executable
  assert len(ports) == 1
  (slurm,) = _dry("--backend", "slurm", "--nodes", "4", "--gpus_per_node", "8", "--slurm_arg=--partition=gpu")
  assert slurm[:6] == ["srun", "--nodes=4", "--ntasks-per-node=8", "--gpus-per-node=8", "--gpus-per-task=1",
                       "--partition=gpu"]
  assert slurm[-5:] == [f"{ROOT}/scripts/train.py", *TRAIN[1:]]
  (tpu,) = _dry("--backend", "tpu-vm", "--tpu", "pod", "--zone", "us-central2-b", "--project", "p",
                "--repo_dir", "~/gan_jax")
  assert tpu[:9] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "--project=p", "pod", "--zone=us-central2-b",
                     "--worker=all"]
  # The worker's own checkout: ~ expanded by its shell, the script relative to the repository, and
  # jax.distributed started from the TPU metadata.
  assert tpu[9] == "--command=cd ~/gan_jax && GAN_JAX_DISTRIBUTED=1 python3 " + shlex.join(
      ["scripts/train.py", *TRAIN[1:]])


def test_bad_launches_exit_2_with_one_line():
  for args, message in ((("--backend", "mpi"), "argument --backend: invalid choice: 'mpi'"),
                        (("--backend", "tpu-vm"), "--backend tpu-vm needs --tpu NAME and --zone ZONE"),
                        (("--backend", "local", "--num_processes", "0"), "must be >= 1")):
    r = run_main("launch.py", *args, "--", *TRAIN)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and message in r.stderr, (args, r.stderr)
  r = run_main("launch.py", "--backend", "local")
  assert r.returncode == 2 and "nothing to launch" in r.stderr
  r = run_main("launch.py", "--backend", "slurm", "--", *TRAIN, env={"PATH": "/nonexistent"})
  assert r.returncode == 2 and "error: srun not found" in r.stderr


def test_local_backend_stops_the_others_when_one_process_fails(tmp_path):
  code = ("import os, sys, time\n"
          "sys.exit(3) if os.environ['JAX_PROCESS_ID'] == '1' else time.sleep(120)")
  t0 = time.monotonic()
  r = run_script("launch.py", "--backend", "local", "--num_processes", "3", "--log_dir", str(tmp_path),
                 "--", sys.executable, "-c", code, timeout=100)
  assert r.returncode == 3 and time.monotonic() - t0 < 60


@pytest.mark.parametrize("env,starts", [({}, False), ({"GAN_JAX_DISTRIBUTED": "1"}, True),
                                        ({"SLURM_NTASKS": "8"}, True), ({"SLURM_NTASKS": "1"}, False),
                                        ({"TPU_WORKER_HOSTNAMES": "w0,w1"}, True)])
def test_initialize_starts_jax_distributed_from_the_environment(monkeypatch, env, starts):
  """What the launchers set (GAN_JAX_DISTRIBUTED=1 on TPU VMs, SLURM's task count) starts the
  multi-controller runtime with JAX's own detection; a single process starts nothing."""
  import jax

  from gan_jax import parallel
  for k in ("GAN_JAX_DISTRIBUTED", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES", "JAX_COORDINATOR_ADDRESS"):
    monkeypatch.delenv(k, raising=False)
  for k, v in env.items():
    monkeypatch.setenv(k, v)
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  parallel.initialize()
  assert bool(calls) == starts
  if starts:
    assert set(calls[0]) == {"heartbeat_timeout_seconds"}   # coordinator and ids left to JAX's detection
