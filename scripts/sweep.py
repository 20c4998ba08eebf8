"""Run a sweep defined by an experiment's get_sweeps(): one train.py run per trial.

  python scripts/sweep.py --config experiments/NAME.py[:ARGS] --sweep NAME --root DIR \
      [--parallel K] [--dry_run] [--set KEY=VALUE ...]

Trials run as local subprocesses, K at a time, each in DIR/<trial> with its output in
DIR/<trial>/train.log; finished trials are skipped, so rerunning resumes a crashed sweep.
`--set KEY=VALUE` (repeatable) overrides a config key in every trial. `--dry_run` prints the
train command of every unfinished trial, one per line, for a cluster launcher, and runs none.
`--backend local|slurm|tpu-vm` starts each trial through scripts/launch.py (one allocation or
slice per trial; `--launch=--nodes=2` etc. are passed on). `--wandb_export FILE` writes the
sweep as a `wandb sweep` grid configuration instead (each agent run gets DIR/<wandb run id>).
Exit 1 if any trial failed.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

flags.DEFINE_string("config", None, "experiment file[:args] whose get_sweeps() defines the sweep")
flags.DEFINE_string("sweep", None, "sweep name (a key of get_sweeps())")
flags.DEFINE_string("root", None, "sweep directory: DIR/sweep.json and one workdir per trial")
flags.DEFINE_integer("parallel", 1, "trials run at the same time", lower_bound=1)
flags.DEFINE_boolean("dry_run", False, "print the commands of the unfinished trials; run nothing")
flags.DEFINE_multi_string("set", [], "KEY=VALUE override for every trial (repeatable)")
flags.DEFINE_string("backend", "process", "process (a subprocess per trial), or a scripts/launch.py backend: "
                    "local, slurm, tpu-vm (one launch per trial)")
flags.DEFINE_multi_string("launch", [], "argument for scripts/launch.py, e.g. --launch=--nodes=2 (repeatable)")
flags.DEFINE_string("wandb_export", None, "write a `wandb sweep` configuration of this sweep to FILE and exit")


EXAMPLES = (
    'python scripts/sweep.py --config experiments/ring8.py:runlocal --sweep losses_population --root runs/ring8_losses',
    'python scripts/sweep.py --config experiments/ring8.py:runlocal --sweep losses --root runs/ring8 --dry_run',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none", required=("config", "sweep", "root"))
  f = flags.FLAGS
  from gan_jax import sweep as sweep_lib

  sweep = sweep_lib.load_sweep(f.config, f.sweep, f.root, sweep_lib.parse_sets(f.set))
  if f.wandb_export:
    import json
    with open(f.wandb_export, "w") as out:   # JSON is YAML: `wandb sweep FILE` reads it
      json.dump(sweep_lib.wandb_sweep_config(sweep), out, indent=2)
    print(f"wrote {f.wandb_export}; start it with `wandb sweep {f.wandb_export}` and `wandb agent ID`",
          file=sys.stderr)
    return
  if f.backend != "process":
    sweep = sweep_lib.with_launcher(sweep, f.backend, f.launch)
  sweep.write()  # also for --dry_run: compare.py reads it once a launcher has run the trials
  if f.dry_run:
    for trial in sweep.trials:
      if not trial.finished():
        print(sweep_lib.shell_command(trial))
    return
  failed = sweep_lib.run(sweep, f.parallel, report=lambda line: print(line, flush=True))
  if failed:
    print(f"error: {failed} of {len(sweep.trials)} trials failed", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
