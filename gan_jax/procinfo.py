"""Process facts for benchmarks; standard library only (benchmarks/torch_dcgan.py imports it too)."""
from __future__ import annotations

import ctypes
import ctypes.util
import resource


def _status_mb(field: str) -> float | None:
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return None


def peak_rss_mb() -> float:
  """This process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, it does not carry the
  parent's peak across fork and exec)."""
  peak = _status_mb("VmHWM")
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if peak is None else peak


def rss_mb() -> float:
  """This process's resident memory now, MiB (VmRSS; the peak where /proc is missing)."""
  now = _status_mb("VmRSS")
  return peak_rss_mb() if now is None else now


def rss_stage(stages: dict, name: str) -> None:
  """Records the resident memory now and the peak so far under `name` (MiB): where in a run the
  memory goes (the benchmarks' RSS stages)."""
  stages[name] = {"rss_mb": rss_mb(), "peak_mb": peak_rss_mb()}


def release_free_memory() -> bool:
  """Returns the C heap's free pages to the system (glibc's malloc_trim): XLA's compiler frees
  hundreds of MB after compiling a large program, which glibc keeps mapped, so the process's resident
  memory would stay at the compiler's level for the whole run. False where the C library has no
  malloc_trim (not glibc)."""
  name = ctypes.util.find_library("c")
  try:
    trim = ctypes.CDLL(name).malloc_trim if name else None
  except (OSError, AttributeError):
    trim = None
  if trim is None:
    return False
  trim(0)
  return True
