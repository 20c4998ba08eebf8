"""Shared command-line plumbing for scripts/: config flags, and errors turned into exit codes.

Exit codes (DESIGN.md): 0 done (also after a checkpointed SIGTERM), 2 bad configuration or
input (one line on stderr, no traceback), 1 anything else.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import sys
import types
from typing import Callable, Sequence

from absl import flags
from ml_collections import ConfigDict

from gan_jax.errors import CheckpointDamaged, CheckpointWriteError, ConfigError, TrainingDiverged

EXPERIMENTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")


def experiment_names() -> list[str]:
  return sorted(os.path.splitext(os.path.basename(p))[0]
                for p in glob.glob(os.path.join(EXPERIMENTS_DIR, "*.py"))
                if not os.path.basename(p).startswith("_"))


def load_experiment_module(path: str) -> types.ModuleType:
  """Imports the experiment file at `path` (get_config, and get_sweeps where it has one)."""
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path!r} not found; experiments: "
                      + ", ".join(f"experiments/{n}.py" for n in experiment_names()))
  module_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except ConfigError:
    raise
  except SyntaxError as e:
    raise ConfigError(f"config file {path!r} does not parse: {e.msg} (line {e.lineno})") from None
  except Exception as e:  # noqa: BLE001 - an experiment file is the user's code
    raise ConfigError(f"config file {path!r} fails when loaded: {type(e).__name__}: {e}") from None
  return module


def load_experiment(spec: str) -> ConfigDict:
  """`path/to/NAME.py[:args]` -> get_config(args)."""
  path, _, arg = spec.partition(":")
  module = load_experiment_module(path)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path!r} has no get_config(arg) function")
  try:
    config = module.get_config(arg or None)
  except ConfigError:
    raise
  except Exception as e:  # noqa: BLE001 - an experiment file is the user's code
    raise ConfigError(f"{path}: get_config({arg or None!r}) failed: {type(e).__name__}: {e}") from None
  if not isinstance(config, ConfigDict):
    raise ConfigError(f"{path}: get_config({arg or None!r}) returned {type(config).__name__}, not a ConfigDict")
  return config


def _override_keys(argv: Sequence[str], flag: str) -> list[str]:
  return [m.group(1) for a in argv if (m := re.match(rf"--{flag}\.([\w.]+)", a))]


def _unknown_key_message(config: ConfigDict, keys: list[str], flag: str) -> str:
  from gan_jax.blocks import owner
  from gan_jax.models import MODELS

  for key in keys:
    block = owner(key)
    if block is not None and "model" in config:   # a key of a block that this run's kind does not read
      try:
        _ = config[key]
      except (KeyError, AttributeError):
        model = config.model.name
        return (f"{flag}.{key} is not used by training kind {MODELS.get(model).kind!r} (model {model!r}): "
                f"its config has no {block!r} block")
    node, parts = config, key.split(".")
    for i, part in enumerate(parts):
      if not isinstance(node, ConfigDict) or part not in node:
        where = ".".join([flag, *parts[:i]])
        valid = ", ".join(sorted(node.keys())) if isinstance(node, ConfigDict) else "(none: not a section)"
        return f"unknown config key '{flag}.{key}'; valid keys under '{where}': {valid}"
      node = node[part]
  return "unknown config key"


def parse_flags(argv: Sequence[str], config_flag: str = "config", required: Sequence[str] = ()) -> ConfigDict | None:
  """Parses absl flags (with `--config FILE[:ARGS] --config.KEY=VALUE` overrides).

  Returns the locked config (None if the script has no config flag); raises ConfigError."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{config_flag}=")), None)
  if spec is None and f"--{config_flag}" in argv:
    i = list(argv).index(f"--{config_flag}")
    spec = argv[i + 1] if i + 1 < len(argv) else None
  base = load_experiment(spec) if spec else None
  try:
    flags.FLAGS(list(argv))
  except flags.UnrecognizedFlagError as e:
    raise ConfigError(f"unknown flag --{e.flagname}; valid flags: "
                      + ", ".join(f"--{n}" for n in sorted(_own_flags()))
                      + (f", --{config_flag}.KEY=VALUE" if config_flag in flags.FLAGS else "")) from None
  except flags.IllegalFlagValueError as e:
    raise ConfigError(f"bad value: {str(e).splitlines()[0]}") from None
  except (AttributeError, KeyError):
    raise ConfigError(_unknown_key_message(base, _override_keys(argv, config_flag), config_flag)) from None
  except flags.Error as e:
    raise ConfigError(str(e).splitlines()[0]) from None
  for name in required:
    if flags.FLAGS[name].value in (None, ""):
      raise ConfigError(f"missing --{name}")
  if base is None:
    return None
  config = flags.FLAGS[config_flag].value
  if not isinstance(config, ConfigDict):
    raise ConfigError(f"could not load --{config_flag}")
  return config


def _own_flags() -> list[str]:
  """Flags defined by the running script (absl files them under sys.argv[0], as given)."""
  return [f.name for module, fs in flags.FLAGS.flags_by_module_dict().items()
          if module in ("__main__", sys.argv[0]) or os.sep + "scripts" + os.sep in module for f in fs]


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the scripts with free-form arguments (launch, soak, augment_grid), with the contract of
  `main`: -h prints the docstring, the flags and the examples; a bad argument is one `error:` line and
  exit 2; a call without arguments prints the usage with exit 2."""

  def __init__(self, doc: str, examples: Sequence[str] = ()):
    super().__init__(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None)

  def error(self, message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)

  def parse_args(self, args=None, namespace=None):
    args = sys.argv[1:] if args is None else args
    if not args:
      self.print_help(sys.stderr)
      sys.exit(2)
    return super().parse_args(args, namespace)


def usage(module: types.ModuleType, examples: Sequence[str] = ()) -> str:
  """A script's help: its docstring (usage and what it does), each flag with its one-line help and
  default, and examples."""
  lines = [(module.__doc__ or "").strip(), "", "flags:"]
  for name in sorted(set(_own_flags())):
    flag = flags.FLAGS[name]
    default = "" if flag.default in (None, "", False) else f" (default: {flag.default})"
    lines.append(f"  --{name}: {(flag.help or '').splitlines()[0]}{default}")
  lines.append("  --debug: show the Python traceback of an error (or set GAN_JAX_DEBUG=1)")
  if examples:
    lines += ["", "examples:", *(f"  {e}" for e in examples)]
  return "\n".join(lines)


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split()) or type(e).__name__
  return text if len(text) <= 400 else text[:397] + "..."


def main(fn: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None,
         examples: Sequence[str] = ()) -> int:
  """Runs fn(argv) and maps every failure to one `error:` line on stderr and an exit code: 2 for bad
  configuration, input or paths (ConfigError, a path that cannot be a file or folder), 1 for anything
  else. `--debug` (or GAN_JAX_DEBUG=1) lets the traceback through. `-h`/`--help` prints the usage,
  the flags and `examples` (exit 0); a call without arguments prints the usage (exit 2)."""
  import errno

  argv = list(sys.argv if argv is None else argv)
  debug = "--debug" in argv or os.environ.get("GAN_JAX_DEBUG") == "1"
  argv = [a for a in argv if a != "--debug"]
  module = sys.modules.get(getattr(fn, "__module__", "__main__")) or sys.modules["__main__"]
  if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
    print(usage(module, examples))
    return 0
  if len(argv) == 1:
    print(usage(module, examples), file=sys.stderr)
    return 2
  try:
    fn(argv)
  except ConfigError as e:
    if debug:
      raise
    print(f"error: {_one_line(e)}", file=sys.stderr)
    return 2
  except (TrainingDiverged, CheckpointWriteError, CheckpointDamaged) as e:
    if debug:
      raise
    print(f"error: {_one_line(e)}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    if debug:
      raise
    print("error: interrupted (a second Ctrl-C): nothing was saved since the last checkpoint; rerun the same "
          "command to resume from it", file=sys.stderr)
    return 130
  except OSError as e:
    if debug:
      raise
    if e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
      print(f"error: cannot write {e.filename or 'a file'}: {e.strerror}; files written so far are intact: free "
            "space or fix the folder, then rerun the same command", file=sys.stderr)
      return 1
    if isinstance(e, (NotADirectoryError, IsADirectoryError, FileExistsError, FileNotFoundError)) and e.filename:
      print(f"error: cannot use {e.filename}: {e.strerror}; give a path that is (or can be made) the folder or "
            "file the flag asks for", file=sys.stderr)
      return 2
    print(f"error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)", file=sys.stderr)
    return 1
  except Exception as e:  # noqa: BLE001 - the command-line contract: one line, never a traceback
    if debug:
      raise
    print(f"error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)", file=sys.stderr)
    return 1
  return 0
