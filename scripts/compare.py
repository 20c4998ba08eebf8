"""Compare runs: a markdown table of final metrics with 95% intervals over seeds, and plots.

  python scripts/compare.py DIR [DIR ...] --out REPORT_DIR [--metrics a,b] [--budget a]

Each DIR is a train workdir or a sweep root (scripts/sweep.py --root). Writes
REPORT_DIR/report.md, REPORT_DIR/<metric>_vs_step.png and REPORT_DIR/samples.png, and prints
the table. Default metrics: those logged among modes_covered, high_quality_fraction,
reverse_kl, d_loss, g_loss. With two grouping keys (a loss x penalty sweep) the report holds a
two-way table per metric; every table counts diverged seeds. `--budget METRIC` (on a pilot's
runs) reports each group's converged step and the study's budget, with REPORT_DIR/budget_METRIC.png
(definitions in gan_jax/compare.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

flags.DEFINE_string("out", None, "report directory (created)")
flags.DEFINE_list("metrics", None, "comma-separated metrics (default: the standard ones logged)")
flags.DEFINE_list("budget", [], "metrics whose converged step to report (a pilot's budget), comma-separated")


EXAMPLES = (
    'python scripts/compare.py runs/ring8_losses --out runs/ring8_losses/report',
    'python scripts/compare.py runs/a runs/b --out report --metrics modes_covered,reverse_kl',
    'python scripts/compare.py runs/ring8_lxp --out runs/ring8_lxp/report --budget modes_covered',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none", required=("out",))
  dirs = flags.FLAGS(list(argv))[1:]  # the positional arguments (flags are already parsed)
  if not dirs:
    raise cli.ConfigError("give at least one DIR (a train workdir or a sweep root)")
  from gan_jax import compare

  print(compare.report(dirs, flags.FLAGS.out, flags.FLAGS.metrics, flags.FLAGS.budget))
  print(f"wrote {os.path.join(flags.FLAGS.out, 'report.md')}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
