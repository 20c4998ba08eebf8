"""Shared fixtures and helpers. Every test process has several CPU devices (DEVICES); meshes span one
of them unless a test asks for more (parallel.mesh_devices, run_main(..., devices=n)), so 1-device and
many-device runs compare in one interpreter. Scripts run in-process through `run_main` (their main,
as the shell would run them); every subprocess goes through `subprocess_env` (this tier's XLA flags,
the shared compilation cache): `run_script`, `popen_script`, `run_python`, `run_processes`."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import NamedTuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


def _xla_extra() -> str:
  """XLA flags of this test tier for the subprocesses (see pytest_configure)."""
  return "".join(" " + f for f in os.environ.get(_XLA_EXTRA, "").split())


def subprocess_env(devices: int = 1, env: dict | None = None) -> dict:
  """The environment of every subprocess of the suite: `devices` simulated CPU devices, this tier's XLA
  flags (the quick tier's O0), the run's shared compilation cache (GAN_JAX_COMPILE_CACHE, also as JAX's
  own variables for code that does not call parallel.enable_compilation_cache), wandb off; then `env`
  (a value of None removes the variable)."""
  full = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}{_xla_extra()}",
          "WANDB_MODE": "disabled", "PYTHONPATH": ROOT}
  full.pop("JAX_NUM_CPU_DEVICES", None)
  cache = os.environ.get("GAN_JAX_COMPILE_CACHE", "off")
  if cache != "off":
    full.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  for k, v in (env or {}).items():
    if v is None:
      full.pop(k, None)
    else:
      full[k] = v
  return full


def run_script(script: str, *args: str, devices: int = 1, env: dict | None = None,
               timeout: float = 1200) -> subprocess.CompletedProcess:
  """Runs scripts/<script> in a fresh interpreter with `devices` simulated CPU devices (the exit code and
  stderr a shell sees; `run_main` runs the same in this interpreter)."""
  return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                        capture_output=True, text=True, env=subprocess_env(devices, env), timeout=timeout, cwd=ROOT)


def popen_script(script: str, *args: str, devices: int = 1, env: dict | None = None, **kw) -> subprocess.Popen:
  """scripts/<script> started in a fresh interpreter (environment as `run_script`), for signals."""
  kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kw}
  return subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                          env=subprocess_env(devices, env), cwd=ROOT, **kw)


def run_python(code: str, devices: int = 1, env: dict | None = None, timeout: float = 1200
               ) -> subprocess.CompletedProcess:
  """`python -c code` in a fresh interpreter (environment as `run_script`)."""
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=subprocess_env(devices, env), timeout=timeout, cwd=ROOT)


class Ran(NamedTuple):
  """What a script run left: exit code, stdout, stderr (as subprocess.CompletedProcess has them)."""
  returncode: int
  stdout: str
  stderr: str


def run_main(script: str, *args: str, devices: int = 1, env: dict | None = None) -> Ran:
  """Runs scripts/<script> in this interpreter as `python scripts/<script> ARGS` would (its module run as
  __main__ on that argv, through the script's `cli.main`; exit code from its SystemExit), with the
  trainer's meshes over `devices` of this process's CPU devices (see XLA_FLAGS below) and `env` set for
  the call. The flags the script defines are removed afterwards, so that the next one can define its own."""
  import contextlib
  import io
  import runpy

  import jax
  from absl import flags

  from gan_jax import parallel
  path = os.path.join(ROOT, "scripts", script)
  before = set(flags.FLAGS)
  saved = {k: os.environ.get(k) for k in {"WANDB_MODE": None, **(env or {})}}
  cache_config = {k: getattr(jax.config, k) for k in _CACHE_CONFIG}
  sys_path, argv = list(sys.path), list(sys.argv)
  out, err = io.StringIO(), io.StringIO()
  code = 0
  try:
    os.environ.update({"WANDB_MODE": "disabled", **(env or {})})
    for k, v in (env or {}).items():
      if v is None:
        os.environ.pop(k)
    sys.argv = [path, *args]
    flags.FLAGS.unparse_flags()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), parallel.mesh_devices(devices):
      try:
        runpy.run_path(path, run_name="__main__")
      except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  finally:
    # The script's flags and its --config.KEY overrides (not the flags of the libraries it imported).
    for module, defined in flags.FLAGS.flags_by_module_dict().items():
      if module == path or module.startswith(("absl.flags", "ml_collections")):
        for name in {f.name for f in defined} - before:
          if name in flags.FLAGS:
            delattr(flags.FLAGS, name)
    flags.FLAGS.unparse_flags()
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
    for k, v in cache_config.items():
      jax.config.update(k, v)
    sys.path[:], sys.argv = sys_path, argv
  return Ran(code, out.getvalue(), err.getvalue())


_CACHE_CONFIG = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                 "jax_persistent_cache_min_entry_size_bytes")


def state_mb(stderr: str) -> tuple[float, float]:
  """(whole train state, one device's share) in MB, from the trainer's start line."""
  m = re.search(r"state ([0-9.]+) MB, ([0-9.]+) MB per device", stderr)
  assert m, stderr[-2000:]
  return float(m[1]), float(m[2])


def free_port() -> int:
  from gan_jax.launch import free_port as port
  return port()


def run_processes(script: str, *args: str, processes: int = 2, devices: int = 2, env: dict | None = None,
                  timeout: float = 1200) -> list[tuple[int, str, str]]:
  """Runs scripts/<script> as `processes` JAX processes on 127.0.0.1 (jax.distributed through
  gan_jax.parallel.initialize), each with `devices` CPU devices: [(returncode, stdout, stderr)]."""
  port = free_port()
  procs = []
  for pid in range(processes):
    full_env = subprocess_env(devices, {"JAX_NUM_CPU_DEVICES": str(devices),
                                        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                                        "JAX_NUM_PROCESSES": str(processes), "JAX_PROCESS_ID": str(pid),
                                        **(env or {})})
    procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", script), *args], env=full_env,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = [p.communicate(timeout=timeout) for p in procs]
  return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def experiment(name: str) -> str:
  return os.path.join(ROOT, "experiments", f"{name}.py")


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f]


@pytest.fixture
def load_config():
  from gan_jax import cli
  return lambda spec: cli.load_experiment(os.path.join(ROOT, spec))


@pytest.fixture(scope="session", autouse=True)
def one_device_meshes():
  """The trainer's and the scripts' meshes span one device unless a test asks for more
  (`parallel.mesh_devices(n)`, `run_main(..., devices=n)`): in-process runs are the 1-device runs they
  were in a 1-device interpreter."""
  from gan_jax import parallel
  with parallel.mesh_devices(1):
    yield


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> str:
  """A finished 50-step run of the default experiment at toy width (dcgan_digits:runlocal)."""
  workdir = str(tmp_path_factory.mktemp("runs") / "digits")
  result = run_main("train.py", "--config", experiment("dcgan_digits") + ":runlocal", "--workdir", workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


# --- Test tiers ------------------------------------------------------------------------------------
# A bare `pytest` (the README's test command, what CI runs) is the quick tier: the tests marked
# `slow` (training runs that check learning, multi-process and many-device runs of the large
# models, the slower equivalence runs) are left out, with a line saying how many. They run when
# named (`pytest tests/test_cyclegan.py`, a node id), with a marker expression (`-m slow`, or
# `-m "slow or not slow"` for everything), or with GAN_JAX_FULL_TESTS=1.
_TIER = "GAN_JAX_TEST_TIER"
_XLA_EXTRA = "GAN_JAX_TEST_XLA_FLAGS"
# The quick tier's tests are compile-bound (toy widths, a few steps): LLVM's optimization level 0
# halves XLA:CPU's compile times (the 5-step DCGAN run: 23 s -> 16 s), at a run-time cost that only
# the full tier's long runs would feel. XLA:CPU's older fusion emitters compile about a quarter faster
# still (the R3GAN toy step 8.9 s -> 6.6 s; the quick tier 17 min 44 s -> 13 min 3 s); with them a
# sharded and an unsharded run of one program may differ in the last bits (ADA on 1 and 4 devices:
# 1.8e-6), so that test compares at 1e-5. Same programs, same numerics contract: every comparison in
# the suite is between two runs of one tier or against a tolerance.
_QUICK_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
_made_cache = [None]
DEVICES = 8   # CPU devices of each test process


def pytest_configure(config):
  if not hasattr(config, "workerinput"):   # the controller (xdist workers inherit its environment)
    named = config.args_source == pytest.Config.ArgsSource.ARGS
    whole = bool(config.option.markexpr) or os.environ.get("GAN_JAX_FULL_TESTS") == "1"
    os.environ[_TIER] = "full" if named or whole else "quick"
    # A named file or test keeps the quick tier's compile flags (its runs are the quick tier's toys, plus
    # its slow tests); a marker expression or GAN_JAX_FULL_TESTS=1 (the full tier's long runs) does not.
    os.environ.setdefault(_XLA_EXTRA, "" if whole else _QUICK_XLA_FLAGS)
    # One persistent compilation cache for the whole test run, new each run: the trainer's
    # subprocesses and the in-process tests compile each distinct program once (most tests train
    # the same toy configs), and nothing carries over from an earlier run.
    if "GAN_JAX_COMPILE_CACHE" not in os.environ:
      os.environ["GAN_JAX_COMPILE_CACHE"] = _made_cache[0] = tempfile.mkdtemp(prefix="gan_jax_test_xla_")
  extra = os.environ.get(_XLA_EXTRA, "")
  if extra and extra not in os.environ.get("XLA_FLAGS", ""):   # this process's backend starts later
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + extra).strip()
  # Several CPU devices in every test process: 1-device and many-device runs compared in one interpreter
  # (parallel.mesh_devices); everything else runs on a 1-device mesh (the `one_device_meshes` fixture).
  if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={DEVICES}").strip()
  os.environ.pop("JAX_NUM_CPU_DEVICES", None)
  if os.environ.get("GAN_JAX_COMPILE_CACHE", "off") != "off":
    from gan_jax import parallel
    parallel.enable_compilation_cache(os.environ["GAN_JAX_COMPILE_CACHE"], min_compile_s=0.0)


def pytest_unconfigure(config):
  if _made_cache[0]:
    shutil.rmtree(_made_cache[0], ignore_errors=True)


# The files with the longest quick-tier runs (measured with --durations), started first so that the
# run does not end on one long test while the other worker idles.
_LONGEST_FIRST = ("test_train.py", "test_train_loop.py", "test_cli_contract.py", "test_scale_out.py", "test_step.py",
                  "test_cli.py", "test_model_sngan.py", "test_kinds.py", "test_compare.py", "test_model_biggan.py",
                  "test_official_parity.py", "test_faults.py", "test_augment.py")


# Files whose tests share no costly module fixture: their tests are scheduled one by one over both
# workers (a file named alone uses both); every other file runs whole on one worker (`--dist loadfile`:
# its module fixtures built once; spreading every file measured 17 min 44 s against 13 min 5 s).
_SPREAD = ("test_official_parity.py",)


def pytest_xdist_make_scheduler(config, log):
  """`--dist loadfile`, except that the tests of the _SPREAD files are units of their own."""
  if config.getvalue("dist") != "loadfile":
    return None
  from xdist.scheduler import LoadScopeScheduling

  class FileOrTest(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
      path = nodeid.split("::", 1)[0]
      return nodeid if os.path.basename(path) in _SPREAD else path

  return FileOrTest(config, log)


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: the rest keep their order
  if os.environ.get(_TIER) != "quick":
    return
  slow = [item for item in items if item.get_closest_marker("slow")]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker("slow")]


def pytest_terminal_summary(terminalreporter, config):
  if os.environ.get(_TIER) == "quick":
    terminalreporter.write_line("quick tier: the tests marked slow were deselected (run them with "
                                "`pytest -m slow`, or everything with GAN_JAX_FULL_TESTS=1)")
