"""Import an official checkpoint into a workdir that sample.py, evaluate.py and train.py (fine-tuning) use.

  python scripts/import_checkpoint.py --format FORMAT --in FILE --workdir DIR \\
      [--config experiments/NAME.py[:ARGS] [--config.KEY=VALUE ...]]

FORMAT: one of gan_jax.importers.FORMATS (stylegan2-ada, stylegan3, r3gan, ...). The file is read
without torch and nothing in it is executed. Written: DIR/config.json, DIR/data_spec.json and
DIR/checkpoints/0 (G, D and the EMA generator where the file has them). The architecture comes from
the file; with --config, every setting the file records must agree with the config (exit 2 naming
each key that differs); without it, the format's experiment with the file's settings. To fine-tune:
`python scripts/train.py --config <the same> --workdir DIR` (it continues from step 0 with these weights).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gan_jax import cli  # noqa: E402

config_flags.DEFINE_config_file("config", None, "experiment file[:args] (default: the format's)", lock_config=True)
flags.DEFINE_string("format", None, "checkpoint format")
flags.DEFINE_string("in", None, "the official checkpoint file")
flags.DEFINE_string("workdir", None, "workdir to create")


def main(argv):
  config = cli.parse_flags(argv, required=("format", "in", "workdir"))
  f = flags.FLAGS
  from gan_jax.importers import FORMATS, import_checkpoint
  if f.format not in FORMATS:
    raise cli.ConfigError(f"unknown --format {f.format!r}; valid choices: {', '.join(FORMATS.names())}")
  imported = import_checkpoint(f.format, f["in"].value, f.workdir, config)
  nets = ", ".join(n for n, t in (("G", imported.g_params), ("D", imported.d_params), ("G_ema", imported.ema_params))
                   if t is not None)
  print(f"imported {nets} ({imported.model}, {'x'.join(map(str, imported.spec.shape))}"
        f"{f', {imported.spec.num_classes} classes' if imported.spec.num_classes else ''}) into {f.workdir}",
        file=sys.stderr)
  for note in imported.notes:
    print(f"note: {note}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main))
