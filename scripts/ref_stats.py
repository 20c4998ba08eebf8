"""Compute and cache a dataset's reference statistics for FID, KID and precision/recall.

  python scripts/ref_stats.py --data NAME --split SPLIT --out FILE [--num N] [--metrics fid,kid,pr]
                              [--resolution R] [--channels C] [--path DIR] [--tfds_name NAME]
                              [--data_dir DIR] [--batch_size B] [--inception FILE] [--vgg16 FILE]

Reads the dataset as training does (gan_jax.data.build_dataset on the base config's data keys,
at --resolution: use the generator's resolution), in order, the first N images (default: all),
and writes FILE (.npz): Inception pool3 mean/covariance (fid), pool3 features (kid), VGG-16 fc2
features (pr), and the protocol (weights, resize, quantization) they were made with. The
standard FID reference of a dataset is its full training split (CIFAR-10: all 50,000 train
images). Weights come from scripts/convert_weights.py; a missing file is an error (exit 2).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

flags.DEFINE_string("data", None, "dataset name (data.name): digits, mnist, cifar10, celeba, folder, tfds, ...")
flags.DEFINE_string("split", "train", "split (data.split)")
flags.DEFINE_string("out", None, "output .npz file")
flags.DEFINE_integer("num", 0, "number of images (0: the whole split)")
flags.DEFINE_string("metrics", "fid,kid", "what the statistics are for: fid, kid, pr (is needs no reference)")
flags.DEFINE_integer("resolution", None, "image resolution (data.resolution; default: the base config's)")
flags.DEFINE_integer("channels", 0, "data.channels: 0 keeps the dataset's, 1 or 3 converts")
flags.DEFINE_string("path", "", "image folder (data.name=folder)")
flags.DEFINE_string("tfds_name", "", "TFDS dataset (data.name=tfds)")
flags.DEFINE_string("data_dir", "", "TFDS data_dir")
flags.DEFINE_integer("batch_size", 50, "global batch of the feature networks")
flags.DEFINE_string("inception", None, "converted Inception file (default: the cache's)")
flags.DEFINE_string("vgg16", None, "converted VGG-16 file (default: the cache's)")
flags.DEFINE_enum("resize", "bilinear", ["bilinear", "none"], "Inception input resize (bilinear: pytorch-fid's)")
flags.DEFINE_integer("image_size", 299, "Inception input size (299 for comparable numbers)")
flags.DEFINE_bool("progress", True, "show a progress bar")


EXAMPLES = (
    'python scripts/ref_stats.py --data tfds --tfds_name cifar10 --split train --out refs/cifar10_train.npz',
    'python scripts/ref_stats.py --data folder --path images --resolution 64 --split train --out refs/mine.npz',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none", required=("data", "out"))
  f = flags.FLAGS
  if f.num < 0 or f.batch_size < 1:
    raise cli.ConfigError("--num must be >= 0 and --batch_size >= 1")
  import jax

  from gan_jax import parallel
  from gan_jax.config import base_config
  from gan_jax.data import DATASETS, build_dataset
  from gan_jax.metrics import fid

  metrics = tuple(m for m in fid.parse_metrics(f.metrics) if m != "is")
  if not metrics:
    raise cli.ConfigError("--metrics: the Inception Score needs no reference; choose from fid, kid, pr")
  if f.data not in DATASETS.names():
    raise cli.ConfigError(f"unknown dataset {f.data!r}; valid: {', '.join(DATASETS.names())}")
  parallel.initialize()
  parallel.cpu_device_per_core()
  parallel.enable_compilation_cache()
  c = base_config().data
  c.name, c.split, c.channels, c.path, c.tfds_name, c.data_dir = (f.data, f.split, f.channels, f.path,
                                                                  f.tfds_name, f.data_dir)
  if f.resolution:
    c.resolution = f.resolution
  inception, vgg = fid.load_networks(metrics, f.inception, f.vgg16, f.resize, f.image_size)
  ds = build_dataset(c)
  meta = {"name": f.data, "split": f.split, "resolution": c.resolution, "channels": f.channels}
  if f.path or f.tfds_name:
    meta.update(path=f.path, tfds_name=f.tfds_name)
  ref = fid.reference_stats(ds, meta, metrics, inception, vgg, f.num or None, batch_size=f.batch_size,
                            progress=f.progress)
  if jax.process_index() == 0:
    ref.save(f.out)
    print(f"wrote {f.out}: {ref.num} images of {f.data}/{f.split} ({', '.join(metrics)}); "
          f"{jax.device_count()} devices, {jax.process_count()} processes", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
