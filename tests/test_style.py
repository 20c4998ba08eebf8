import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def test_ruff_clean():
  ruff = shutil.which("ruff") or shutil.which("ruff", path=sys.prefix + "/bin")
  if ruff is None:
    pytest.fail("ruff is not installed: pip install -e '.[dev]'")
  result = subprocess.run([ruff, "check", "--output-format", "concise", ROOT], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout[-3000:]
