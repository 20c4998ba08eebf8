"""SNGAN (ResNet, hinge loss) on STL-10 at 48x48: Miyato et al. 2018, "Spectral Normalization for GANs".

  tfds build stl10 --file_format array_record    # once, with network and TensorFlow (for preparing only)
  python scripts/train.py --config experiments/sngan_stl10.py --workdir runs/sngan_stl10
  python scripts/train.py --config experiments/sngan_stl10.py:runlocal --workdir runs/sngan_stl10_local

The paper's STL-10 ResNet (appendix B, table 5; model `sngan_resnet`, variant "stl"): G 6x6x512 and
up blocks to 256, 128, 64 (4.88M parameters), D blocks 64, 128, 256, 512 (downsampling) and 1024
(10.14M). The official repository ships no STL-10 model file; the layers are its own blocks
(gen_models/resblocks.py, dis_models/resblocks.py) in the table's arrangement. Data: the 100k
images of the `unlabelled` split, resized from 96x96 to 48x48 (sec. 4). Training as the CIFAR-10
recipe (experiments/sngan_cifar10.py: hinge, Adam 2e-4 / b1 0 / b2 0.9, n_dis 5, batch 64,
linear lr decay in the official code, here a cosine by default, see there), 50,000 G updates.

Published: SN-GANs (ResNet, hinge loss), STL-10, Inception score 9.10 ± .04 and FID 40.1 ± .50
(Miyato et al. 2018, table 2).

Args: conditional (labels need a labelled split, e.g. --config.data.split=train), decay=cosine|none,
runlocal (the "stl" stack on the 32x32 digits, G 64 -> 32 -> 16 -> 8 channels from 4x4, D 8 ... 128
down to 2x2; at 16x16 the D ends at 1x1 and this toy run fell back to its step-0 digit_fd by step 300).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sngan_cifar10 import sngan_config  # noqa: E402


def get_config(arg=None):
  return sngan_config(arg, dataset="tfds", resolution=48, variant="stl", g_width=64, d_width=64,
                      data={"tfds_name": "stl10", "split": "unlabelled"},
                      local={"data.resolution": 32, "model.g_width": 8, "model.d_width": 8})
