"""Side effects of a run, kept at the edge: metrics.jsonl, sample images, plots, wandb.

Only process 0 writes; every function here is a no-op elsewhere or is only called there.
"""
from __future__ import annotations

import json
import math
import os
import sys
import warnings
from typing import Any, Callable

import numpy as np
from PIL import Image


def truncate_jsonl(path: str, step: int, keep: Callable[[dict], bool] | None = None) -> None:
  """Drops the rows of a JSON-lines file whose "step" is after `step` (except those `keep`
  accepts), atomically: what a resumed run rewrites is never duplicated. A line that is not a row
  (torn by a kill, or damaged) is never dropped silently: it is appended to PATH.damaged with a
  warning (the rows after `step` are rebuilt by the resumed run; a damaged earlier row stays only
  there). A torn last line (no newline: the process died writing it) is dropped without one."""
  if not os.path.exists(path):
    return
  kept, damaged = [], []
  with open(path) as f:
    lines = f.readlines()
  for i, line in enumerate(lines):
    try:
      row = json.loads(line)
      if row["step"] <= step or (keep is not None and keep(row)):
        kept.append(line if line.endswith("\n") else line + "\n")
    except (json.JSONDecodeError, KeyError, TypeError):
      if not (i == len(lines) - 1 and not line.endswith("\n")):
        damaged.append(line if line.endswith("\n") else line + "\n")
  if damaged:
    with open(path + ".damaged", "a") as f:
      f.writelines(damaged)
    print(f"gan_jax: warning: {len(damaged)} damaged line(s) of {path} moved to {path}.damaged; the rows after "
          f"step {step} are written again by this run", file=sys.stderr)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(kept)
  os.replace(tmp, path)


class MetricWriter:
  """Appends `{"step": N, name: value, ...}` lines to DIR/metrics.jsonl (and to wandb)."""

  def __init__(self, path: str, wandb_run: Any = None):
    self.path = path
    self.wandb_run = wandb_run

  def truncate_after(self, step: int) -> None:
    """Drops lines logged after `step`: a resumed run rewrites them, never duplicates them."""
    truncate_jsonl(self.path, step)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    row = {"step": int(step), **{k: _py(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self.wandb_run is not None:
      try:
        self.wandb_run.log({k: v for k, v in row.items() if k != "step"}, step=int(step))
      except Exception as e:  # noqa: BLE001 - wandb failing must not stop training
        warnings.warn(f"wandb logging failed, continuing with local logs only: {e}", stacklevel=2)
        self.wandb_run = None


  def image(self, step: int, key: str, path: str) -> None:
    if self.wandb_run is not None:
      try:
        import wandb
        self.wandb_run.log({key: wandb.Image(path)}, step=int(step))
      except Exception as e:  # noqa: BLE001
        warnings.warn(f"wandb image logging failed: {e}", stacklevel=2)

  def close(self) -> None:
    if self.wandb_run is not None:
      try:
        self.wandb_run.finish()
      except Exception as e:  # noqa: BLE001
        warnings.warn(f"wandb finish failed: {e}", stacklevel=2)
      self.wandb_run = None


def _py(v: Any) -> Any:
  v = np.asarray(v)
  return v.item() if v.ndim == 0 else v.tolist()


def read_metrics(path: str) -> list[dict]:
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          continue
  return rows


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1, min_size: int = 256) -> np.ndarray:
  """images: [N, H, W, C] in [-1, 1] -> uint8 grid [rows·(H+pad)+pad, cols·(W+pad)+pad, C];
  small images are upscaled (nearest) so the grid is at least `min_size` pixels wide."""
  images = np.asarray(images, np.float32)
  n, h, w, c = images.shape
  ncol = ncol or int(math.ceil(math.sqrt(n)))
  nrow = int(math.ceil(n / ncol))
  scale = max(1, int(math.ceil(min_size / (ncol * w))))
  images = np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)
  h, w = h * scale, w * scale
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
  pixels = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for i in range(n):
    r, col = divmod(i, ncol)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = pixels[i]
  return grid


def save_png(array: np.ndarray, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_scatter(samples: np.ndarray, modes: np.ndarray | None, path: str, title: str = "") -> None:
  """2-D samples (blue) over the mixture's modes (red crosses)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
  ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:blue", label="samples")
  if modes is not None:
    ax.scatter(modes[:, 0], modes[:, 1], s=60, marker="x", color="tab:red", label="modes")
    lim = 1.4 * np.abs(modes).max() + 0.2
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
  ax.set_aspect("equal")
  ax.legend(loc="upper right", fontsize=8)
  ax.set_title(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)


def save_loss_curves(metrics_path: str, out_path: str) -> None:
  """Plots every *_loss series of metrics.jsonl (and mode coverage when logged) against step."""
  rows = read_metrics(metrics_path)
  loss_keys = sorted({k for r in rows for k in r if k.endswith("_loss")})
  if not loss_keys:
    return
  extra = [k for k in ("modes_covered", "high_quality_fraction") if any(k in r for r in rows)]
  plt = _pyplot()
  fig, axes = plt.subplots(1, 1 + len(extra), figsize=(5 * (1 + len(extra)), 3.5), dpi=100, squeeze=False)
  ax = axes[0, 0]
  for k in loss_keys:
    pts = [(r["step"], r[k]) for r in rows if k in r]
    ax.plot(*zip(*pts), label=k)
  ax.set_xlabel("step")
  ax.set_title("losses")
  ax.legend()
  for a, k in zip(axes[0, 1:], extra):
    pts = [(r["step"], r[k]) for r in rows if k in r]
    a.plot(*zip(*pts), marker=".")
    a.set_xlabel("step")
    a.set_title(k)
  fig.tight_layout()
  fig.savefig(out_path)
  plt.close(fig)


def wandb_mode(mode: str) -> str:
  """'auto' -> online when an API key is configured (env or ~/.netrc), else disabled."""
  if mode != "auto":
    return mode
  netrc = os.path.expanduser("~/.netrc")
  has_key = bool(os.environ.get("WANDB_API_KEY")) or (
      os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read())
  return "online" if has_key else "disabled"


def init_wandb(config: Any, workdir: str) -> Any:
  """A wandb run for process 0, or None when disabled or when wandb cannot start."""
  mode = wandb_mode(config.wandb.mode)
  if mode == "disabled":
    return None
  try:
    import wandb
    return wandb.init(mode=mode, project=config.wandb.project, entity=config.wandb.entity or None,
                      name=config.wandb.name or os.path.basename(os.path.abspath(workdir)),
                      dir=workdir, config=config.to_dict(), resume="allow",
                      id=_run_id(workdir))
  except Exception as e:  # noqa: BLE001 - no network must not stop training
    print(f"warning: wandb could not start ({e}); logging locally only", file=sys.stderr)
    return None


def _run_id(workdir: str) -> str:
  """A stable wandb run id per workdir, so a resumed run continues the same wandb run."""
  path = os.path.join(workdir, "wandb_id.txt")
  if not os.path.exists(path):
    import uuid
    with open(path, "w") as f:
      f.write(uuid.uuid4().hex[:12])
  with open(path) as f:
    return f.read().strip()
