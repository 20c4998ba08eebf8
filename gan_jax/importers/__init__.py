"""Official checkpoint formats -> a normal workdir (config.json, data_spec.json, checkpoints/0).

`FORMATS` maps a format name (`scripts/import_checkpoint.py --format NAME`) to a `Format`: one
function that reads a file into an `Imported` (our model name, the config keys the file records,
the data spec and our parameter trees). Every module of this package registers its formats on
import, so adding a format is adding a module. Files are read without torch (`torchfile`), and
no pickle is ever executed.

`import_checkpoint` is what the command line runs: read, reconcile with `--config` (a key the file
records that the config sets otherwise is an error naming the key), write the workdir
(`workdir.write`), from which sample.py, evaluate.py and train.py (fine-tuning) work unchanged.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec
from gan_jax.registry import Registry


@dataclasses.dataclass
class Imported:
  """What a file holds, in our terms.

  settings: flat config keys the file records ("model.channel_base", "data.resolution", ...);
  the experiment's config must agree with each. Parameter trees mirror the train state's fields
  (gan_jax/train/state.py): `g_params`, `d_params`, `ema_params` (None where the file has no EMA
  generator), `g_vars`/`d_vars` (non-parameter collections, e.g. StyleGAN's W average; {} when
  none). A tree may be None when the file lacks that network: the workdir keeps our fresh
  initialization there. `extras`: collections that go with a parameter tree at apply time but are
  not part of the train state, e.g. {"ema_params": {"noise_const": ...}} (StyleGAN's fixed noise)."""
  model: str
  experiment: str                         # default experiment (experiments/NAME.py[:ARGS]) for --config
  settings: dict[str, Any]
  spec: DataSpec
  g_params: Any = None
  d_params: Any = None
  ema_params: Any = None
  g_vars: dict | None = None
  d_vars: dict | None = None
  extras: dict = dataclasses.field(default_factory=dict)   # field -> apply-time collections (not in the state)
  step: int = 0
  notes: list[str] = dataclasses.field(default_factory=list)
  config: Any = None                      # the resolved config, set by import_checkpoint


@dataclasses.dataclass(frozen=True)
class Format:
  read: Callable[[str], Imported]   # path -> Imported; raises ConfigError (one line) for a bad file
  help: str                         # one line: which files, made by which code
  # Optional: {official network name ("G", "D"): its state dict} -> {state field: our tree}, every
  # tensor placed or accounted for; the full-size shape tests map the published networks with it.
  trees: Callable[[dict[str, dict]], dict[str, Any]] | None = None


FORMATS: Registry[Format] = Registry("import format")


def import_checkpoint(fmt: str, path: str, workdir: str, config: Any = None,
                      overrides: dict[str, Any] | None = None) -> Imported:
  """Reads `path` in format `fmt` and writes `workdir`; the command line's whole job.

  config: a ConfigDict (the command line's `--config` with its overrides), or `experiments/NAME.py[:ARGS]`
  with flat `overrides`, or None (the format's experiment, the file's settings written in). Raises
  ConfigError for a bad file, a config the file contradicts, or a workdir that already holds a run.
  Returns the Imported, its `config` set to the run's."""
  from gan_jax.importers import workdir as workdir_lib

  if not os.path.exists(path):
    raise ConfigError(f"--in {path}: no such file or directory")
  imported = FORMATS.get(fmt).read(path)
  if isinstance(config, str):
    config = workdir_lib.load_config(config, overrides)
  imported.config = workdir_lib.reconcile(imported, config, path)
  workdir_lib.write(workdir, imported.config, imported, path)
  return imported


def _import_formats() -> None:
  """Registration happens on import: every module of this package."""
  import importlib
  import pkgutil

  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_"):
      importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["FORMATS", "ConfigError", "Format", "Imported", "import_checkpoint"]
_import_formats()
