"""The command-line contract of every script, on a table of bad values and paths: exit 1 or 2, exactly
one stderr line, starting with `error:`, never a traceback; with exit 2 nothing in the workdir new
or changed (its lock file included). Also: --help/-h and a bare call, a finished run's last line,
a rerun of a finished run, and --debug."""
import json
import os
import shutil

import pytest
from conftest import experiment, run_main, run_script

RUNLOCAL = experiment("dcgan_digits") + ":runlocal"


def _snapshot(workdir):
  """Every file under `workdir` with its size, mtime and content hash."""
  import hashlib
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      p = os.path.join(root, f)
      with open(p, "rb") as fh:
        out[p] = (os.path.getsize(p), os.path.getmtime(p), hashlib.sha1(fh.read()).hexdigest())
  return out


@pytest.fixture(scope="module")
def workdirs(trained_run, tmp_path_factory):
  """A copy of the finished 50-step digits run, a file, and folders for the cases."""
  root = tmp_path_factory.mktemp("contract")
  run = str(root / "run")
  shutil.copytree(trained_run, run)
  (root / "afile").write_text("not a folder")
  bad = root / "bad_experiment.py"
  bad.write_text("def get_config(arg)\n  return None\n")   # does not parse
  raises = root / "raising_experiment.py"
  raises.write_text("def get_config(arg):\n  return {}['nope']\n")
  images = root / "images"
  images.mkdir()
  return {"run": run, "file": str(root / "afile"), "root": str(root), "bad_py": str(bad), "raising_py": str(raises),
          "images": str(images)}


def _cases(w):
  """script -> [(argv, allowed exit codes)]: bad configuration, input and paths."""
  run, f = w["run"], w["file"]
  return {
      "train": [
          (["--config", experiment("nope"), "--workdir", run], {2}),
          (["--config", w["bad_py"], "--workdir", run], {2}),
          (["--config", w["raising_py"], "--workdir", run], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.data.resolution=17"], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.data.resolution=0"], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.batch_size=-4"], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.total_steps=0"], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.reg.r1=lots"], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.model.g_width=8"], {2}),
          (["--config", RUNLOCAL, "--workdir", f], {2}),
          (["--config", RUNLOCAL, "--workdir", os.path.join(f, "sub")], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--config.data.name=folder", f"--config.data.path={f}"], {2}),
          (["--config", RUNLOCAL, "--workdir", run, "--bogus"], {2}),
      ],
      "sample": [
          (["--workdir", run, "--num", "0", "--out", os.path.join(w["root"], "x.png")], {2}),
          (["--workdir", f, "--num", "4", "--out", os.path.join(w["root"], "x.png")], {2}),
          (["--workdir", run, "--num", "4", "--out", os.path.join(f, "x.png")], {2}),
          (["--workdir", run, "--num", "4", "--out", os.path.join(f, "folder_of_pngs")], {2}),
          (["--workdir", run, "--num", "4", "--step", "999", "--out", os.path.join(w["root"], "x.png")], {2}),
          (["--workdir", run, "--num", "4", "--truncation", "2", "--out", os.path.join(w["root"], "x.png")], {2}),
      ],
      "evaluate": [
          (["--workdir", run, "--metrics", "bogus"], {2}),
          (["--workdir", f], {2}),
          (["--workdir", run, "--ref", f], {2}),
      ],
      "translate": [
          (["--workdir", run, "--input", w["images"], "--out", os.path.join(w["root"], "t")], {2}),
          (["--workdir", run, "--input", f, "--out", os.path.join(w["root"], "t")], {2}),
      ],
      "sweep": [
          (["--config", RUNLOCAL, "--sweep", "bogus", "--root", os.path.join(w["root"], "sweep")], {2}),
          (["--config", RUNLOCAL, "--sweep", "bogus", "--root", f], {2}),
      ],
      "compare": [
          ([os.path.join(w["root"], "nothing_here"), "--out", os.path.join(w["root"], "report")], {2}),
          ([run, "--out", f], {2}),
      ],
      "ref_stats": [
          (["--data", "bogus", "--split", "train", "--out", os.path.join(w["root"], "r.npz")], {2}),
          (["--data", "digits", "--split", "train", "--out", os.path.join(f, "r.npz")], {2}),
      ],
      "benchmark": [
          (["--model", "bogus"], {2}),
          (["--resolution", "7"], {2}),
      ],
      "convert_weights": [
          (["--inception", os.path.join(w["root"], "missing.pth"), "--out_dir", os.path.join(w["root"], "w")], {2}),
      ],
  }


def _run_cases(script: str, cases: list) -> list[dict]:
  """Each case through the script's main in this interpreter, as `python scripts/SCRIPT.py ARGV` runs it."""
  out = []
  for argv, _ in cases:
    r = run_main(f"{script}.py", *argv)
    out.append({"argv": argv, "code": r.returncode, "stderr": r.stderr})
  return out


@pytest.mark.parametrize("script", ["train", "sample", "evaluate", "translate", "sweep", "compare", "ref_stats",
                                    "benchmark", "convert_weights"])
def test_bad_values_and_paths_give_one_error_line(script, workdirs):
  cases = _cases(workdirs)[script]
  before = _snapshot(workdirs["run"])
  results = _run_cases(script, cases)
  assert len(results) == len(cases)
  for (argv, codes), got in zip(cases, results):
    lines = [line for line in got["stderr"].splitlines() if line.strip()]
    what = f"{script} {' '.join(argv)}: exit {got['code']}, stderr {got['stderr'][-1500:]!r}"
    assert got["code"] in codes, what
    assert len(lines) == 1 and lines[0].startswith("error: "), what
    assert "Traceback" not in got["stderr"], what
    if got["code"] == 2:
      assert _snapshot(workdirs["run"]) == before, what


def test_help_bare_call_and_debug():
  """--help in a fresh interpreter (what a shell sees), -h and a bare call in this one; --debug's traceback
  is the interpreter's own, so that case runs as a process too."""
  for flag, run in (("--help", run_script), ("-h", run_main)):
    r = run("sample.py", flag)
    assert r.returncode == 0
    assert "--workdir:" in r.stdout and "examples:" in r.stdout and "python scripts/sample.py --workdir" in r.stdout
  r = run_main("sample.py")
  assert r.returncode == 2 and "flags:" in r.stderr and "examples:" in r.stderr
  r = run_main("launch.py", "-h")
  assert r.returncode == 0 and "examples:" in r.stdout
  r = run_script("sample.py", "--workdir", "/nonexistent/run", "--out", "x.png", "--debug")
  assert r.returncode != 0 and "Traceback" in r.stderr


def test_a_finished_run_says_where_its_outputs_are_and_a_rerun_changes_nothing(tmp_path):
  wd = str(tmp_path / "run")
  args = ("--config", RUNLOCAL, "--workdir", wd, "--config.total_steps=4", "--config.log_every=2",
          "--config.sample_every=4", "--config.ckpt_every=2")
  r = run_main("train.py", *args)
  assert r.returncode == 0, r.stderr[-3000:]
  last = r.stderr.strip().splitlines()[-1]
  assert last.startswith("gan_jax: done, step 4:") and os.path.join(wd, "samples", "step_00000004.png") in last
  assert os.path.join(wd, "checkpoints", "4") in last and os.path.join(wd, "loss_curves.png") in last
  with open(os.path.join(wd, "run.json")) as f:
    assert json.load(f) == {"step": 4, "total_steps": 4, "segments": [[0, 4]]}
  before = _snapshot(wd)
  r = run_main("train.py", *args)
  assert r.returncode == 0 and "is finished (step 4, total_steps 4); nothing to do" in r.stderr
  assert _snapshot(wd) == before
  r = run_main("train.py", *args[:-3], "--config.total_steps=2")   # a lower total: finished as well
  assert r.returncode == 0 and "is finished (step 4, total_steps 2)" in r.stderr and _snapshot(wd) == before
  r = run_main("train.py", *args[:-3], "--config.total_steps=6", "--config.sample_every=0")
  assert r.returncode == 0, r.stderr[-3000:]
  with open(os.path.join(wd, "run.json")) as f:
    assert json.load(f) == {"step": 6, "total_steps": 6, "segments": [[0, 4], [4, 6]]}
  from gan_jax.compare import load_run
  assert load_run(wd).config["trained_steps"] == 6
