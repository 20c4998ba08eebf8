"""Convert the evaluation networks' weight files users already have into gan_jax's format.

  python scripts/convert_weights.py [--inception PATH] [--vgg16 PATH] [--hub_cache] [--out_dir DIR]

--inception: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (its GitHub release
  `fid_weights`; torch hub caches it as $TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth
  after any pytorch-fid run), the FID Inception-v3 for FID, KID and IS.
--vgg16: torchvision's `vgg16-397923af.pth` (ImageNet weights, torch hub cache likewise), the
  VGG-16 whose fc2 features precision/recall use.
With --hub_cache, both files are looked up in the torch hub cache. Output: msgpack files in
DIR (default $GAN_JAX_CACHE/weights, i.e. ~/.cache/gan_jax/weights), which evaluation reads
without torch. A file whose name carries torch hub's hash suffix (`-6726825d`) must have a
SHA-256 starting with it. torch is needed here only (a CPU build is enough).
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from gan_jax import cli  # noqa: E402

flags.DEFINE_string("inception", None, "pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
flags.DEFINE_string("vgg16", None, "torchvision's vgg16-397923af.pth")
flags.DEFINE_string("out_dir", None, "output directory (default: $GAN_JAX_CACHE/weights)")
flags.DEFINE_bool("hub_cache", False, "convert whichever of the two files the torch hub cache holds")


def torch_hub_file(name: str) -> str:
  home = os.environ.get("TORCH_HOME") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
  return os.path.join(home, "hub", "checkpoints", name)


def load_state_dict(path: str) -> dict:
  try:
    import torch
  except ImportError:
    raise cli.ConfigError("converting weights needs PyTorch (pip install torch; a CPU build is enough); "
                          "evaluation itself does not") from None
  try:
    sd = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001  (any unreadable file is a bad input)
    raise cli.ConfigError(f"cannot read {path} as a PyTorch state_dict: {type(e).__name__}: {e}") from None
  if not isinstance(sd, dict):
    raise cli.ConfigError(f"{path} holds a {type(sd).__name__}, not a state_dict")
  return {k: v.detach().float().numpy() for k, v in sd.items() if hasattr(v, "numpy")}


def convert(kind: str, path: str, out_dir: str) -> str:
  from gan_jax.metrics import features, inception, vgg

  if not os.path.isfile(path):
    raise cli.ConfigError(f"--{kind}: {path} not found")
  sha = features.file_sha256(path)
  m = re.search(r"-([0-9a-f]{8,})\.[^.]+$", os.path.basename(path))
  if m and not sha.startswith(m.group(1)):
    raise cli.ConfigError(f"{path}: SHA-256 {sha[:12]}... does not start with the hash in its name "
                          f"({m.group(1)}); the file is damaged or not the original")
  sd = load_state_dict(path)
  try:
    if kind == "inception":
      variables = inception.variables_from_torch(sd)
      inception.check_variables(variables)
    else:
      variables = vgg.variables_from_torch(sd)
  except (KeyError, ValueError) as e:
    raise cli.ConfigError(f"{path} is not a {kind} state_dict of the expected layout: {e}") from None
  out = os.path.join(out_dir, features.WEIGHTS[kind].file)
  features.save_weights(out, variables, {"kind": kind, "source": os.path.basename(path), "source_sha256": sha,
                                         "hash_checked": bool(m), "width": 1.0})
  return out


EXAMPLES = (
    'python scripts/convert_weights.py --hub_cache',
    'python scripts/convert_weights.py --inception pt_inception-2015-12-05-6726825d.pth --vgg16 vgg16-397923af.pth',
)


def main(argv):
  cli.parse_flags(argv, config_flag="_none")
  f = flags.FLAGS
  from gan_jax.metrics import features

  jobs = {k: v for k, v in (("inception", f.inception), ("vgg16", f.vgg16)) if v}
  if not jobs and not f.hub_cache:
    raise cli.ConfigError("nothing to convert: pass --inception PATH, --vgg16 PATH or --hub_cache")
  if not jobs:
    jobs = {k: torch_hub_file(w.source) for k, w in features.WEIGHTS.items()
            if os.path.isfile(torch_hub_file(w.source))}
    if not jobs:
      raise cli.ConfigError("nothing to convert: pass --inception PATH/pt_inception-2015-12-05-6726825d.pth "
                            "and/or --vgg16 PATH/vgg16-397923af.pth (none found in the torch hub cache)")
  out_dir = f.out_dir or features.weights_dir()
  for kind, path in jobs.items():
    print(f"{kind}: {path} -> {convert(kind, path, out_dir)}", file=sys.stderr)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
