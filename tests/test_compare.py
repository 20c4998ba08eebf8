"""compare: grouping, final values, t-intervals over seeds (population members included), plots."""
import json
import os

import numpy as np
import pytest
from conftest import run_main
from PIL import Image
from scipy import stats

from gan_jax import compare
from gan_jax.errors import ConfigError


def _workdir(path, config: dict, rows: list[dict], samples: tuple[int, ...] = ()) -> str:
  os.makedirs(path / "samples")
  base = {"seed": 0, "population": 1, "log_every": 10, "loss": {"name": "hinge", "ls_a": 0.0},
          "optim": {"g": {"lr": 1e-3}}, "data": {"name": "ring8", "path": ""}, "wandb": {"name": ""}}
  for key, value in config.items():  # dotted keys into the nested base
    *parents, last = key.split(".")
    node = base
    for p in parents:
      node = node[p]
    node[last] = value
  (path / "config.json").write_text(json.dumps(base))
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  for step in samples:
    Image.new("RGB", (8, 8), (step, 0, 0)).save(path / "samples" / f"step_{step:08d}.png")
  return str(path)


@pytest.fixture
def runs(tmp_path):
  """hinge: seeds 0 and 1 as single runs, seeds 2 and 3 as one population run; rpgan: seed 0.
  Bookkeeping keys (log_every, data.path, wandb.name) differ between runs of the same group."""
  return {
      "h0": _workdir(tmp_path / "h0", {"wandb.name": "a", "data.path": "/p0"}, [
          {"step": 10, "d_loss": 1.0, "g_loss": 2.0, "modes_covered": 3, "high_quality_fraction": 0.1},
          {"step": 20, "d_loss": 0.8, "g_loss": 1.5, "modes_covered": 5, "high_quality_fraction": 0.5},
          {"step": 30, "d_loss": 0.7, "g_loss": 1.4}], samples=(10, 30)),
      "h1": _workdir(tmp_path / "h1", {"seed": 1, "log_every": 5, "wandb.name": "b"}, [
          {"step": 10, "d_loss": 1.2, "modes_covered": 4},
          {"step": 20, "d_loss": 0.9, "modes_covered": 6, "high_quality_fraction": 0.25},
          {"step": 30, "d_loss": 0.75, "g_loss": 1.2, "modes_covered": 7}]),
      "hp": _workdir(tmp_path / "hp", {"seed": 2, "population": 2}, [
          {"step": 10, "d_loss": [1.1, 1.3], "modes_covered": [2, 3], "steps_per_sec": 5.0},
          {"step": 30, "d_loss": [0.6, 0.95], "g_loss": [1.3, 1.6], "modes_covered": [8, 6]}]),
      "r0": _workdir(tmp_path / "r0", {"loss.name": "rpgan"}, [
          {"step": 10, "d_loss": 0.5, "modes_covered": 7},
          {"step": 30, "d_loss": 0.4, "g_loss": 1.0, "modes_covered": 8}]),
  }


def _interval(values) -> str:
  """mean ± half-width of the 95% interval, computed with scipy's own interval."""
  lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
  return f"{np.mean(values):.4g} ± {(hi - lo) / 2:.4g}"


def _table(report_md: str) -> list[list[str]]:
  rows = [line.strip("|").split(" | ") for line in report_md.splitlines() if line.startswith("| ")]
  return [[c.strip() for c in row] for row in rows]


def test_report_table_groups_and_intervals(runs, tmp_path):
  out = tmp_path / "report"
  table = compare.report(list(runs.values()), str(out))
  rows = _table((out / "report.md").read_text())
  assert _table(table) == rows
  assert rows[0] == ["loss.name", "n", "modes_covered", "high_quality_fraction", "d_loss", "g_loss"]
  hinge, rpgan = rows[1:]
  # Finals: each member's value at the last step that logged it (h0's modes_covered: step 20).
  assert hinge == ["hinge", "4", _interval([5, 7, 8, 6]), _interval([0.5, 0.25]) + " (n=2)",
                   _interval([0.7, 0.75, 0.6, 0.95]), _interval([1.4, 1.2, 1.3, 1.6])]
  assert rpgan == ["rpgan", "1", "8 (n=1)", "–", "0.4 (n=1)", "1 (n=1)"]
  for metric in ("modes_covered", "high_quality_fraction", "d_loss", "g_loss"):
    assert Image.open(out / f"{metric}_vs_step.png").size[0] > 100
  assert Image.open(out / "samples.png").size[0] > 100
  assert compare.last_sample(runs["h0"]).endswith("step_00000030.png")
  assert "(seeds 2-3)" in (out / "report.md").read_text()


def test_curve_is_the_mean_over_seeds_per_step(runs):
  keys, groups = compare.group_runs([compare.load_run(d) for d in runs.values()])
  assert keys == ["loss.name"] and [g.values for g in groups] == [("hinge",), ("rpgan",)]
  steps, mean, se = groups[0].curve("d_loss")
  assert steps.tolist() == [10, 20, 30]
  for i, values in enumerate([[1.0, 1.2, 1.1, 1.3], [0.8, 0.9], [0.7, 0.75, 0.6, 0.95]]):
    np.testing.assert_allclose(mean[i], np.mean(values))
    np.testing.assert_allclose(se[i], stats.sem(values))


def test_explicit_metrics_and_unknown_ones(runs, tmp_path):
  table = compare.report([runs["h0"], runs["r0"]], str(tmp_path / "r"), ["d_loss"])
  assert _table(table) == [["loss.name", "n", "d_loss"], ["hinge", "1", "0.7 (n=1)"], ["rpgan", "1", "0.4 (n=1)"]]
  with pytest.raises(ConfigError, match="metric.s. bogus not logged by any run; available: d_loss, g_loss"):
    compare.report([runs["h0"]], str(tmp_path / "r"), ["bogus"])


def test_one_group_when_only_seeds_differ(runs, tmp_path):
  table = compare.report([runs["h0"], runs["h1"]], str(tmp_path / "r"), ["d_loss"])
  assert _table(table) == [["group", "n", "d_loss"], ["all runs", "2", _interval([0.7, 0.75])]]


def test_sweep_root_expands_to_its_trials(runs, tmp_path, capsys):
  root = tmp_path / "sweep"
  root.mkdir()
  os.rename(runs["h0"], root / "a")
  (root / "sweep.json").write_text(json.dumps({"trials": [{"name": "a", "dir": "a"}, {"name": "b", "dir": "b"}]}))
  assert compare.run_dirs([str(root), str(root / "a"), runs["r0"]]) == [str(root / "a"), runs["r0"]]
  assert "1 of 2 trials have no metrics yet" in capsys.readouterr().err


def test_population_lists_must_match_the_population(tmp_path):
  d = _workdir(tmp_path / "p", {"population": 2}, [{"step": 1, "d_loss": [1.0, 2.0, 3.0]}])
  with pytest.raises(ConfigError, match="d_loss at step 1 has 3 values for a population of 2"):
    compare.report([d], str(tmp_path / "r"))


def test_compare_cli(runs, tmp_path):
  out = tmp_path / "cli"
  result = run_main("compare.py", *runs.values(), "--out", str(out), "--metrics", "d_loss,g_loss")
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines()[0] == "| loss.name | n | d_loss | g_loss |"
  assert (out / "report.md").exists() and (out / "d_loss_vs_step.png").exists()


@pytest.mark.parametrize("args, message", [
    (["{empty}", "--out", "{out}"], "is neither a train workdir (config.json and metrics.jsonl) nor a sweep root"),
    (["{run}"], "missing --out"),
    (["--out", "{out}"], "give at least one DIR"),
])
def test_compare_cli_bad_input_exits_2(runs, tmp_path, args, message):
  (tmp_path / "empty").mkdir()
  paths = {"empty": str(tmp_path / "empty"), "out": str(tmp_path / "out"), "run": runs["h0"]}
  result = run_main("compare.py", *[a.format(**paths) for a in args])
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr[-2000:]
  assert not os.path.exists(tmp_path / "out")


def test_nan_member_values_are_left_out_of_the_final_statistics(tmp_path):
  import json

  from gan_jax import compare
  wd = tmp_path / "pop"
  wd.mkdir()
  (wd / "config.json").write_text(json.dumps({"seed": 0, "population": 3, "loss": {"name": "x"}}))
  rows = [{"step": 10, "reverse_kl": [0.5, float("nan"), 0.7]}, {"step": 20, "reverse_kl": [0.1, float("nan"), 0.3]}]
  (wd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  run = compare.load_run(str(wd))
  finals = [run.final("reverse_kl", m) for m in range(3)]
  assert finals == [0.1, None, 0.3]
  assert compare.format_cell([0.1, 0.3], n=3).endswith("(n=2)")
