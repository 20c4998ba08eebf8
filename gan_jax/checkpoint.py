"""Orbax checkpoints of the train state and the data iterator, saved together.

`DIR/checkpoints/<step>/{state,data}`: async writes, atomic commits, the newest `ckpt.keep`
kept. Every process calls save and restore (Orbax coordinates them); the data item is each
process's grain iterator position.
"""
from __future__ import annotations

import os
import shutil
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

from gan_jax.errors import CheckpointWriteError  # noqa: F401  (re-exported)


class Checkpointer:
  def __init__(self, directory: str, keep: int, async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._mngr = ocp.CheckpointManager(
        self.directory, item_names=("state", "data", "log"),
        # Registered up front so the state's metadata (shapes) can be read before a restore.
        item_handlers={"state": ocp.StandardCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=async_save))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._mngr.all_steps())

  def _failed(self, step: int, why: str) -> CheckpointWriteError:
    steps = ", ".join(map(str, self.all_steps())) or "none"
    return CheckpointWriteError(f"cannot write checkpoint step {step} to {self.directory}: {why}; the saved "
                                f"checkpoints (steps {steps}) are intact: free space or fix the folder, then "
                                "rerun the same command to resume")

  def check_writable(self, step: int, state: Any) -> None:
    """Refuses to start a write that cannot succeed (read-only folder, less free space than the
    state needs), so a full disk gives one clear error instead of a torn asynchronous write."""
    if not os.access(self.directory, os.W_OK) or _read_only(self.directory):
      raise self._failed(step, "the folder is not writable")
    need = sum(int(getattr(x, "nbytes", 0)) for x in jax.tree.leaves(state))
    free = shutil.disk_usage(self.directory).free
    if free < need + (64 << 10):
      raise self._failed(step, f"{free / 2**20:.2f} MB free, a checkpoint needs about {need / 2**20:.2f} MB")

  def save(self, step: int, state: Any, data_iter: grain.DatasetIterator | None, log: dict | None = None) -> None:
    """`log`: the trainer's open logging interval (JSON), so a resumed run's next metrics.jsonl row
    is the uninterrupted run's."""
    self.check_writable(step, state)
    items = {"state": ocp.args.StandardSave(state)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    if log is not None:
      items["log"] = ocp.args.JsonSave(log)
    try:   # also reports a failure of the previous asynchronous write, which save() waits for
      self._mngr.save(step, args=ocp.args.Composite(**items), force=True)
    except (OSError, ValueError, RuntimeError) as e:
      raise self._failed(step, str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__) from e

  def save_only(self, step: int, state: Any) -> None:
    """Saves `state` at `step` as the one checkpoint of this directory (eval.best's): written and
    committed first, then every other step is deleted, so a crash leaves at least one."""
    if step in self._mngr.all_steps():
      self._mngr.delete(step)
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)), force=True)
    self._mngr.wait_until_finished()
    for old in self._mngr.all_steps():
      if old != step:
        self._mngr.delete(old)

  def fits(self, step: int, abstract_state: Any) -> bool:
    """Whether the saved state has the leaves (shapes and dtypes) of `abstract_state`: checked
    from metadata, since a failed restore leaves Orbax's async machinery in a noisy state."""
    def signature(tree):
      leaves = jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))
      return sorted((tuple(x.shape), str(x.dtype)) for x in leaves)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)   # Orbax warns that it cannot read the data item's
    try:
      saved = self._mngr.item_metadata(step)["state"]
    except (KeyError, ValueError, FileNotFoundError):
      return True   # no metadata to check against: let restore decide
    finally:
      absl_logging.set_verbosity(verbosity)
    return saved is None or signature(saved) == signature(abstract_state)

  def restore(self, step: int, abstract_state: Any) -> Any:
    """Restores the state into the shardings of `abstract_state`."""
    return self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))).state

  def restore_data(self, step: int, data_iter: grain.DatasetIterator) -> bool:
    """Restores this process's iterator position in place; False when the checkpoint was written
    by another number of processes (grain keeps one file per process) or has no data item."""
    try:
      self._mngr.restore(step, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(data_iter)))
      return True
    except (FileNotFoundError, ValueError, KeyError):
      return False

  def unreadable(self, step: int) -> str | None:
    """None when the state of `step` reads back whole (its metadata and every array, restored as saved
    onto one local device, whatever the current config); else one line saying what failed."""
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
      meta = self._mngr.item_metadata(step)["state"]
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta,
                            is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))
      jax.block_until_ready(self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))))
      return None
    except Exception as e:  # noqa: BLE001 - any failure to read back is damage
      text = " ".join(str(e).split())
      return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__
    finally:
      absl_logging.set_verbosity(verbosity)

  def restore_log(self, step: int) -> dict | None:
    """The logging interval saved with `step` (None for checkpoints written without one)."""
    try:
      return self._mngr.restore(step, args=ocp.args.Composite(log=ocp.args.JsonRestore())).log
    except (FileNotFoundError, ValueError, KeyError, TypeError):
      return None

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    try:
      self._mngr.wait_until_finished()
    except (OSError, ValueError, RuntimeError) as e:
      raise self._failed(self._mngr.latest_step() or 0, str(e).strip().splitlines()[0][:300]) from e
    finally:
      self._mngr.close()


def _read_only(path: str) -> bool:
  """Whether `path` is on a read-only mount (os.access says nothing of that for root)."""
  try:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
  except OSError:
    return False


def move_aside(directory: str, step: int) -> str:
  """Moves checkpoint `step` of `directory` to directory/damaged/<step> (never deleted; a second
  damaged copy of the same step gets a suffix) and returns where it went."""
  target = os.path.join(directory, "damaged", str(step))
  n = 1
  while os.path.exists(target):
    target = os.path.join(directory, "damaged", f"{step}.{n}")
    n += 1
  os.makedirs(os.path.dirname(target), exist_ok=True)
  os.rename(os.path.join(directory, str(step)), target)
  return target


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs carrying each leaf's sharding: what `restore` fills in."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
