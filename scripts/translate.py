"""Translate a folder of images with a trained image-to-image run (model.name=cyclegan).

  python scripts/translate.py --workdir DIR --input FOLDER --out FOLDER [--direction a2b|b2a] [--step S]

Every PNG/JPEG under FOLDER (recursively) is centre-cropped to a square, resized to the run's
resolution and channels (as data.name=folder reads images), translated by G_AB (a2b, default)
or G_BA (b2a) of the newest checkpoint (or --step), and written to --out as PNG under the same
relative path. Files that are not readable images are skipped with a count on stderr.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

DIRECTIONS = {"a2b": "g_ab", "b2a": "g_ba"}

flags.DEFINE_string("workdir", None, "a run directory written by scripts/train.py (model.name=cyclegan)")
flags.DEFINE_string("input", None, "folder of images to translate")
flags.DEFINE_string("out", None, "output folder (created)")
flags.DEFINE_string("direction", "a2b", "a2b: G_AB (domain A -> B); b2a: G_BA")
flags.DEFINE_integer("step", None, "checkpoint step (default: the newest)")
flags.DEFINE_integer("batch", 16, "images per forward pass")


EXAMPLES = (
    'python scripts/translate.py --workdir runs/cyclegan --input photos --out translated',
    'python scripts/translate.py --workdir runs/cyclegan --input zebras --out horses --direction b2a',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none", required=("workdir", "input", "out"))
  f = flags.FLAGS
  if f.direction not in DIRECTIONS:
    raise cli.ConfigError(f"--direction must be one of {', '.join(DIRECTIONS)}, got {f.direction!r}")
  if f.batch < 1:
    raise cli.ConfigError(f"--batch must be >= 1, got {f.batch}")
  if not os.path.isdir(f.input):
    raise cli.ConfigError(f"--input {f.input!r} is not a folder")
  import jax
  import numpy as np

  from gan_jax import logging as logs
  from gan_jax import parallel
  from gan_jax.data.folder import list_images, load_image
  from gan_jax.data.images import preprocess
  from gan_jax.train.loop import load_run

  files = list_images(f.input)
  if not files:
    raise cli.ConfigError(f"no images (.png, .jpg, .jpeg) found under --input {f.input!r}")
  parallel.enable_compilation_cache()
  config, spec, _, gan, mesh, state, step = load_run(f.workdir, f.step)
  if not hasattr(gan, "translate"):
    raise cli.ConfigError(f"{f.workdir} is a run of model {config.model.name!r}; translate.py needs an "
                          "image-to-image model (model.name=cyclegan); use scripts/sample.py")
  size, channels = spec.shape[0], spec.shape[-1]
  params = state.g_params[DIRECTIONS[f.direction]]
  rep = parallel.replicated(mesh)
  translate = jax.jit(lambda p, x: gan.translate(jax.lax.with_sharding_constraint(p, rep), x), out_shardings=rep)

  images, names, skipped = [], [], []
  for path in files:
    try:
      images.append(preprocess(load_image(path, channels), size, channels))
      names.append(os.path.splitext(os.path.relpath(path, f.input))[0] + ".png")
    except (OSError, ValueError, SyntaxError):   # PIL: unreadable or truncated files
      skipped.append(path)
  if not images:
    raise cli.ConfigError(f"none of the {len(files)} files under --input {f.input!r} is a readable image")
  if skipped:
    print(f"skipped {len(skipped)} unreadable files (e.g. {skipped[0]})", file=sys.stderr)
  for i in range(0, len(images), f.batch):
    chunk = np.stack(images[i:i + f.batch])
    n = len(chunk)
    if n < f.batch:   # one compiled shape: pad the last chunk by repeating its first image
      chunk = np.concatenate([chunk, np.repeat(chunk[:1], f.batch - n, axis=0)])
    out = np.asarray(translate(params, parallel.replicate(chunk, mesh)))[:n]
    if jax.process_index() == 0:
      for name, image in zip(names[i:i + n], out):
        logs.save_png(logs.image_grid(image[None], pad=0, min_size=0), os.path.join(f.out, name))
  print(f"translated {len(images)} images {f.direction} with step {step} into {f.out}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
