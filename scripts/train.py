"""Train (or resume) a GAN.

  python scripts/train.py --config experiments/NAME.py[:ARGS] --workdir DIR [--config.KEY=VALUE ...]

Rerunning the same command resumes from the newest checkpoint in DIR/checkpoints. A literal
`{wandb_run_id}` in DIR is replaced by $WANDB_RUN_ID (set by `wandb agent`; see
`scripts/sweep.py --wandb_export`), so each agent run gets its own workdir.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gan_jax import cli, parallel  # noqa: E402

config_flags.DEFINE_config_file("config", None, "experiment file[:args]", lock_config=True)
flags.DEFINE_string("workdir", None, "run directory (created; reused to resume)")


EXAMPLES = (
    'python scripts/train.py --config experiments/dcgan_digits.py --workdir runs/dcgan_digits',
    'python scripts/train.py --config experiments/r3gan_cifar10.py:runlocal --workdir runs/r3gan --config.seed=1',
)


def main(argv):
  config = cli.parse_flags(argv, required=("config", "workdir"))
  workdir = flags.FLAGS.workdir
  if "{wandb_run_id}" in workdir:
    if not os.environ.get("WANDB_RUN_ID"):
      raise cli.ConfigError("--workdir contains {wandb_run_id} but WANDB_RUN_ID is not set "
                            "(`wandb agent` sets it)")
    workdir = workdir.replace("{wandb_run_id}", os.environ["WANDB_RUN_ID"])
  parallel.initialize()
  parallel.enable_compilation_cache()
  from gan_jax.train import loop
  loop.train(config, workdir)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
