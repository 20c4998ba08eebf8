"""Run the same gan_jax command on every host: N local processes, SLURM, or a TPU VM pod slice.

  python scripts/launch.py --backend local [--num_processes 2] [--devices_per_process 1] -- train.py ARGS
  python scripts/launch.py --backend slurm [--nodes N] [--gpus_per_node G] [--slurm_arg ARG ...] -- train.py ARGS
  python scripts/launch.py --backend tpu-vm --tpu NAME --zone ZONE [--project P] [--repo_dir DIR] -- train.py ARGS
  ... [--dry-run]

The command after `--` is a script of scripts/ (train.py, evaluate.py, sweep.py trials, ...) with
its own arguments, unchanged: each process finds its coordinator from the environment
(gan_jax/parallel.py). `local` runs the processes here on 127.0.0.1 (process 0's output on the
terminal, the others' in --log_dir); `slurm` runs `srun` (inside an allocation, or making one);
`tpu-vm` runs the command on every worker with `gcloud ... ssh --worker=all`. `--dry-run`
prints the commands, with their environment, one per line, and runs nothing. Exit code: the
first failing process's.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import cli, launch  # noqa: E402
from gan_jax.errors import ConfigError  # noqa: E402

EXAMPLES = (
    "python scripts/launch.py --backend local --num_processes 2 --devices_per_process 2 -- train.py "
    "--config experiments/dcgan_digits.py:runlocal --workdir runs/two_hosts",
    "python scripts/launch.py --backend slurm --nodes 4 --gpus_per_node 8 --dry-run -- train.py "
    "--config experiments/biggan_imagenet128.py --workdir /shared/runs/biggan",
)


def main() -> int:
  argv = sys.argv[1:]
  command = argv[argv.index("--") + 1:] if "--" in argv else []
  own = argv[:argv.index("--")] if "--" in argv else argv
  p = cli.ArgumentParser(__doc__, EXAMPLES)
  p.add_argument("--backend", required=True, choices=launch.BACKENDS)
  p.add_argument("--num_processes", type=int, default=2, help="local: processes")
  p.add_argument("--devices_per_process", type=int, default=1, help="local: simulated CPU devices per process")
  p.add_argument("--log_dir", default="launch_logs", help="local: logs of processes 1..N-1")
  p.add_argument("--nodes", type=int, default=1, help="slurm: nodes")
  p.add_argument("--gpus_per_node", type=int, default=0, help="slurm: one process per GPU (0: one per node)")
  p.add_argument("--slurm_arg", action="append", default=[], help="slurm: extra srun argument (repeatable)")
  p.add_argument("--tpu", default="", help="tpu-vm: TPU name")
  p.add_argument("--zone", default="", help="tpu-vm: zone")
  p.add_argument("--project", default="", help="tpu-vm: GCP project")
  p.add_argument("--repo_dir", default="", help="tpu-vm: the repository's folder on the workers (default: this one's)")
  p.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true", help="print the commands only")
  if not argv:
    p.print_help(sys.stderr)
    return 2
  a = p.parse_args(own)
  try:
    processes = launch.plan(a.backend, command, num_processes=a.num_processes,
                            devices_per_process=a.devices_per_process, nodes=a.nodes, gpus_per_node=a.gpus_per_node,
                            slurm_args=tuple(a.slurm_arg), tpu=a.tpu, zone=a.zone, project=a.project,
                            repo_dir=a.repo_dir)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if a.dry_run:
    for proc in processes:
      print(proc.shell())
    return 0
  if a.backend == "local":
    return launch.run_local(processes, a.log_dir)
  try:
    return subprocess.run(processes[0].argv, env={**os.environ, **processes[0].env}).returncode
  except FileNotFoundError:
    print(f"error: {processes[0].argv[0]} not found; run this where it is installed (a SLURM login node, a machine "
          "with the gcloud CLI), or print the commands with --dry-run", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
