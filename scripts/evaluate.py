"""Evaluate a run's generator with FID, KID, IS and precision/recall; append the result to DIR/eval.jsonl.

  python scripts/evaluate.py --workdir DIR [--metrics fid,kid,is,pr] [--num N] [--step S | --best]
                             [--ref FILE] [--num_ref M] [--batch_size B] [--seed K]
                             [--truncation T] [--member I] [--inception FILE] [--vgg16 FILE]

Samples N images (default 50,000, the standard; FID depends on N, compare only at equal N)
from the newest (or --step, or with --best the trainer's best-kept) checkpoint's EMA generator
(the raw generator where the run has no EMA), chunk by chunk (memory constant in N for FID),
conditional models cycling through the classes; pushes them through the FID Inception (and
VGG-16 for pr) sharded over all devices.
The reference: --ref FILE from scripts/ref_stats.py, or else statistics of the run's own training
data (config.data, the first --num_ref images), computed once and cached under
$GAN_JAX_CACHE/ref_stats. A reference made with other weights or preprocessing is refused.
Weights come from scripts/convert_weights.py; a missing file: one line naming it, exit 2.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

flags.DEFINE_string("workdir", None, "a run directory written by scripts/train.py")
flags.DEFINE_string("metrics", "fid", "comma-separated: fid, kid, is, pr")
flags.DEFINE_integer("num", 50_000, "number of generated images")
flags.DEFINE_integer("step", None, "checkpoint step (default: the newest)")
flags.DEFINE_bool("best", False, "evaluate the best checkpoint kept by the trainer's eval.best (DIR/best)")
flags.DEFINE_string("ref", None, "reference statistics from scripts/ref_stats.py (default: the run's data)")
flags.DEFINE_integer("num_ref", 50_000, "without --ref: reference images from the run's data (capped by its size)")
flags.DEFINE_integer("batch_size", 50, "images per generator chunk and feature batch")
flags.DEFINE_integer("seed", 0, "seed of the latents")
flags.DEFINE_float("truncation", 1.0, "truncation trick in (0, 1]; 1 = none (the standard for FID)")
flags.DEFINE_integer("member", 0, "population runs: which member")
flags.DEFINE_string("inception", None, "converted Inception file (default: the cache's)")
flags.DEFINE_string("vgg16", None, "converted VGG-16 file (default: the cache's)")
flags.DEFINE_enum("resize", "bilinear", ["bilinear", "none"], "Inception input resize (bilinear: pytorch-fid's)")
flags.DEFINE_integer("image_size", 299, "Inception input size (299 for comparable numbers)")
flags.DEFINE_bool("progress", True, "show progress bars")


EXAMPLES = (
    'python scripts/evaluate.py --workdir runs/r3gan --metrics fid,kid --num 10000',
    'python scripts/evaluate.py --workdir runs/r3gan --best --ref refs/cifar10_train.npz',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none", required=("workdir",))
  f = flags.FLAGS
  if f.num < 2 or f.batch_size < 1 or f.num_ref < 2:
    raise cli.ConfigError("--num and --num_ref must be >= 2, --batch_size >= 1")
  if not 0 < f.truncation <= 1:
    raise cli.ConfigError(f"--truncation must be in (0, 1], got {f.truncation}")
  import json
  import time

  import jax

  from gan_jax import parallel
  from gan_jax.metrics import fid
  from gan_jax.metrics.evaluation import Evaluator
  from gan_jax.metrics.features import round_batch
  from gan_jax.train.loop import load_run, member

  metrics = fid.parse_metrics(f.metrics)
  parallel.initialize()
  parallel.cpu_device_per_core()
  parallel.enable_compilation_cache()
  t0 = time.time()
  mesh = parallel.make_mesh()
  evaluator = Evaluator(metrics, mesh, f.batch_size, f.inception, f.vgg16, f.resize, f.image_size, f.progress)
  if f.ref:      # checked before the run is loaded: a wrong file fails fast
    evaluator.set_reference(f.ref)
  config, spec, _, gan, mesh, state, step = load_run(f.workdir, f.step, best=f.best)
  if spec.kind != "image":
    raise cli.ConfigError(f"these metrics are for images; run {f.workdir} generates {spec.kind} data")
  if not 0 <= f.member < config.population:
    raise cli.ConfigError(f"--member must be in [0, {config.population}), got {f.member}")
  chunk = round_batch(f.batch_size, mesh)
  sampler = gan.sampler(mesh, chunk=chunk, truncation=f.truncation)
  if sampler is None:
    raise cli.ConfigError(f"{f.workdir} is a run of model {config.model.name!r}, which does not generate from "
                          "latents; these metrics need samples of a generator")
  if f.truncation < 1 and gan.truncation_mode is None:
    raise cli.ConfigError(f"model {config.model.name!r} has no truncation trick; drop --truncation")
  state = member(state, f.member, config.population)
  if not f.ref:
    evaluator.set_reference(None, config.data, f.num_ref)

  params = gan.generator_params(state)
  out = evaluator(lambda key, n, labels: sampler(params, state.g_vars, key, n, labels), jax.random.PRNGKey(f.seed),
                  f.num, chunk, gan.num_classes, desc=f"step {step}")
  record = out.pop("record")
  result = {"step": int(step), **out, **record, "seed": f.seed, "truncation": f.truncation,
            "ema": getattr(state, "ema_params", None) is not None, "source": "best" if f.best else "evaluate",
            "time_s": round(time.time() - t0, 2)}
  if config.population > 1:
    result["member"] = f.member
  if jax.process_index() == 0:
    with open(os.path.join(f.workdir, "eval.jsonl"), "a") as fh:
      fh.write(json.dumps(result) + "\n")
    shown = ", ".join(f"{k} {v:.4g}" for k, v in out.items() if isinstance(v, float))
    print(f"step {step}, {record['num']} samples: {shown}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
