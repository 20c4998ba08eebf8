"""The project's errors. Imports nothing of gan_jax, so every module can raise them.

The scripts turn them into exit codes (gan_jax/cli.py): `ConfigError` (bad configuration, input or
paths) is one line on stderr and exit 2; the others are one line and exit 1.
"""
from __future__ import annotations


class ConfigError(ValueError):
  """Bad configuration or input: reported as one line, exit code 2."""


class TrainingDiverged(RuntimeError):
  """A logged metric became NaN or Inf (exit 1)."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint or another workdir file could not be written (exit 1, one line)."""


class CheckpointDamaged(RuntimeError):
  """No intact checkpoint is left to resume from, or the one asked for is damaged (exit 1, one line)."""
