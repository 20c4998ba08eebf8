"""Guards of a run directory: one live run per workdir, and what interrupted writes left behind.

`WorkdirLock`: process 0 holds `DIR/lock` with flock(LOCK_EX | LOCK_NB) for the whole run and
writes its host, pid and start time into it. A second run on the same workdir stops with exit 2
naming the holder. The kernel drops the lock when the holding process dies (kill -9 included),
so a crashed run never leaves the workdir locked; the file itself stays (it is only a name).
flock is advisory and per host: on a network filesystem shared by several hosts, start each run
from one place.

`interrupted_writes`: Orbax writes a checkpoint into `<step>.orbax-checkpoint-tmp-*` and renames
it to `<step>` when complete, so a write cut short (kill -9, preemption, a full disk) leaves only
such a temporary directory: never listed as a step, never loaded. The trainer names them in a
warning and leaves them in place (they are not deleted silently; remove them when you like).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time

from gan_jax.errors import ConfigError

TMP_MARK = ".orbax-checkpoint-tmp"


class WorkdirLock:
  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "lock")
    self._fd: int | None = None
    self._before: bytes | None = None   # the lock file's content before this run, None if it had none
    self._times: tuple[int, int] | None = None
    self._made_dir = False

  def acquire(self) -> None:
    self._made_dir = not os.path.isdir(os.path.dirname(self.path))
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    if os.path.exists(self.path):
      with open(self.path, "rb") as f:
        self._before = f.read()
      st = os.stat(self.path)
      self._times = (st.st_atime_ns, st.st_mtime_ns)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown process"
      os.close(fd)
      raise ConfigError(f"workdir {os.path.dirname(self.path)} is in use by another run ({holder}); wait for it "
                        "to finish or stop it, or use another --workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
    os.fsync(fd)
    self._fd = fd

  def undo(self) -> None:
    """Releases the lock and leaves the workdir as it was before `acquire` (a run that stops with exit 2
    touches nothing): the lock file's old content and times back, or no lock file; a workdir this run
    created removed when nothing else is in it."""
    if self._fd is None:
      return
    if self._before is None:
      os.unlink(self.path)
    else:
      os.ftruncate(self._fd, 0)
      os.pwrite(self._fd, self._before, 0)
      os.utime(self.path, ns=self._times)
    self.release()
    workdir = os.path.dirname(self.path)
    if self._made_dir and os.path.isdir(workdir) and not os.listdir(workdir):
      os.rmdir(workdir)

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def interrupted_writes(directory: str) -> list[str]:
  """Temporary checkpoint directories in `directory` that were never committed."""
  if not os.path.isdir(directory):
    return []
  return sorted(os.path.join(directory, n) for n in os.listdir(directory) if TMP_MARK in n)
