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
  assert rows[0] == ["loss.name", "n", "modes_covered", "high_quality_fraction", "d_loss", "g_loss", "diverged"]
  hinge, rpgan = rows[1:]
  # Finals: each member's value at the last step that logged it (h0's modes_covered: step 20).
  # No seed ends below its best: none diverged.
  assert hinge == ["hinge", "4", _interval([5, 7, 8, 6]), _interval([0.5, 0.25]) + " (n=2)",
                   _interval([0.7, 0.75, 0.6, 0.95]), _interval([1.4, 1.2, 1.3, 1.6]), "0"]
  assert rpgan == ["rpgan", "1", "8 (n=1)", "–", "0.4 (n=1)", "1 (n=1)", "0"]
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
  assert _table(table) == [["loss.name", "n", "d_loss", "diverged"], ["hinge", "1", "0.7 (n=1)", "0"],
                           ["rpgan", "1", "0.4 (n=1)", "0"]]
  with pytest.raises(ConfigError, match="metric.s. bogus not logged by any run; available: d_loss, g_loss"):
    compare.report([runs["h0"]], str(tmp_path / "r"), ["bogus"])


def test_one_group_when_only_seeds_differ(runs, tmp_path):
  table = compare.report([runs["h0"], runs["h1"]], str(tmp_path / "r"), ["d_loss"])
  assert _table(table) == [["group", "n", "d_loss", "diverged"], ["all runs", "2", _interval([0.7, 0.75]), "0"]]


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
  assert result.stdout.splitlines()[0] == "| loss.name | n | d_loss | g_loss | diverged |"
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


def _half(values) -> float:
  """The half-width of the 95% Student-t interval, by hand: t_{0.975, n-1} s / sqrt(n)."""
  return stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))


def test_diverged_seeds_by_hand(tmp_path):
  """A population of 5: member 4 ends 4 modes below its best (more than the interval h of the finals
  [8, 8, 8, 8, 4]); member 0's higher value at step 0 does not count; member 2 loses its reverse_kl
  (no high-quality sample at the end). A second run was stopped by a NaN: both its seeds count."""
  modes = [[10, 8, 8, 8, 8], [8, 8, 8, 8, 8], [8, 8, 8, 8, 8]]
  rows = [{"step": s, "modes_covered": m, "reverse_kl": [0.2, 0.2, 0.1, 0.2, 0.2]} for s, m in zip((0, 10, 20), modes)]
  rows.append({"step": 30, "modes_covered": [8, 8, 8, 8, 4], "reverse_kl": [0.2, 0.3, float("nan"), 0.23, 0.2]})
  pop = _workdir(tmp_path / "pop", {"population": 5}, rows)
  assert 4 > _half([8, 8, 8, 8, 4]) > 0   # the drop of member 4 exceeds h (2.22)
  # reverse_kl (lower is better): member 1 ends 0.1 above its best, more than h of the finals
  # [0.2, 0.3, 0.23, 0.2] (0.075); member 3's 0.03 is within it.
  assert 0.03 < _half([0.2, 0.3, 0.23, 0.2]) < 0.1
  run = compare.load_run(pop)
  group = compare.Group(("hinge",), [run])
  assert group.diverged(["modes_covered"]) == [False, False, False, False, True]
  assert group.diverged(["reverse_kl"]) == [False, True, True, False, False]
  assert group.diverged(["modes_covered", "reverse_kl", "d_loss"]) == [False, True, True, False, True]

  nan = _workdir(tmp_path / "nan", {"population": 2, "loss.name": "rpgan"},
                 [{"step": 10, "modes_covered": [3, 4]}])
  (tmp_path / "nan" / "train.log").write_text("error: d_loss became NaN or Inf within steps (10, 20]; ...\n")
  table = compare.report([pop, nan], str(tmp_path / "r"), ["modes_covered", "reverse_kl"])
  assert [row[-1] for row in _table(table)] == ["diverged", "3", "2"]


def _sweep_root(tmp_path) -> str:
  """A loss x penalty sweep (rpgan before hinge, none before R1 in the sweep's order) whose trials
  differ by reg.r1 through the `penalty` preset axis; 2 seeds per cell."""
  root = tmp_path / "lxp"
  finals = {("rpgan", "none"): [6, 8], ("rpgan", "R1"): [7, 8], ("hinge", "none"): [5, 6], ("hinge", "R1"): [4, 8]}
  trials = []
  for (loss, penalty), values in finals.items():
    name = f"loss.name-{loss}__penalty-{penalty}"
    _workdir(root / name, {"loss.name": loss, "population": 2, "reg": {"r1": 0.1 if penalty == "R1" else 0.0}},
             [{"step": 10, "modes_covered": [1, 2]}, {"step": 20, "modes_covered": values}])
    trials.append({"name": name, "dir": name, "point": {"loss.name": loss, "penalty": penalty}})
  (root / "sweep.json").write_text(json.dumps({
      "keys": ["loss.name", "penalty"], "axes": {"loss.name": ["rpgan", "hinge"], "penalty": ["none", "R1"]},
      "presets": {"penalty": {"none": {"reg.r1": 0.0}, "R1": {"reg.r1": 0.1}}}, "trials": trials}))
  return str(root)


def test_preset_axis_groups_and_two_way_tables(tmp_path):
  root = _sweep_root(tmp_path)
  info = compare.sweep_info([root])
  keys, groups = compare.group_runs([compare.load_run(d, info) for d in compare.run_dirs([root])], info)
  assert keys == ["loss.name", "penalty"]          # reg.r1 is what `penalty` stands for
  assert [g.values for g in groups] == [("rpgan", "none"), ("rpgan", "R1"), ("hinge", "none"), ("hinge", "R1")]
  out = tmp_path / "report"
  compare.report([root], str(out), ["modes_covered"])
  text = (out / "report.md").read_text()
  two_way = text.split("### modes_covered")[1].split("###")[0]
  assert _table(two_way) == [["loss.name \\ penalty", "none", "R1"],
                             ["rpgan", _interval([6, 8]), _interval([7, 8])],
                             ["hinge", _interval([5, 6]), _interval([4, 8])]]
  diverged = text.split("### diverged (seeds of n)")[1]
  assert _table(diverged)[1:] == [["rpgan", "0 of 2", "0 of 2"], ["hinge", "0 of 2", "0 of 2"]]
  # Trials named on their own (the finished ones of a sweep still running) keep their labels.
  trials = [os.path.join(root, f"loss.name-{n}__penalty-{p}") for n in ("hinge", "rpgan") for p in ("R1", "none")]
  table = compare.report(trials, str(tmp_path / "some"), ["modes_covered"])
  assert [row[:3] for row in _table(table)] == [["loss.name", "penalty", "n"], ["rpgan", "none", "2"],
                                                ["rpgan", "R1", "2"], ["hinge", "none", "2"], ["hinge", "R1", "2"]]


def test_converged_step_and_budget_by_hand(tmp_path):
  """Means over 3 seeds: 1, 5, 7, 7.5, 7.5 at steps 10-50; the finals [7, 8, 7.5] give h_T = 1.242:
  the mean stays within 7.5 ± 1.242 from step 30 on (|7 - 7.5| = 0.5), not from step 20 (2.5)."""
  curves = [[1, 5, 7, 7.5, 7], [2, 6, 8, 7, 8], [0, 4, 6, 8, 7.5]]
  rows = [{"step": 10 * (i + 1), "modes_covered": [c[i] for c in curves]} for i in range(5)]
  a = _workdir(tmp_path / "a", {"population": 3}, rows)
  # Still moving: 2 seeds with equal finals (h_T = 0) and a different mean one evaluation earlier.
  b = _workdir(tmp_path / "b", {"population": 2, "loss.name": "rpgan"},
               [{"step": 10, "modes_covered": [5, 6]}, {"step": 20, "modes_covered": [7, 7]}])
  keys, groups = compare.group_runs([compare.load_run(a), compare.load_run(b)])
  step, final, h = groups[0].converged_step("modes_covered")
  assert (step, final) == (30, 7.5) and h == pytest.approx(_half([7, 8, 7.5])) == pytest.approx(1.242, abs=1e-3)
  steps, mean, half = groups[0].band("modes_covered")
  np.testing.assert_allclose(mean, [1, 5, 7, 7.5, 7.5])
  np.testing.assert_allclose(half[1], _half([5, 6, 4]))
  assert groups[1].converged_step("modes_covered") == (None, 7.0, 0.0)
  table, chosen = compare.budget(groups[:1], keys, "modes_covered")
  assert chosen == 30 and "| loss.name=hinge | 3 | 30 | 50 | 7.5 ± 1.242 |" in table
  assert compare.budget(groups, keys, "modes_covered")[1] is None

  out = tmp_path / "report"
  compare.report([a, b], str(out), ["modes_covered"], ["modes_covered"])
  text = (out / "report.md").read_text()
  assert "no budget: a group is still moving at its last step" in text
  assert Image.open(out / "budget_modes_covered.png").size[0] > 100
  with pytest.raises(ConfigError, match="--budget d_loss: not among the compared metrics"):
    compare.report([a], str(out), ["modes_covered"], ["d_loss"])


def test_keys_added_since_an_older_run_read_their_defaults(tmp_path):
  """A run written before a config key existed (its config.json lacks it) groups with newer runs that hold
  that key's default: the key is read from the run's model defaults, not taken as a difference."""
  from gan_jax.config import base_config

  rows = [{"step": 10, "d_loss": 1.0, "modes_covered": 5}]
  dirs = []
  for name, loss, drop in (("old", "hinge", True), ("new", "hinge", False), ("other", "rpgan", False)):
    config = base_config("mlp").to_dict()
    config["loss"]["name"] = loss
    if drop:   # keys that older runs did not write
      del config["ema"]["start_step"], config["train"]["reuse_fake"]
    os.makedirs(tmp_path / name / "samples")
    (tmp_path / name / "config.json").write_text(json.dumps(config))
    (tmp_path / name / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    dirs.append(str(tmp_path / name))
  keys, groups = compare.group_runs([compare.load_run(d) for d in dirs])
  assert keys == ["loss.name"]
  assert [(g.values, g.n) for g in groups] == [(("hinge",), 2), (("rpgan",), 1)]
  # A key the newer run sets away from its default still separates the runs.
  config = json.loads((tmp_path / "new" / "config.json").read_text())
  config["ema"]["start_step"] = 7
  (tmp_path / "new" / "config.json").write_text(json.dumps(config))
  keys, _ = compare.group_runs([compare.load_run(d) for d in dirs])
  assert set(keys) == {"loss.name", "ema.start_step"}


def test_every_curve_of_a_plot_has_its_own_color_and_style():
  """Twelve groups (a 4 x 3 grid) and 45 get distinct (color, line style) pairs; up to 10, the default colors."""
  from gan_jax.compare import line_styles
  assert line_styles(3) == [("C0", "-"), ("C1", "-"), ("C2", "-")]
  for n in (12, 20, 45):
    pairs = line_styles(n)
    assert len(pairs) == n == len(set(pairs))
  assert len({c for c, _ in line_styles(12)}) == 12
