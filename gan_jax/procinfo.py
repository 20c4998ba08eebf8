"""Process facts for benchmarks; standard library only (benchmarks/torch_dcgan.py imports it too)."""
from __future__ import annotations

import ctypes
import functools
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


@functools.lru_cache(maxsize=1)
def _malloc_trim():
  """glibc's malloc_trim(size_t) -> int from the C library this process runs on, or None."""
  for name in (None, "libc.so.6"):
    try:
      trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
      continue
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
  return None


def release_free_memory() -> bool:
  """Returns the C heap's free pages to the system (glibc's malloc_trim): XLA's compiler frees
  hundreds of MB after compiling a large program, which glibc keeps mapped, so the process's resident
  memory would stay at the compiler's level for the whole run. False where the C library has no
  malloc_trim (not glibc)."""
  trim = _malloc_trim()
  if trim is None:
    return False
  trim(0)
  return True
