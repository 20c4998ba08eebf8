"""Train (or resume) a GAN.

  python scripts/train.py --config experiments/NAME.py[:ARGS] --workdir DIR [--config.KEY=VALUE ...]

Rerunning the same command resumes from the newest checkpoint in DIR/checkpoints.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gan_jax import cli, parallel  # noqa: E402

config_flags.DEFINE_config_file("config", None, "experiment file[:args]", lock_config=True)
flags.DEFINE_string("workdir", None, "run directory (created; reused to resume)")


def main(argv):
  config = cli.parse_flags(argv, required=("config", "workdir"))
  parallel.initialize()
  parallel.enable_compilation_cache()
  from gan_jax.train import loop
  loop.train(config, flags.FLAGS.workdir)


if __name__ == "__main__":
  sys.exit(cli.main(main))
