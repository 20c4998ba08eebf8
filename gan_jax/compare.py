"""Compare runs: final metrics with 95% intervals over seeds, curves against step, samples side by side.

Inputs are train workdirs (config.json + metrics.jsonl) or sweep roots (sweep.json, written by
scripts/sweep.py). A population run (config `population` N > 1, metrics logged as lists of N
values) counts as N seeds: member i is seed `seed + i`. Runs are grouped by the config keys whose
values differ between them, except `seed` and keys that change neither training nor its
metrics (logging intervals, paths, wandb). A run's final value of a metric is its value at the
last step that logged it; a group reports mean ± t_{0.975, n-1}·s/√n over its seeds (the
"interval" below: the half-width h of that 95 % Student-t interval).

Runs from a sweep with a preset axis (gan_jax/sweep.py, e.g. `penalty`: none, R1, R1+R2) are
grouped by the axis's label instead of the keys it sets, and values follow the sweep's order. With
exactly two grouping keys the report adds a two-way table per metric (rows: the first key in the
sweep's order, columns: the second).

Diverged seeds. A seed diverged when a NaN or Inf stopped its run (the trainer's "became NaN or
Inf" in the run's train.log; a population stops as one program, so all its members count), or
when, for a metric with a direction (gan_jax.metrics.evaluation.BEST_MODES), its final value is
worse than its best value over the evaluations after step 0 by more than h, the group's interval
of the final values (h = 0 for a single seed); a seed whose final value is missing (NaN, e.g.
reverse_kl with no high-quality sample) after a finite one is worse than any.

Budgets. From a pilot's curves (`budget`), a group's converged step is the earliest logged step
from which the mean over seeds stays within ± h_T of its final value, h_T the interval of the
values at the final step T: after it the metric moves less than its seed-to-seed interval. When
only T itself qualifies the metric is still moving and there is no converged step; a study's
budget is the latest converged step over its groups.
"""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import sys
from typing import Any, Sequence

import numpy as np

from gan_jax.config import flatten, from_saved
from gan_jax.errors import ConfigError
from gan_jax.logging import read_metrics
from gan_jax.metrics.evaluation import BEST_MODES
from gan_jax.sweep import SWEEP_FILE, format_value

# What train.py's TrainingDiverged message says (gan_jax/train/loop.py, check_finite), as the sweep
# appends it to the trial's train.log.
NAN_STOP = "became NaN or Inf"

DEFAULT_METRICS = ("modes_covered", "high_quality_fraction", "reverse_kl", "d_loss", "g_loss")
# Keys that do not make runs different experiments: the seed (the statistics are over it) and
# bookkeeping that changes neither the training nor the metrics.
IGNORED_KEYS = ("seed", "population", "log_every", "ckpt_every", "sample_every", "ckpt.keep", "sample.num",
                "eval.every", "data.data_dir", "data.path", "data.download", "data.num_threads")
IGNORED_PREFIXES = ("wandb.",)


@dataclasses.dataclass
class Run:
  path: str
  config: dict[str, Any]      # flattened: {"loss.name": ..., "seed": ...}, plus preset axes' labels
  rows: list[dict[str, Any]]  # metrics.jsonl
  members: int                # seeds trained in this workdir (config `population`)
  preset_keys: frozenset[str] = frozenset()   # config keys that a preset axis's label stands for

  def stopped_by_nan(self) -> bool:
    log = os.path.join(self.path, "train.log")
    if not os.path.exists(log):
      return False
    with open(log, errors="replace") as f:
      return NAN_STOP in f.read()

  def best(self, metric: str, member: int) -> float | None:
    """The best finite value after step 0 (direction from BEST_MODES); None without one."""
    values = [v for t, v in self.series(metric, member).items() if t > 0 and math.isfinite(v)]
    if not values:
      return None
    return max(values) if BEST_MODES[metric] == "max" else min(values)

  def seed(self, member: int) -> int:
    return int(self.config.get("seed", 0)) + member

  def series(self, metric: str, member: int) -> dict[int, float]:
    """step -> value of `metric` for one member (a scalar logged for a population is shared)."""
    out = {}
    for row in self.rows:
      v = row.get(metric)
      if isinstance(v, list):
        if len(v) != self.members:
          raise ConfigError(f"{self.path}/metrics.jsonl: {metric} at step {row.get('step')} has {len(v)} "
                            f"values for a population of {self.members}")
        v = v[member]
      if isinstance(v, (int, float)) and not isinstance(v, bool) and "step" in row:
        out[int(row["step"])] = float(v)
    return out

  def final(self, metric: str, member: int) -> float | None:
    """The value at the last step that logged `metric`; None when it is NaN there (a population
    member without the metric at that step, e.g. reverse_kl with no high-quality sample)."""
    s = self.series(metric, member)
    return s[max(s)] if s and math.isfinite(s[max(s)]) else None

  def metric_names(self) -> set[str]:
    return {k for row in self.rows for k, v in row.items()
            if k != "step" and (isinstance(v, (int, float, list)) and not isinstance(v, bool))}


@dataclasses.dataclass
class Group:
  values: tuple[Any, ...]     # of the grouping keys
  runs: list[Run]

  @property
  def n(self) -> int:
    return sum(r.members for r in self.runs)

  def label(self, keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in zip(keys, self.values)) or "all runs"

  def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, standard error) over the seeds that logged `metric` at each step."""
    series = [r.series(metric, m) for r in self.runs for m in range(r.members)]
    steps = sorted(set().union(*series))
    at = [np.asarray([s[t] for s in series if t in s and math.isfinite(s[t])]) for t in steps]
    keep = [i for i, v in enumerate(at) if len(v)]
    steps, at = [steps[i] for i in keep], [at[i] for i in keep]
    mean = np.asarray([v.mean() for v in at])
    se = np.asarray([v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0 for v in at])
    return np.asarray(steps), mean, se

  def finals(self, metric: str) -> list[float]:
    vals = (r.final(metric, m) for r in self.runs for m in range(r.members))
    return [v for v in vals if v is not None]

  @staticmethod
  def half_width(values: Sequence[float]) -> float:
    """h of `values` (0 for fewer than two)."""
    return (interval(values)[1] or 0.0) if len(values) else 0.0

  def diverged(self, metrics: Sequence[str]) -> list[bool]:
    """Per seed (runs in order, members within): stopped by a NaN, or diverged in one of `metrics`
    that has a direction (see the module docstring)."""
    out = []
    directed = [m for m in metrics if m in BEST_MODES]
    halves = {m: self.half_width(self.finals(m)) for m in directed}
    for r in self.runs:
      nan = r.stopped_by_nan()
      for member in range(r.members):
        bad = nan
        for m in directed:
          best, final = r.best(m, member), r.final(m, member)
          if best is None:
            continue
          worse = (best - final if BEST_MODES[m] == "max" else final - best) if final is not None else math.inf
          bad = bad or worse > halves[m]
        out.append(bad)
    return out

  def band(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, half-width of the 95 % interval over the seeds at each step)."""
    steps, mean, se = self.curve(metric)
    counts = self._counts(metric, steps)
    from scipy import stats
    t = np.asarray([stats.t.ppf(0.975, n - 1) if n > 1 else 0.0 for n in counts])
    return steps, mean, t * se

  def _counts(self, metric: str, steps: np.ndarray) -> list[int]:
    series = [r.series(metric, m) for r in self.runs for m in range(r.members)]
    return [sum(1 for s in series if t in s and math.isfinite(s[t])) for t in steps]

  def converged_step(self, metric: str) -> tuple[int | None, float, float]:
    """(converged step or None while still moving, final mean, its interval h_T): the earliest
    logged step from which the mean over seeds stays within ± h_T of the final mean."""
    steps, mean, half = self.band(metric)
    if not len(steps):
      return None, math.nan, math.nan
    final, h = float(mean[-1]), float(half[-1])
    k = len(steps) - 1
    while k > 0 and abs(mean[k - 1] - final) <= h:
      k -= 1
    return (int(steps[k]) if k < len(steps) - 1 else None), final, h


def _is_workdir(d: str) -> bool:
  return os.path.isfile(os.path.join(d, "metrics.jsonl")) and os.path.isfile(os.path.join(d, "config.json"))


@dataclasses.dataclass
class SweepInfo:
  """What sweep.json files say about their trials: preset labels and the order of axis values."""
  labels: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)   # realpath -> {axis: label}
  preset_keys: dict[str, set[str]] = dataclasses.field(default_factory=dict)    # axis -> config keys it sets
  order: dict[str, list[str]] = dataclasses.field(default_factory=dict)         # axis -> formatted values
  keys: list[str] = dataclasses.field(default_factory=list)                     # axes in expansion order


def sweep_info(dirs: Sequence[str]) -> SweepInfo:
  """The preset labels, value orders and axes of the sweep roots among `dirs`, and of the sweep roots
that hold the workdirs among them (a trial named on its own keeps its labels)."""
  info = SweepInfo()
  roots = [d if os.path.isfile(os.path.join(d, SWEEP_FILE)) else os.path.dirname(os.path.abspath(d)) for d in dirs]
  for d in dict.fromkeys(os.path.realpath(r) for r in roots):
    path = os.path.join(d, SWEEP_FILE)
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      spec = json.load(f)
    presets = spec.get("presets", {})
    for axis, labels in presets.items():
      info.preset_keys.setdefault(axis, set()).update(k for keys in labels.values() for k in keys)
    for axis, values in spec.get("axes", {}).items():
      known = info.order.setdefault(axis, [])
      known += [v for v in values if v not in known]
    info.keys += [k for k in spec.get("keys", []) if k not in info.keys]
    for t in spec["trials"]:
      point = t.get("point", {})
      labels = {axis: point[axis] for axis in presets if axis in point}
      if labels:
        info.labels[os.path.realpath(os.path.join(d, t["dir"]))] = labels
  return info


def run_dirs(dirs: Sequence[str]) -> list[str]:
  """Workdirs named or contained (via sweep.json) in `dirs`, in order, each once."""
  out = []
  for d in dirs:
    sweep_file = os.path.join(d, SWEEP_FILE)
    if os.path.isfile(sweep_file):
      with open(sweep_file) as f:
        trials = [os.path.join(d, t["dir"]) for t in json.load(f)["trials"]]
      found = [t for t in trials if _is_workdir(t)]
      if not found:
        raise ConfigError(f"sweep root {d!r} has no trial with metrics.jsonl yet; run the sweep first")
      if len(found) < len(trials):
        print(f"compare: {d}: {len(trials) - len(found)} of {len(trials)} trials have no metrics yet; "
              "left out", file=sys.stderr)
      out += found
    elif _is_workdir(d):
      out.append(d)
    else:
      raise ConfigError(f"{d!r} is neither a train workdir (config.json and metrics.jsonl) "
                        f"nor a sweep root ({SWEEP_FILE})")
  unique = {}
  for d in out:
    unique.setdefault(os.path.realpath(d), d)
  return list(unique.values())


def load_run(workdir: str, info: SweepInfo | None = None) -> Run:
  """A workdir's config (with `trained_steps`, the step it reached, from DIR/run.json when the trainer
  wrote one: a continued or stopped run is labelled by what it trained) and metrics; with `info`,
  the labels of the preset axes its sweep gave it."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = flatten(_with_defaults(json.load(f)))
  progress = os.path.join(workdir, "run.json")
  if os.path.exists(progress):
    try:
      with open(progress) as f:
        config["trained_steps"] = int(json.load(f)["step"])
    except (OSError, ValueError, KeyError, TypeError):
      pass
  labels = (info.labels.get(os.path.realpath(workdir), {}) if info else {})
  config.update(labels)
  preset_keys = frozenset(k for axis in labels for k in info.preset_keys.get(axis, ()))
  return Run(workdir, config, read_metrics(os.path.join(workdir, "metrics.jsonl")),
             int(config.get("population", 1) or 1), preset_keys)


def _with_defaults(saved: dict) -> dict:
  """A run's config.json over the current defaults of its model (config.from_saved), so that a key added
  since an older run was made reads its default there instead of splitting runs that agree on it into
  groups; the file as written when its model is no longer registered."""
  try:
    return from_saved(saved).to_dict()
  except (KeyError, ValueError, TypeError, ConfigError):
    return saved


def _ignored(key: str) -> bool:
  return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def group_runs(runs: Sequence[Run], info: SweepInfo | None = None) -> tuple[list[str], list[Group]]:
  """(grouping keys, groups): the keys whose values differ between runs, a preset axis's label in
  place of the keys it sets; sweep axes first in expansion order, then sorted. Values of a sweep's
  axis follow the sweep's order, others their sorted order."""
  info = info or SweepInfo()
  covered = set().union(*(r.preset_keys for r in runs))
  all_keys = sorted({k for r in runs for k in r.config} - covered)
  keys = [k for k in all_keys if not _ignored(k)
          and len({json.dumps(r.config.get(k), sort_keys=True, default=str) for r in runs}) > 1]
  keys.sort(key=lambda k: (info.keys.index(k), "") if k in info.keys else (len(info.keys), k))
  groups: dict[tuple, Group] = {}
  for r in runs:
    values = tuple(r.config.get(k) for k in keys)
    groups.setdefault(values, Group(values, [])).runs.append(r)

  def rank(key: str, v: Any) -> tuple:
    known = info.order.get(key, [])
    if v is not None and format_value(v) in known:
      return (0, known.index(format_value(v)), "")
    return (1, v, "") if isinstance(v, (int, float)) else (2, 0, str(v))

  return keys, sorted(groups.values(), key=lambda g: tuple(rank(k, v) for k, v in zip(keys, g.values)))


def interval(values: Sequence[float]) -> tuple[float, float | None]:
  """(mean, half-width of the 95% Student-t interval); half-width None for a single value."""
  x = np.asarray(values, np.float64)
  if len(x) < 2:
    return float(x.mean()), None
  from scipy import stats
  return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def format_cell(values: Sequence[float], n: int) -> str:
  """`mean ± half-width`, `value (n=1)`; `(n=k)` where only k of the group's n seeds logged it."""
  if not values:
    return "–"
  mean, half = interval(values)
  cell = f"{mean:.4g} (n=1)" if half is None else f"{mean:.4g} ± {half:.4g}"
  return cell + (f" (n={len(values)})" if half is not None and len(values) != n else "")


def _fmt_value(v: Any) -> str:
  return str(v).replace("|", "\\|")


def choose_metrics(runs: Sequence[Run], requested: Sequence[str] | None) -> list[str]:
  available = set().union(*(r.metric_names() for r in runs))
  if requested:
    if missing := [m for m in requested if m not in available]:
      raise ConfigError(f"metric(s) {', '.join(missing)} not logged by any run; available: "
                        + ", ".join(sorted(available)))
    return list(requested)
  metrics = [m for m in DEFAULT_METRICS if m in available]
  if not metrics:
    raise ConfigError(f"none of the default metrics ({', '.join(DEFAULT_METRICS)}) is logged; "
                      "pass --metrics from: " + ", ".join(sorted(available)))
  return metrics


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def line_styles(n: int) -> list[tuple[str, str]]:
  """A distinct (color, line style) per curve: matplotlib's 10 default colors up to 10 curves (the
  colors of earlier reports), its 20 of tab20 up to 20, then those 20 again dashed, dotted, dash-dotted."""
  colors = [f"C{i}" for i in range(10)]
  if n > 10:
    import matplotlib
    colors = [matplotlib.colors.to_hex(matplotlib.colormaps["tab20"](i)) for i in range(20)]
  styles = ["-", "--", ":", "-."]
  return [(colors[i % len(colors)], styles[(i // len(colors)) % len(styles)]) for i in range(n)]


def plot_metric(groups: Sequence[Group], keys: Sequence[str], metric: str, path: str) -> None:
  """Mean over seeds per group against step, with a band of ±1 standard error."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for g, (color, style) in zip(groups, line_styles(len(groups))):
    steps, mean, se = g.curve(metric)
    if not len(steps):
      continue
    ax.plot(steps, mean, label=g.label(keys), color=color, linestyle=style)
    ax.fill_between(steps, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
  ax.set_xlabel("step")
  ax.set_ylabel(metric)
  ax.set_title(f"{metric}: mean over seeds ± 1 standard error")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def last_sample(workdir: str) -> str | None:
  paths = sorted(glob.glob(os.path.join(workdir, "samples", "step_*.png")))
  return paths[-1] if paths else None


def plot_samples(groups: Sequence[Group], keys: Sequence[str], path: str) -> bool:
  """Each group's first run's newest sample image, side by side; False if no run has one."""
  images = [last_sample(g.runs[0].path) for g in groups]
  if not any(images):
    return False
  from PIL import Image
  plt = _pyplot()
  ncols = min(len(groups), 4)
  nrows = math.ceil(len(groups) / ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 4.4 * nrows), squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for ax, g, image in zip(axes.flat, groups, images):
    if image is None:
      ax.text(0.5, 0.5, "no samples", ha="center", va="center")
    else:
      ax.imshow(np.asarray(Image.open(image).convert("RGB")), interpolation="nearest")
    step = int(re.search(r"step_(\d+)", os.path.basename(image)).group(1)) if image else None
    ax.set_title(g.label(keys) + (f"\nstep {step}" if step is not None else ""), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def two_way_table(groups: Sequence[Group], keys: Sequence[str], cell) -> str:
  """Markdown table of `cell(group)` with rows keys[0]'s values and columns keys[1]'s, in the
  groups' order; "" where no group has that pair."""
  rows = list(dict.fromkeys(g.values[0] for g in groups))
  cols = list(dict.fromkeys(g.values[1] for g in groups))
  at = {g.values[:2]: g for g in groups}
  lines = ["| " + " | ".join([f"{keys[0]} \\ {keys[1]}", *(_fmt_value(c) for c in cols)]) + " |",
           "|" + "---|" * (len(cols) + 1)]
  for r in rows:
    cells = [cell(at[(r, c)]) if (r, c) in at else "" for c in cols]
    lines.append("| " + " | ".join([_fmt_value(r), *cells]) + " |")
  return "\n".join(lines)


def plot_budget(groups: Sequence[Group], keys: Sequence[str], metric: str, path: str) -> None:
  """One panel per group: the mean over seeds against step with its 95 % band, the final mean's
  ± h_T band (grey) and the converged step (dashed; none while still moving)."""
  plt = _pyplot()
  ncols = min(len(groups), 4)
  nrows = math.ceil(len(groups) / ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False, sharey=True)
  for ax in axes.flat:
    ax.axis("off")
  for ax, g in zip(axes.flat, groups):
    ax.axis("on")
    steps, mean, half = g.band(metric)
    if not len(steps):
      continue
    step, final, h = g.converged_step(metric)
    ax.axhspan(final - h, final + h, color="0.8", linewidth=0)
    ax.plot(steps, mean, color="C0")
    ax.fill_between(steps, mean - half, mean + half, color="C0", alpha=0.2, linewidth=0)
    if step is not None:
      ax.axvline(step, color="C3", linestyle="--")
    ax.set_title(g.label(keys) + f"\n{'converged at ' + str(step) if step is not None else 'still moving'}",
                 fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  fig.suptitle(f"{metric}: mean over seeds ± 95 % interval; grey: final mean ± its interval", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def budget(groups: Sequence[Group], keys: Sequence[str], metric: str) -> tuple[str, int | None]:
  """(markdown table of each group's converged step, the study's budget: the latest converged
  step over the groups, None when a group is still moving at its last step)."""
  lines = ["| group | n | converged step | last step | final mean ± h_T |", "|---|---|---|---|---|"]
  chosen: int | None = 0
  for g in groups:
    steps, _, _ = g.band(metric)
    step, final, h = g.converged_step(metric)
    last = int(steps[-1]) if len(steps) else None
    lines.append(f"| {g.label(keys)} | {g.n} | {step if step is not None else 'still moving'} | {last} | "
                 f"{final:.4g} ± {h:.4g} |")
    chosen = None if step is None or chosen is None else max(chosen, step)
  return "\n".join(lines), chosen


def report(dirs: Sequence[str], out: str, metrics: Sequence[str] | None = None,
           budget_metrics: Sequence[str] = ()) -> str:
  """Writes out/report.md, out/<metric>_vs_step.png and out/samples.png (with two grouping keys,
  a two-way table per metric; with `budget_metrics`, each one's converged steps and
  out/budget_<metric>.png); returns the table."""
  info = sweep_info(dirs)
  runs = [load_run(d, info) for d in run_dirs(dirs)]
  metrics = choose_metrics(runs, metrics)
  if missing := [m for m in budget_metrics if m not in metrics]:
    raise ConfigError(f"--budget {', '.join(missing)}: not among the compared metrics ({', '.join(metrics)})")
  keys, groups = group_runs(runs, info)
  for g in groups:
    seeds = [r.seed(m) for r in g.runs for m in range(r.members)]
    if len(set(seeds)) < len(seeds):  # e.g. the same sweep compared twice: n would overstate the evidence
      print(f"compare: warning: {g.label(keys)} has repeated seeds {sorted(seeds)}", file=sys.stderr)
  os.makedirs(out, exist_ok=True)

  diverged = {id(g): sum(g.diverged(metrics)) for g in groups}
  header = [*(keys or ["group"]), "n", *metrics, "diverged"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for g in groups:
    cells = [_fmt_value(v) for v in g.values] or [g.label(keys)]
    cells += [str(g.n), *(format_cell(g.finals(m), g.n) for m in metrics), str(diverged[id(g)])]
    lines.append("| " + " | ".join(cells) + " |")
  table = "\n".join(lines)

  two_way = []
  if len(keys) == 2:
    for m in metrics:
      two_way += [f"### {m}", "", two_way_table(groups, keys, lambda g, m=m: format_cell(g.finals(m), g.n)), ""]
    two_way += ["### diverged (seeds of n)", "",
                two_way_table(groups, keys, lambda g: f"{diverged[id(g)]} of {g.n}"), ""]

  budgets = []
  for m in budget_metrics:
    name = "budget_" + re.sub(r"[^A-Za-z0-9._-]", "_", m) + ".png"
    plot_budget(groups, keys, m, os.path.join(out, name))
    text, chosen = budget(groups, keys, m)
    verdict = (f"budget: {chosen} steps (the latest converged step)" if chosen is not None
               else "no budget: a group is still moving at its last step; the pilot needs more steps")
    budgets += [f"### {m}: {verdict}", "", text, "", f"![budget {m}]({name})", ""]

  plots = []
  for m in metrics:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", m) + "_vs_step.png"
    plot_metric(groups, keys, m, os.path.join(out, name))
    plots.append((m, name))
  has_samples = plot_samples(groups, keys, os.path.join(out, "samples.png"))

  seeds = sum(g.n for g in groups)
  doc = [
      "# Comparison", "",
      f"{len(runs)} runs, {seeds} seeds, {len(groups)} groups"
      + (f" (by {', '.join(keys)})" if keys else "") + "; `seed` and bookkeeping keys are not grouped on.",
      "Each cell: the final value (at the last step that logged it) as mean ± half-width of the 95% "
      "interval over seeds (Student t, n-1 degrees of freedom).", "",
      "diverged: seeds stopped by a NaN, or whose final value of a metric is worse than their best after "
      "step 0 by more than the group's interval (see gan_jax/compare.py).", "",
      table, "",
      *(["## Two-way tables", "", *two_way] if two_way else []),
      *(["## Budget", "", "The converged step: the earliest logged step from which the mean over seeds stays "
         "within ± h_T (the 95 % interval of the final values) of its final value.", "", *budgets]
        if budgets else []),
      *(f"![{m}]({name})" for m, name in plots),
      *(["![samples](samples.png)"] if has_samples else []), "",
      "## Runs", "",
      *(f"- {g.label(keys)}: " + ", ".join(f"{r.path} (seed{'s' if r.members > 1 else ''} "
                                           f"{_seed_range(r)})" for r in g.runs) for g in groups),
  ]
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(doc) + "\n")
  return table


def _seed_range(r: Run) -> str:
  return str(r.seed(0)) if r.members == 1 else f"{r.seed(0)}-{r.seed(r.members - 1)}"
