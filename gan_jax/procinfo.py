"""Process facts for benchmarks; standard library only (benchmarks/torch_dcgan.py imports it too)."""
from __future__ import annotations

import resource


def peak_rss_mb() -> float:
  """This process's peak resident memory in MiB (VmHWM: unlike ru_maxrss, it does not carry the
  parent's peak across fork and exec)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
