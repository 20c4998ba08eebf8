"""Runs one script of scripts/ on many command lines in one interpreter, as the shell would one by one:
`python tests/cli_cases.py SCRIPT CASES_JSON` prints, per case, its exit code and what it wrote to
stderr, as JSON lines. Each case goes through the script's `cli.main` exactly as `python
scripts/SCRIPT.py ARGS` does (flags re-parsed from scratch); used by tests/test_cli_contract.py to
check the error contract on a table of bad inputs without an interpreter per case."""
import contextlib
import importlib.util
import io
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
  from absl import flags

  from gan_jax import cli

  script, cases = sys.argv[1], json.loads(sys.argv[2])
  path = os.path.join(ROOT, "scripts", f"{script}.py")
  sys.argv = [path]
  spec = importlib.util.spec_from_file_location(f"scripts_{script}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for argv in cases:
    flags.FLAGS.unparse_flags()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
      try:
        code = cli.main(module.main, [path, *argv], examples=getattr(module, "EXAMPLES", ()))
      except SystemExit as e:   # what the shell would see of a script that exits by itself
        code = e.code if isinstance(e.code, int) else 1
    print(json.dumps({"argv": argv, "code": code, "stderr": err.getvalue()}), flush=True)


if __name__ == "__main__":
  main()
