"""Soak test of resuming: train a toy experiment while killing it (SIGKILL) at random moments,
then check that the finished run equals an uninterrupted one.

  python scripts/soak.py [--config experiments/dcgan_digits.py:runlocal] [--kills 20] [--steps 200]
                         [--ckpt_every N] [--log_every M] [--sigterm 0.3] [--seed 0] [--root DIR]
                         [--set KEY=VALUE ...]

Runs `scripts/train.py` once without interruption (DIR/reference, which also gives the time per
step), then again (DIR/soak) with `--kills` kill -9s, each at a uniformly random moment within
the next 4 checkpoint intervals after the trainer's "starting"/"resuming" line (compilation
included), so they land during compilation, steps, asynchronous checkpoint writes, sample and
metric writing alike; a fraction `--sigterm` of them are SIGTERMs instead (the trainer saves the
step it is in, wherever it falls, and exits 0). `--ckpt_every` and `--log_every` are drawn from
`--seed` independently (3..12 and 2..15) unless given, so checkpoints and the intervals that
metrics.jsonl rows average over do not line up. The same command is rerun after each kill, as a
user would. At the end
every leaf of the final train state (G, D, EMA, optimizer states, step) and every metrics.jsonl
value must equal the reference run's (exit 0), and metrics.jsonl must have no torn or repeated
line; otherwise exit 1 with what differs. Prints how many kills hit a run in progress, how many
left an interrupted checkpoint write behind, and the wall time. Not part of the test suite
(minutes to hours); tests/test_faults.py runs it with a few kills.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def train_command(a, workdir: str) -> list[str]:
  cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", a.config, "--workdir", workdir,
         f"--config.total_steps={a.steps}", f"--config.ckpt_every={a.ckpt_every}",
         f"--config.log_every={a.log_every}", "--config.wandb.mode=disabled"]
  return cmd + [f"--config.{kv}" for kv in a.set]


def start_step(log: str, offset: int) -> int | None:
  """The step the trainer started from (0, or the one it resumed at), once it has said so."""
  with open(log, errors="replace") as f:
    f.seek(offset)
    text = f.read()
  if "gan_jax: starting" in text:
    return 0
  match = re.search(r"gan_jax: resuming at step (\d+)", text)
  return int(match.group(1)) if match else None


def run_to_end(cmd: list[str], log: str) -> float:
  """Runs `cmd` to its end; seconds from its start line to its exit."""
  offset = os.path.getsize(log) if os.path.exists(log) else 0
  with open(log, "a") as err:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
  while proc.poll() is None and start_step(log, offset) is None:
    time.sleep(0.05)
  t0 = time.monotonic()
  if proc.wait() != 0:
    sys.exit(f"soak: {' '.join(cmd)} failed with exit {proc.returncode}; see {log}")
  return time.monotonic() - t0


def killed_run(cmd: list[str], log: str, step_s: float, a, rng: random.Random) -> str:
  """Starts `cmd`, stops it at a random moment of its run with SIGKILL (or, a fraction `--sigterm` of
  the time, SIGTERM: it saves and exits 0); 'killed', 'terminated' or 'finished'."""
  offset = os.path.getsize(log) if os.path.exists(log) else 0
  with open(log, "a") as err:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
  while proc.poll() is None and start_step(log, offset) is None:
    time.sleep(0.05)
  start = start_step(log, offset) or 0
  window = step_s * min(a.steps - start, 4 * a.ckpt_every)
  deadline = time.monotonic() + rng.uniform(0.0, window)
  while proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.01)
  if proc.poll() is not None:
    if proc.returncode != 0:
      sys.exit(f"soak: the run failed by itself with exit {proc.returncode}; see {log}")
    return "finished"
  if rng.random() < a.sigterm:
    proc.send_signal(signal.SIGTERM)
    if proc.wait() != 0:
      sys.exit(f"soak: the run exited {proc.returncode} after a SIGTERM; see {log}")
    return "terminated"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  return "killed"


def compare(reference: str, soak: str) -> list[str]:
  """What differs between two finished runs: final state leaves and metrics.jsonl rows."""
  import jax
  import numpy as np

  from gan_jax.train.loop import load_run
  problems = []
  a = load_run(reference)
  b = load_run(soak)
  if a[-1] != b[-1]:
    problems.append(f"final checkpoint steps differ: {a[-1]} vs {b[-1]}")
  leaves_a, leaves_b = jax.tree_util.tree_leaves_with_path(a[5]), jax.tree.leaves(b[5])
  for (path, x), y in zip(leaves_a, leaves_b, strict=True):
    if not np.array_equal(np.asarray(x), np.asarray(y)):
      diff = float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
      problems.append(f"state{jax.tree_util.keystr(path)} differs (max |diff| {diff:.3g})")
  rows = {}
  for name, run in (("reference", reference), ("soak", soak)):
    with open(os.path.join(run, "metrics.jsonl")) as f:
      lines = f.read().splitlines()
    try:
      parsed = [json.loads(line) for line in lines]
    except json.JSONDecodeError as e:
      problems.append(f"{name} metrics.jsonl has a torn line: {e}")
      continue
    steps = [r["step"] for r in parsed]
    if steps != sorted(set(steps)):
      problems.append(f"{name} metrics.jsonl steps are repeated or out of order")
    rows[name] = parsed
  if len(rows) == 2:
    timing = ("steps_per_sec", "images_per_sec", "compile_s")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in timing} for r in rs]  # noqa: E731
    if strip(rows["reference"]) != strip(rows["soak"]):
      problems.append("metrics.jsonl values differ from the reference run's")
  return problems


EXAMPLES = (
    "python scripts/soak.py --kills 30 --steps 200",
    "python scripts/soak.py --kills 20 --steps 200 --ckpt_every 5 --seed 1 --root runs/soak1",
)


def main() -> int:
  from gan_jax import cli

  p = cli.ArgumentParser(__doc__, EXAMPLES)
  p.add_argument("--config", default=os.path.join(ROOT, "experiments", "dcgan_digits.py") + ":runlocal",
                 help="the experiment to train")
  p.add_argument("--kills", type=int, default=20, help="kill -9s during the run")
  p.add_argument("--steps", type=int, default=200, help="total_steps of both runs")
  p.add_argument("--ckpt_every", type=int, default=None, help="checkpoint interval (default: drawn, 3..12)")
  p.add_argument("--log_every", type=int, default=None, help="metrics.jsonl interval (default: drawn, 2..15)")
  p.add_argument("--sigterm", type=float, default=0.3, help="fraction of the kills that are SIGTERMs")
  p.add_argument("--seed", type=int, default=0, help="seed of the kill times")
  p.add_argument("--root", default=os.path.join("runs", "soak"), help="folder of the two runs")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
  a = p.parse_args()
  rng = random.Random(a.seed)
  a.ckpt_every = rng.randint(3, 12) if a.ckpt_every is None else a.ckpt_every
  a.log_every = rng.randint(2, 15) if a.log_every is None else a.log_every
  if a.kills < 0 or a.steps < 1 or a.ckpt_every < 1 or a.log_every < 1 or not 0 <= a.sigterm <= 1:
    print("error: --kills must be >= 0, --steps, --ckpt_every and --log_every >= 1, --sigterm in [0, 1]",
          file=sys.stderr)
    return 2
  reference, soak = os.path.join(a.root, "reference"), os.path.join(a.root, "soak")
  if os.path.exists(soak):
    shutil.rmtree(soak)
  os.makedirs(a.root, exist_ok=True)
  log = os.path.join(a.root, "soak.log")
  if os.path.exists(reference):
    shutil.rmtree(reference)
  step_s = run_to_end(train_command(a, reference), os.path.join(a.root, "reference.log")) / a.steps
  outcomes, interrupted = [], set()
  t1 = time.monotonic()
  for _ in range(a.kills):
    outcome = killed_run(train_command(a, soak), log, step_s, a, rng)
    outcomes.append(outcome)
    ckpt_dir = os.path.join(soak, "checkpoints")
    if os.path.isdir(ckpt_dir):
      interrupted.update(n for n in os.listdir(ckpt_dir) if ".orbax-checkpoint-tmp" in n)
    if outcome == "finished":
      break
  run_to_end(train_command(a, soak), log)
  problems = compare(reference, soak)
  summary = {"kills": outcomes.count("killed"), "sigterms": outcomes.count("terminated"),
             "finished_before_kill": outcomes.count("finished"), "interrupted_checkpoint_writes": len(interrupted),
             "steps": a.steps, "ckpt_every": a.ckpt_every, "log_every": a.log_every,
             "soak_wall_s": round(time.monotonic() - t1, 1), "equal_to_reference": not problems}
  print(json.dumps(summary))
  for line in problems[:20]:
    print(f"soak: {line}", file=sys.stderr)
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
