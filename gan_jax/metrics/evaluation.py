"""One evaluation of a generator with the published-network metrics (FID, KID, IS, P/R), shared by
scripts/evaluate.py and the trainer's `eval.every`, and the bookkeeping of the best checkpoint.

`Evaluator` holds the feature networks and the reference statistics, loaded once; calling it
samples N images chunk by chunk from a generator (streamed: memory constant in N for FID),
extracts their features sharded over the mesh and every process, and compares them with the
reference. Every result carries its protocol (networks, weights, resize, N, reference), so a
number is never read without the conditions it was measured under.

`eval.best` keeps the checkpoint with the best value of one metric in `DIR/best/` (Orbax, one
step kept) and `DIR/best.json` ({"metric", "mode", "value", "step"}); `BEST_MODES` says which
direction is better for every metric the project computes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Callable

import jax
import numpy as np

from gan_jax import parallel
from gan_jax.errors import ConfigError
from gan_jax.metrics import fid
from gan_jax.metrics.digit_classifier import cache_dir

# Metric -> "min" or "max": which values are better, for `eval.best`.
BEST_MODES = {
    "fid": "min", "kid": "min", "digit_fd": "min", "reverse_kl": "min",
    "is": "max", "precision": "max", "recall": "max", "density": "max", "coverage": "max",
    "modes_covered": "max", "high_quality_fraction": "max", "digit_accuracy": "max",
    "mode_collapse": "min", "min_mode_fraction": "max",
}
# The `eval.metrics` entry that produces each published-network value.
SOURCE = {"fid": "fid", "kid": "kid", "is": "is", "precision": "pr", "recall": "pr", "density": "pr",
          "coverage": "pr"}


def cached_reference(data_config, metrics: tuple[str, ...], inception, vgg, num_ref: int, batch_size: int,
                     mesh=None, progress: bool = True, ds=None) -> tuple[fid.RefStats, str]:
  """Reference statistics of a run's own training data (its first `num_ref` images), computed
  once and cached under $GAN_JAX_CACHE/ref_stats, keyed by data config, metrics, protocol and size.
  `ds`: the dataset of `data_config` when the caller has already built it."""
  if ds is None:
    from gan_jax.data import build_dataset
    ds = build_dataset(data_config)
  n = min(num_ref, len(ds.source))
  key = json.dumps({"data": data_config.to_dict(), "metrics": sorted(metrics), "n": n,
                    "protocol": fid.protocols(inception, vgg)}, sort_keys=True, default=str)
  path = os.path.join(cache_dir(), "ref_stats",
                      f"{data_config.name}_{data_config.split}_{data_config.resolution}_"
                      f"{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz")
  if os.path.exists(path):
    return fid.RefStats.load(path), path
  meta = {k: data_config[k] for k in ("name", "split", "resolution", "channels", "path", "tfds_name")}
  ref = fid.reference_stats(ds, meta, metrics, inception, vgg, n, mesh=mesh, batch_size=batch_size,
                            progress=progress)
  if jax.process_index() == 0:
    ref.save(path)
  return ref, path


class Evaluator:
  """FID/KID/IS/PR of generators against one reference, networks and reference loaded once.

  Missing weight files (at construction), an unreadable reference or one made with another
  protocol (`set_reference`) raise ConfigError before anything is sampled."""

  def __init__(self, metrics: tuple[str, ...], mesh, batch_size: int = 50, inception_path: str | None = None,
               vgg_path: str | None = None, resize: str = "bilinear", image_size: int = 299,
               progress: bool = True):
    self.metrics, self.mesh, self.batch_size, self.progress = tuple(metrics), mesh, batch_size, progress
    self.inception, self.vgg = fid.load_networks(self.metrics, inception_path, vgg_path, resize, image_size)
    self.protocol = fid.protocols(self.inception, self.vgg)
    self.ref, self.ref_path = None, None

  @property
  def needs_reference(self) -> bool:
    return any(m != "is" for m in self.metrics)

  def set_reference(self, ref_path: str | None = None, data_config=None, num_ref: int = 50_000, ds=None) -> None:
    """Reference statistics from `ref_path` (scripts/ref_stats.py), or else of a run's own
    training data (`data_config`, its first `num_ref` images, cached); refused when made with
    another protocol or lacking what the metrics need."""
    if not self.needs_reference:
      return
    if ref_path:
      self.ref, self.ref_path = fid.RefStats.load(ref_path), ref_path
    else:
      ref_metrics = tuple(m for m in self.metrics if m != "is")
      self.ref, self.ref_path = cached_reference(data_config, ref_metrics, self.inception, self.vgg, num_ref,
                                                 self.batch_size, self.mesh, self.progress, ds)
    fid.check_protocol(self.ref, self.protocol, self.ref_path, self.metrics)

  def __call__(self, sample: Callable, key: jax.Array, num: int, chunk: int, num_classes: int = 0,
               desc: str = "evaluate", seed: int = 0) -> dict:
    """Metrics of `num` images from `sample(key_i, n, labels)` -> [n, H, W, C] in [-1, 1], drawn
    in chunks of `chunk` with key_i = fold_in(key, i); conditional models cycle through the
    classes. Returns the values and, under "record", what eval.jsonl stores with them."""
    host_key = np.asarray(key)

    def chunks():
      for i in range(math.ceil(num / chunk)):
        start, n = i * chunk, min(chunk, num - i * chunk)
        labels = (np.arange(start, start + n) % num_classes).astype(np.int32) if num_classes else None
        k = parallel.replicate(np.asarray(jax.random.fold_in(host_key, i)), self.mesh)
        yield sample(k, n, labels)

    fs = fid.compute_features(chunks(), self.metrics, self.inception, self.vgg, self.mesh, self.batch_size,
                              total=num, desc=desc, progress=self.progress)
    values = fid.compare(fs, self.ref, seed=seed)   # IS alone needs no reference
    record = {"num": fs.num, "metrics": list(self.metrics),
              "ref": os.path.abspath(self.ref_path) if self.ref_path else None,
              "num_ref": self.ref.num if self.ref is not None else None, "protocol": self.protocol}
    return {**values, "record": record}


def check_best(metric: str, metrics: tuple[str, ...], dataset_metrics: tuple[str, ...], population: int,
               every: int) -> str:
  """Validates `eval.best` against what the run evaluates; returns its mode ("min"/"max")."""
  if metric not in BEST_MODES:
    raise ConfigError(f"unknown eval.best {metric!r}; valid choices: {', '.join(sorted(BEST_MODES))}")
  produced = {k for k, src in SOURCE.items() if src in metrics} | set(dataset_metrics)
  if metric not in produced:
    raise ConfigError(f"eval.best={metric!r} is not computed by this run; it computes: "
                      f"{', '.join(sorted(produced)) or 'nothing (set eval.metrics)'}")
  if not every:
    raise ConfigError("eval.best needs eval.every > 0")
  if population > 1:
    raise ConfigError("eval.best keeps one run's checkpoint; use it with population = 1")
  return BEST_MODES[metric]


class BestTracker:
  """The best value of one metric so far and the step it was reached, in DIR/best.json."""

  def __init__(self, workdir: str, metric: str, mode: str):
    self.path, self.metric, self.mode = os.path.join(workdir, "best.json"), metric, mode
    self.value, self.step = None, None
    if os.path.exists(self.path):
      with open(self.path) as f:
        saved = json.load(f)
      if saved.get("metric") == metric:
        self.value, self.step = saved["value"], saved["step"]

  def improves(self, value: float) -> bool:
    if not np.isfinite(value):
      return False
    if self.value is None:
      return True
    return value < self.value if self.mode == "min" else value > self.value

  def update(self, step: int, value: float) -> None:
    self.value, self.step = float(value), int(step)
    if jax.process_index() == 0:
      tmp = f"{self.path}.tmp"
      with open(tmp, "w") as f:
        json.dump({"metric": self.metric, "mode": self.mode, "value": self.value, "step": self.step}, f)
      os.replace(tmp, self.path)
