"""Makes the official-code fixtures of tests/test_official_parity.py from a checkout of the official code.

  python benchmarks/official/make_fixtures.py --repo PATH_TO_CHECKOUT MODEL [--out DIR]

The official code is imported from PATH at run time (sys.path); nothing of it is copied into this tree,
and embedded source code (NVIDIA's persistence layer) is stripped before anything is saved. MODEL picks
a function from MAKERS; any other MODEL is the module benchmarks/official/<MODEL>.py, whose
`make(repo_path, out_dir)` is called: adding a model is adding that module. Output: the toy checkpoint in
the official file format, inputs.npz, outputs.npz, full_shapes.json and manifest.json in
DIR (default tests/fixtures/official/<MODEL>/). Needs torch (a CPU build is enough); the tests do not.
"""
import argparse
import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

# MODEL -> "module:function" (the function takes (repo_path, out_dir)); official repositories in brackets.
MAKERS = {
    "stylegan2_ada": "benchmarks.official.stylegan:stylegan2_ada",   # NVlabs/stylegan2-ada-pytorch
    "stylegan3_t": "benchmarks.official.stylegan:stylegan3_t",       # NVlabs/stylegan3
    "stylegan3_r": "benchmarks.official.stylegan:stylegan3_r",       # NVlabs/stylegan3
    "r3gan": "benchmarks.official.r3gan:make",                       # brownvc/R3GAN
    "r3gan_step": "benchmarks.official.step_r3gan:make",             # brownvc/R3GAN (training step)
    "stylegan2_step": "benchmarks.official.step_stylegan2:make",     # NVlabs/stylegan2-ada-pytorch (training step)
    "biggan_step": "benchmarks.official.step_biggan:make",           # ajbrock/BigGAN-PyTorch (training step)
}


def maker(model: str):
  target = MAKERS.get(model, f"benchmarks.official.{model}:make")
  module, _, fn = target.partition(":")
  try:
    return getattr(importlib.import_module(module), fn)
  except ModuleNotFoundError as e:
    if e.name != module:
      raise
    sys.exit(f"error: unknown MODEL {model!r}: no benchmarks/official/{model}.py; known: {', '.join(MAKERS)}")


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--repo", required=True, help="checkout of the official repository")
  p.add_argument("--out", default=None, help="output directory (default tests/fixtures/official/MODEL)")
  p.add_argument("model")
  a = p.parse_args()
  if not os.path.isdir(a.repo):
    sys.exit(f"error: --repo {a.repo}: not a directory")
  out = a.out or os.path.join(ROOT, "tests", "fixtures", "official", a.model)
  make = maker(a.model)
  os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")   # CPU: the official reference paths, no custom ops
  make(os.path.abspath(a.repo), out)
  total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
  print(f"{a.model}: {out} ({total / 2**20:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
  main()
