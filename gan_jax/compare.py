"""Compare runs: final metrics with 95% intervals over seeds, curves against step, samples side by side.

Inputs are train workdirs (config.json + metrics.jsonl) or sweep roots (sweep.json, written by
scripts/sweep.py). A population run (config `population` N > 1, metrics logged as lists of N
values) counts as N seeds: member i is seed `seed + i`. Runs are grouped by the config keys whose
values differ between them, except `seed` and keys that change neither training nor its
metrics (logging intervals, paths, wandb). A run's final value of a metric is its value at the
last step that logged it; a group reports mean ± t_{0.975, n-1}·s/√n over its seeds.
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

from gan_jax.config import flatten
from gan_jax.errors import ConfigError
from gan_jax.logging import read_metrics
from gan_jax.sweep import SWEEP_FILE

DEFAULT_METRICS = ("modes_covered", "high_quality_fraction", "reverse_kl", "d_loss", "g_loss")
# Keys that do not make runs different experiments: the seed (the statistics are over it) and
# bookkeeping that changes neither the training nor the metrics.
IGNORED_KEYS = ("seed", "population", "log_every", "ckpt_every", "sample_every", "ckpt.keep", "sample.num",
                "eval.every", "data.data_dir", "data.path", "data.download", "data.num_threads")
IGNORED_PREFIXES = ("wandb.",)


@dataclasses.dataclass
class Run:
  path: str
  config: dict[str, Any]      # flattened: {"loss.name": ..., "seed": ...}
  rows: list[dict[str, Any]]  # metrics.jsonl
  members: int                # seeds trained in this workdir (config `population`)

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


def _is_workdir(d: str) -> bool:
  return os.path.isfile(os.path.join(d, "metrics.jsonl")) and os.path.isfile(os.path.join(d, "config.json"))


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


def load_run(workdir: str) -> Run:
  """A workdir's config (with `trained_steps`, the step it reached, from DIR/run.json when the trainer
  wrote one: a continued or stopped run is labelled by what it trained) and metrics."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = flatten(json.load(f))
  progress = os.path.join(workdir, "run.json")
  if os.path.exists(progress):
    try:
      with open(progress) as f:
        config["trained_steps"] = int(json.load(f)["step"])
    except (OSError, ValueError, KeyError, TypeError):
      pass
  return Run(workdir, config, read_metrics(os.path.join(workdir, "metrics.jsonl")),
             int(config.get("population", 1) or 1))


def _ignored(key: str) -> bool:
  return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def group_runs(runs: Sequence[Run]) -> tuple[list[str], list[Group]]:
  """(grouping keys, groups): the keys whose values differ between runs, in sorted order."""
  all_keys = sorted({k for r in runs for k in r.config})
  keys = [k for k in all_keys if not _ignored(k)
          and len({json.dumps(r.config.get(k), sort_keys=True, default=str) for r in runs}) > 1]
  groups: dict[tuple, Group] = {}
  for r in runs:
    values = tuple(r.config.get(k) for k in keys)
    groups.setdefault(values, Group(values, [])).runs.append(r)
  order = lambda g: tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in g.values)
  return keys, sorted(groups.values(), key=order)


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


def plot_metric(groups: Sequence[Group], keys: Sequence[str], metric: str, path: str) -> None:
  """Mean over seeds per group against step, with a band of ±1 standard error."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for g in groups:
    steps, mean, se = g.curve(metric)
    if not len(steps):
      continue
    line, = ax.plot(steps, mean, label=g.label(keys))
    ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2, linewidth=0)
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


def report(dirs: Sequence[str], out: str, metrics: Sequence[str] | None = None) -> str:
  """Writes out/report.md, out/<metric>_vs_step.png and out/samples.png; returns the table."""
  runs = [load_run(d) for d in run_dirs(dirs)]
  metrics = choose_metrics(runs, metrics)
  keys, groups = group_runs(runs)
  for g in groups:
    seeds = [r.seed(m) for r in g.runs for m in range(r.members)]
    if len(set(seeds)) < len(seeds):  # e.g. the same sweep compared twice: n would overstate the evidence
      print(f"compare: warning: {g.label(keys)} has repeated seeds {sorted(seeds)}", file=sys.stderr)
  os.makedirs(out, exist_ok=True)

  header = [*(keys or ["group"]), "n", *metrics]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for g in groups:
    cells = [_fmt_value(v) for v in g.values] or [g.label(keys)]
    cells += [str(g.n), *(format_cell(g.finals(m), g.n) for m in metrics)]
    lines.append("| " + " | ".join(cells) + " |")
  table = "\n".join(lines)

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
      table, "",
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
