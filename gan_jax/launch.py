"""Running one command on every host of a TPU pod slice, a SLURM allocation or N local processes.

The command itself (`scripts/train.py ...`, `scripts/evaluate.py ...`) is the same everywhere:
`gan_jax.parallel.initialize` finds the coordinator from the environment, so a launcher only has
to start one process per host (or per GPU) with that environment:

- `local`: N processes on this machine, coordinator 127.0.0.1:<free port>, JAX_COORDINATOR_ADDRESS /
  JAX_NUM_PROCESSES / JAX_PROCESS_ID set for each, `devices_per_process` simulated CPU devices
  each (tests and rehearsal of a multi-host run). Process 0's output goes to the terminal, the
  others' to `<log_dir>/process_<i>.log`; when one fails, the others are stopped.
- `slurm`: `srun` with one task per node or per GPU; JAX reads SLURM_* itself.
- `tpu-vm`: `gcloud compute tpus tpu-vm ssh NAME --worker=all --command ...`: every worker of the
  slice runs the script (its path relative to the repository) in its checkout at `repo_dir`, with
  GAN_JAX_DISTRIBUTED=1, so `initialize` calls `jax.distributed.initialize()`, which reads the
  coordinator from the TPU metadata.

`plan(...)` returns the commands (and environments) it would run; `--dry-run` prints them so
users can adapt them to their cluster.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from gan_jax.errors import ConfigError

BACKENDS = ("local", "slurm", "tpu-vm")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Process:
  argv: list[str]
  env: dict[str, str]            # set on top of the launcher's environment

  def shell(self) -> str:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
    return f"{prefix} {shlex.join(self.argv)}".strip()


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def script_argv(command: list[str]) -> list[str]:
  """`train.py --config ...` or `scripts/train.py ...` -> [python, REPO/scripts/train.py, ...]."""
  if not command:
    raise ConfigError("nothing to launch: give the command after --, e.g. -- train.py --config ... --workdir ...")
  script = command[0]
  if not script.endswith(".py"):
    return list(command)
  path = script if os.path.exists(script) else os.path.join(REPO, "scripts", os.path.basename(script))
  if not os.path.exists(path):
    raise ConfigError(f"no script {script!r} (looked in the current folder and {os.path.join(REPO, 'scripts')})")
  return [sys.executable, os.path.abspath(path), *command[1:]]


def _remote_dir(path: str) -> str:
  """`path` quoted for a remote shell, a leading ~ left to that shell (the worker's home)."""
  if path == "~" or path.startswith("~/"):
    rest = path[2:]
    return "~/" + shlex.quote(rest) if rest else "~"
  return shlex.quote(path)


def _in_repo(args: list[str]) -> list[str]:
  """The script path relative to the repository (the workers have their own checkout at --repo_dir)."""
  if args and os.path.isabs(args[0]) and args[0].startswith(REPO + os.sep):
    return [os.path.relpath(args[0], REPO), *args[1:]]
  return args


def plan(backend: str, command: list[str], *, num_processes: int = 2, devices_per_process: int = 1,
         nodes: int = 1, gpus_per_node: int = 0, slurm_args: tuple[str, ...] = (), tpu: str = "",
         zone: str = "", project: str = "", repo_dir: str = "") -> list[Process]:
  """The processes `backend` starts for `command` (see the module docstring)."""
  if backend not in BACKENDS:
    raise ConfigError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
  argv = script_argv(command)
  if backend == "local":
    if num_processes < 1 or devices_per_process < 1:
      raise ConfigError("--num_processes and --devices_per_process must be >= 1")
    port = free_port()
    return [Process(argv, {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(num_processes),
                           "JAX_PROCESS_ID": str(i), "JAX_NUM_CPU_DEVICES": str(devices_per_process),
                           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}"})
            for i in range(num_processes)]
  if backend == "slurm":
    if nodes < 1 or gpus_per_node < 0:
      raise ConfigError("--nodes must be >= 1 and --gpus_per_node >= 0")
    tasks = gpus_per_node or 1      # one process per GPU, or one per node owning all its devices
    srun = ["srun", f"--nodes={nodes}", f"--ntasks-per-node={tasks}"]
    if gpus_per_node:
      srun += [f"--gpus-per-node={gpus_per_node}", "--gpus-per-task=1"]
    return [Process([*srun, *slurm_args, *argv], {})]
  if not tpu or not zone:
    raise ConfigError("--backend tpu-vm needs --tpu NAME and --zone ZONE")
  remote = f"cd {_remote_dir(repo_dir or REPO)} && GAN_JAX_DISTRIBUTED=1 {shlex.join(['python3', *_in_repo(argv[1:])])}"
  gcloud = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}", "--worker=all",
            f"--command={remote}"]
  if project:
    gcloud.insert(5, f"--project={project}")
  return [Process(gcloud, {})]


def run_local(processes: list[Process], log_dir: str, grace_s: float = 30.0) -> int:
  """Runs the planned local processes; returns the first non-zero exit code (0 when all succeed).
  When one fails the others get SIGTERM (they save and exit), then SIGKILL after `grace_s`."""
  os.makedirs(log_dir, exist_ok=True)
  procs, logs = [], []
  for i, p in enumerate(processes):
    out = None if i == 0 else open(os.path.join(log_dir, f"process_{i}.log"), "w")
    logs.append(out)
    procs.append(subprocess.Popen(p.argv, env={**os.environ, **p.env}, stdout=out,
                                  stderr=subprocess.STDOUT if out else None, cwd=os.getcwd()))
  code, failed_at = 0, None
  try:
    while any(p.poll() is None for p in procs):
      bad = [p for p in procs if p.poll() not in (None, 0)]
      if bad and failed_at is None:
        code, failed_at = bad[0].returncode, time.monotonic()
        for p in procs:
          if p.poll() is None:
            p.send_signal(signal.SIGTERM)
      if failed_at is not None and time.monotonic() - failed_at > grace_s:
        for p in procs:
          if p.poll() is None:
            p.kill()
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
    for out in logs:
      if out is not None:
        out.close()
  return code or next((p.returncode for p in procs if p.returncode), 0)
