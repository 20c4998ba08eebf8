"""Helpers of the official-fixture scripts: seeded random weights for a whole PyTorch module, the
checkout's commit, and the manifest. torch is imported by the callers (fixture making only)."""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def add_to_path(repo_path: str, *subdirs: str) -> None:
  """Puts the official checkout (or its subdirectories) first on sys.path, so its modules import."""
  for d in reversed([os.path.join(repo_path, s) for s in subdirs] or [repo_path]):
    sys.path.insert(0, os.path.abspath(d))


def randomize(module, seed: int, scale: float = 0.1) -> None:
  """Every floating parameter and buffer ~ N(0, scale²), variances |N(1, 0.1²)| + 0.2: every tensor changes
  the output (power-iteration vectors, BN statistics, gains alike); integer buffers are kept."""
  import torch
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
      if not t.is_floating_point():
        continue
      noise = torch.randn(t.shape, generator=g, dtype=t.dtype)
      last = name.rsplit(".", 1)[-1]
      if "var" in last:
        t.copy_(noise.mul(0.1).add(1.0).abs().add(0.2))
      else:
        t.copy_(noise.mul(scale))


def numpy_state(sd) -> dict:
  return {k: v.detach().cpu().numpy() for k, v in sd.items()}


def commit_of(repo_path: str) -> str:
  """The checkout's HEAD, or the OFFICIAL_COMMIT environment variable for a checkout without .git."""
  try:
    return subprocess.check_output(["git", "-C", repo_path, "rev-parse", "HEAD"], text=True,
                                   stderr=subprocess.DEVNULL).strip()
  except (OSError, subprocess.CalledProcessError):
    return os.environ.get("OFFICIAL_COMMIT", "unknown")


def write_manifest(out_dir: str, manifest: dict) -> None:
  with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")


def save_npz(out_dir: str, name: str, arrays: dict) -> None:
  np.savez_compressed(os.path.join(out_dir, name), **{k: np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f"
                                                      else np.asarray(v) for k, v in arrays.items()})


def shapes_json(path: str, state_dicts: dict) -> None:
  """{network: {key: shape}}: the full-size official names and shapes (no weights)."""
  nets = [f"{json.dumps(net)}: {{\n" + ",\n".join(f"  {json.dumps(k)}: {list(v.shape)}" for k, v in sd.items()) + "}"
          for net, sd in state_dicts.items()]
  with open(path, "w") as f:
    f.write("{" + ",\n".join(nets) + "}\n")


def timed_iterations(torch, repo_path: str, batch: int, steps: int, warmup: int, iteration,
                     prepare=lambda: ()) -> dict:
  """Runs `iteration(*prepare())` warmup + steps times, timing the last `steps` (prepare's inputs are made
  outside the timing): the official step's row of `benchmark.py --compare-official`."""
  times = []
  for i in range(warmup + steps):
    args = prepare()
    t0 = time.perf_counter()
    iteration(*args)
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  median = statistics.median(times)
  return {"framework": "torch", "torch_version": torch.__version__, "threads": torch.get_num_threads(),
          "batch": batch, "step_times_s": times, "median_step_s": median, "mean_step_s": statistics.mean(times),
          "images_per_s": batch / median, "official_commit": commit_of(repo_path)}
