"""A PNG grid of what the discriminator sees under augmentation, at several p.

  python scripts/augment_grid.py --out docs/augment/ada_grid.png
  python scripts/augment_grid.py --name diffaugment --out docs/augment/diffaugment_grid.png

Rows: p = 0, 0.2, 0.4, 0.6, 0.8, 1 (`--p`); columns: independent draws of the same image
(scikit-learn's bundled photo "china.jpg", centre-cropped and resized to `--size`, or
`--image digits` for one of the 16x16 digits), through gan_jax.augment with `--name` and
`--pipeline` (defaults: ada "bgc"; diffaugment "color,translation,cutout").
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def source_image(kind: str, size: int) -> np.ndarray:
  """[size, size, C] in [-1, 1]."""
  from PIL import Image
  if kind == "digits":
    from gan_jax.data.digits import digit_images
    return digit_images(size)[0][0]
  from sklearn.datasets import load_sample_image
  im = load_sample_image("china.jpg")
  h, w, _ = im.shape
  s = min(h, w)
  im = im[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
  im = np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS), np.float32)
  return im / 127.5 - 1.0


EXAMPLES = (
    "python scripts/augment_grid.py --out docs/augment/ada_grid.png",
    "python scripts/augment_grid.py --name diffaugment --out docs/augment/diffaugment_grid.png",
)


def main(argv=None) -> int:
  from gan_jax import cli

  ap = cli.ArgumentParser(__doc__, EXAMPLES)
  ap.add_argument("--out", required=True, help="the PNG to write")
  ap.add_argument("--name", default="ada", choices=("ada", "diffaugment"), help="the augmentation")
  ap.add_argument("--pipeline", default="", help="its pipeline (augment.pipeline); default per --name")
  ap.add_argument("--p", default="0,0.2,0.4,0.6,0.8,1", help="probabilities, one row each")
  ap.add_argument("--draws", type=int, default=8, help="independent draws per row")
  ap.add_argument("--size", type=int, default=64, help="image size in pixels")
  ap.add_argument("--image", default="photo", choices=("photo", "digits"), help="the source image")
  ap.add_argument("--seed", type=int, default=0, help="seed of the draws")
  args = ap.parse_args(argv)

  import jax
  import jax.numpy as jnp
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from gan_jax.augment import AugmentConfigError, make_augment
  from gan_jax.config import base_config

  c = base_config().augment
  c.update(name=args.name, pipeline=args.pipeline, target=0.0)
  try:
    aug = make_augment(c)
    ps = [float(v) for v in args.p.split(",")]
  except (AugmentConfigError, ValueError) as e:
    print(f"augment_grid: {e}", file=sys.stderr)
    return 2
  x = jnp.asarray(source_image(args.image, args.size))
  batch = jnp.broadcast_to(x, (args.draws, *x.shape))
  run = jax.jit(aug.__call__)
  rows = [np.asarray(run(jax.random.fold_in(jax.random.PRNGKey(args.seed), i), batch, p)) for i, p in enumerate(ps)]
  fig, axes = plt.subplots(len(ps), args.draws, figsize=(1.1 * args.draws, 1.15 * len(ps)), squeeze=False)
  for r, (p, images) in enumerate(zip(ps, rows)):
    for k in range(args.draws):
      ax = axes[r, k]
      im = np.clip((images[k] + 1) / 2, 0, 1)
      ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if k == 0:
        ax.set_ylabel(f"p = {p:g}", fontsize=9)
  title = aug.name + (f" '{args.pipeline or 'bgc'}'" if aug.name == "ada" else f" '{','.join(aug.policy)}'")
  fig.suptitle(f"{title}: each row {args.draws} draws", fontsize=10)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fig.savefig(args.out, dpi=80)
  print(args.out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
