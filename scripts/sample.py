"""Draw samples from a trained run's generator (the EMA generator where there is one).

  python scripts/sample.py --workdir DIR --num N --out PATH [--step S | --best] [--seed K]
                           [--truncation T] [--label C]

PATH ending in .png: one grid (image data) or a scatter plot (2-D data); .npy: the raw
samples; anything else: a folder of N PNG files. Uses the newest checkpoint unless --step, or
--best: the one the trainer kept for the best value of `eval.best`.
Conditional models: a .png grid has one row per class; otherwise classes come in turn, or all
from class C with --label. --truncation (0, 1] applies the architecture's truncation trick
(BigGAN: truncated z; StyleGAN2: psi in W); default: the run's sample.truncation.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

flags.DEFINE_string("workdir", None, "a run directory written by scripts/train.py")
flags.DEFINE_integer("num", 64, "number of samples")
flags.DEFINE_string("out", None, "output: grid .png, .npy, or a folder for one PNG per sample")
flags.DEFINE_integer("step", None, "checkpoint step (default: the newest)")
flags.DEFINE_bool("best", False, "sample the best checkpoint kept by the trainer's eval.best (DIR/best)")
flags.DEFINE_integer("seed", 0, "seed of the latents")
flags.DEFINE_integer("member", 0, "population runs: which member (seed = config.seed + member)")
flags.DEFINE_float("truncation", None, "truncation trick in (0, 1] (default: the run's sample.truncation)")
flags.DEFINE_integer("label", None, "conditional models: draw every sample from this class")


EXAMPLES = (
    'python scripts/sample.py --workdir runs/dcgan_digits --num 64 --out grid.png',
    'python scripts/sample.py --workdir runs/dcgan_digits --num 1000 --out samples.npy --step 1000',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none", required=("workdir", "out"))
  f = flags.FLAGS
  if f.num < 1:
    raise cli.ConfigError(f"--num must be >= 1, got {f.num}")
  import jax
  import numpy as np

  from gan_jax import logging as logs
  from gan_jax import parallel
  from gan_jax.sampling import class_grid
  from gan_jax.train.loop import load_run, member

  parallel.enable_compilation_cache()

  config, spec, modes, gan, mesh, state, step = load_run(f.workdir, f.step, best=f.best)
  if not 0 <= f.member < config.population:
    raise cli.ConfigError(f"--member must be in [0, {config.population}), got {f.member}")
  state = member(state, f.member, config.population)
  key = parallel.replicate(np.asarray(jax.random.PRNGKey(f.seed)), mesh)
  truncation = config.sample.truncation if f.truncation is None else f.truncation
  if not 0 < truncation <= 1:
    raise cli.ConfigError(f"--truncation must be in (0, 1], got {truncation}")
  sampler = gan.sampler(mesh, chunk=config.sample.num, truncation=truncation)
  if sampler is None:
    raise cli.ConfigError(f"{f.workdir} is a run of model {config.model.name!r}, which does not generate from "
                          "latents; translate images with scripts/translate.py")
  if truncation < 1 and gan.truncation_mode is None:
    raise cli.ConfigError(f"model {config.model.name!r} has no truncation trick; drop --truncation")
  labels, ncol = None, None
  if f.label is not None:
    if not 0 <= f.label < gan.num_classes:
      raise cli.ConfigError(f"--label needs a conditional model and a class in [0, {gan.num_classes}), got {f.label}"
                            if gan.num_classes else "--label needs a conditional model; this run is unconditional")
    labels = np.full(f.num, f.label, np.int32)
  elif gan.num_classes and f.out.endswith(".png") and spec.kind == "image":
    labels, ncol = class_grid(f.num, gan.num_classes)
  samples = sampler(gan.generator_params(state), state.g_vars, key, f.num if labels is None else len(labels), labels)
  if jax.process_index() != 0:
    return
  if f.out.endswith(".npy"):
    np.save(f.out, samples)
  elif spec.kind == "vector":
    logs.save_scatter(samples, modes, f.out if f.out.endswith(".png") else os.path.join(f.out, "samples.png"),
                      title=f"{config.data.name}, step {step}, {f.num} samples")
  elif f.out.endswith(".png"):
    logs.save_png(logs.image_grid(samples, ncol), f.out)
  else:
    os.makedirs(f.out, exist_ok=True)
    for i, image in enumerate(samples):
      logs.save_png(logs.image_grid(image[None], pad=0, min_size=0), os.path.join(f.out, f"{i:06d}.png"))
  print(f"wrote {f.num} samples of step {step} to {f.out}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
