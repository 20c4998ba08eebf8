"""Bad input: one line on stderr naming what was wrong, exit 2, and an existing workdir untouched. The
cases run train.py's main in this interpreter (conftest.run_main, on 8 of its CPU devices); one of them
also as a separate `python scripts/train.py` process, for the exit code and stderr a shell sees."""
import os

import numpy as np
import pytest
from conftest import experiment, run_main, run_script
from PIL import Image


def _snapshot(workdir):
  """Every file's size and mtime, but DIR/lock: a run that takes the workdir's lock writes its
  host and pid there before it can find that the checkpoint does not fit (gan_jax/workdir.py)."""
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      p = os.path.join(root, f)
      if p != os.path.join(workdir, "lock"):
        out[p] = (os.path.getsize(p), os.path.getmtime(p))
  return out


def _bad_folder(tmp_path, kind):
  path = tmp_path / kind
  path.mkdir()
  if kind == "corrupt":
    for i in range(3):
      (path / f"{i}.jpg").write_bytes(b"\xff\xd8 truncated")
  return str(path)


CASES = {
    "unknown_key": (["--config.optim.g.lrr=1"], "unknown config key 'config.optim.g.lrr'; valid keys under "
                    "'config.optim.g': b1, b2, b2_final, clip_norm, eps, lr, lr_final, name"),
    "unknown_section_key": (["--config.bogus=1"], "valid keys under 'config': augment, batch_size"),
    "wrong_type": (["--config.batch_size=abc"], "bad value: flag --config.batch_size=abc"),
    "unknown_loss": (["--config.loss.name=bogus"], "unknown loss 'bogus'; valid choices: hinge, least_squares"),
    "unknown_model": (["--config.model.name=bogus"], "unknown model 'bogus'; valid choices: "),
    "unknown_dataset": (["--config.data.name=bogus"], "unknown dataset 'bogus'; valid choices: celeba, cifar10"),
    "indivisible_batch": (["--config.batch_size=36"], "batch_size=36 is not divisible by the 8 devices"),
    "tfds_not_prepared": (["--config.data.name=mnist", "--config.data.data_dir={tmp}/tfds"], "tfds build mnist"),
    "empty_folder": (["--config.data.name=folder", "--config.data.path={empty}"], "no images"),
    "unreadable_folder": (["--config.data.name=folder", "--config.data.path={corrupt}"], "no usable image under"),
    "missing_experiment": (None, "config file"),
    "unknown_flag": (["--bogus_flag=1"], "unknown flag --bogus_flag"),
    "changed_model_on_resume": (["--config.model.g_width=8"], "changed keys: model.g_width (16 -> 8)"),
}


SUBPROCESS_CASES = ("unknown_key",)


@pytest.mark.parametrize("case,run", [(c, "in_process") for c in sorted(CASES)]
                         + [(c, "subprocess") for c in SUBPROCESS_CASES])
def test_bad_input_exits_2_and_keeps_workdir(case, run, trained_run, tmp_path):
  overrides, message = CASES[case]
  before = _snapshot(trained_run)
  paths = {"tmp": str(tmp_path), "empty": _bad_folder(tmp_path, "empty"), "corrupt": _bad_folder(tmp_path, "corrupt")}
  if overrides is None:
    args = ["--config", experiment("nope"), "--workdir", trained_run]
  else:
    args = ["--config", experiment("dcgan_digits") + ":runlocal", "--workdir", trained_run,
            *[o.format(**paths) for o in overrides]]
  result = (run_main if run == "in_process" else run_script)("train.py", *args, devices=8)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines == [lines[-1]] and lines[-1].startswith("error: "), result.stderr[-2000:]
  assert message in lines[-1]
  assert _snapshot(trained_run) == before


def test_sample_script_errors(tmp_path):
  result = run_main("sample.py", "--workdir", str(tmp_path), "--out", str(tmp_path / "x.png"))
  assert result.returncode == 2 and "config.json not found" in result.stderr
  result = run_main("sample.py", "--out", str(tmp_path / "x.png"))
  assert result.returncode == 2 and "missing --workdir" in result.stderr


def test_sample_script_outputs(trained_run, tmp_path):
  grid = tmp_path / "grid.png"
  result = run_main("sample.py", "--workdir", trained_run, "--num", "10", "--out", str(grid))
  assert result.returncode == 0, result.stderr[-2000:]
  assert Image.open(grid).size[0] >= 256
  folder = tmp_path / "many"
  assert run_main("sample.py", "--workdir", trained_run, "--num", "70", "--out", str(folder)).returncode == 0
  files = sorted(os.listdir(folder))
  assert len(files) == 70 and Image.open(folder / files[0]).size == (16, 16)
  npy = tmp_path / "s.npy"
  result = run_main("sample.py", "--workdir", trained_run, "--num", "5", "--out", str(npy), "--step", "25")
  assert result.returncode == 0, result.stderr[-2000:]
  x = np.load(npy)
  assert x.shape == (5, 16, 16, 1) and np.abs(x).max() <= 1
  bad = run_main("sample.py", "--workdir", trained_run, "--out", str(npy), "--step", "7")
  assert bad.returncode == 2 and "available: 25, 50" in bad.stderr
