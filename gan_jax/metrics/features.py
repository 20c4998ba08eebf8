"""Feature networks for evaluation (FID Inception-v3, VGG-16) and their streamed, data-parallel
application to image sets.

Weights live in one file per network under $GAN_JAX_CACHE/weights (default
~/.cache/gan_jax/weights), written by scripts/convert_weights.py from the files users already
have. The format is flax msgpack (`flax.serialization.msgpack_serialize`) of
{"meta": {...}, "variables": {"params", "batch_stats"}}: one self-describing file that numpy
and flax read without torch, a template or Orbax's directory layout. A missing file raises
`WeightsMissing` (a ConfigError: scripts print one line and exit 2) naming the file, where the
original comes from and the conversion command.

Extraction (`iter_features`): images are cut into global batches of a fixed size (padded at the
end, so there is one compiled program), each batch is split over the mesh's 'data' axis (every
process feeds its own rows of the same global batch) and the features come back replicated to
every process; only one batch is in memory at a time, so memory is constant in the number of
images. A tqdm bar on stderr shows progress on process 0.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import parallel
from gan_jax.errors import ConfigError
from gan_jax.metrics import inception, vgg
from gan_jax.metrics.digit_classifier import cache_dir

FORMAT_VERSION = 1


class WeightsMissing(ConfigError):
  """A feature network's converted weight file is absent."""


@dataclasses.dataclass(frozen=True)
class WeightsInfo:
  kind: str          # "inception" or "vgg16"
  file: str          # converted file name in the cache
  source: str        # the file users have
  url: str           # where users usually get it
  network: str       # the name stated in results


WEIGHTS = {
    "inception": WeightsInfo(
        "inception", "inception_v3_fid.msgpack", "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "inception_v3_fid (pytorch-fid port of the TF 2015-12-05 graph)"),
    "vgg16": WeightsInfo(
        "vgg16", "vgg16_torchvision.msgpack", "vgg16-397923af.pth",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "vgg16 (torchvision ImageNet weights), fc2 after ReLU"),
}


def weights_dir() -> str:
  return os.path.join(cache_dir(), "weights")


def default_path(kind: str) -> str:
  return os.path.join(weights_dir(), WEIGHTS[kind].file)


def file_sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def save_weights(path: str, variables: dict, meta: dict) -> None:
  """Writes {"meta", "variables"} as msgpack, atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  blob = flax.serialization.msgpack_serialize(
      {"meta": {**meta, "format": FORMAT_VERSION},
       "variables": jax.tree.map(lambda a: np.asarray(a, np.float32), variables)})
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "wb") as f:
    f.write(blob)
  os.replace(tmp, path)


def missing_message(kind: str, path: str) -> str:
  w = WEIGHTS[kind]
  return (f"{kind} weights not found: {path}; get {w.source} ({w.url}) and convert it with "
          f"`python scripts/convert_weights.py --{kind} PATH/{w.source}`")


def read_weights(path: str, kind: str) -> tuple[dict, dict]:
  """(variables, meta) of a converted weight file; WeightsMissing when absent."""
  if not os.path.exists(path):
    raise WeightsMissing(missing_message(kind, path))
  return _read_weights(os.path.abspath(path), kind, os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_weights(path: str, kind: str, mtime_ns: int) -> tuple[dict, dict]:
  with open(path, "rb") as f:
    blob = flax.serialization.msgpack_restore(f.read())
  meta = blob.get("meta", {})
  if meta.get("kind") != kind:
    raise ConfigError(f"{path} holds {meta.get('kind')!r} weights, not {kind!r}; "
                      f"convert with `python scripts/convert_weights.py --{kind} FILE`")
  return blob["variables"], meta


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
  """A feature network ready to apply: images [B, H, W, C] in [-1, 1] -> {output: [B, D]}."""
  kind: str
  module: nn.Module
  variables: Any
  preprocess: Callable[[jax.Array], jax.Array]
  outputs: tuple[str, ...]
  protocol: dict   # how features are made: stated in every result
  # Per mesh: (replicated variables, jitted apply), so extractors on one mesh share one compilation.
  _placed: dict = dataclasses.field(default_factory=dict, repr=False)

  def apply(self, variables, images: jax.Array) -> dict[str, jax.Array]:
    out = self.module.apply(variables, self.preprocess(images))
    return {k: out[k] for k in self.outputs}


def load_inception(path: str | None = None, resize: str = "bilinear", size: int = inception.IMAGE_SIZE,
                   quantize: bool = True, outputs: tuple[str, ...] = ("pool3", "logits_unbiased")) -> Network:
  """The FID Inception with converted weights (`path` or the cache's default file)."""
  if resize not in inception.RESIZE_CHOICES:
    raise ConfigError(f"resize must be one of {', '.join(inception.RESIZE_CHOICES)}, got {resize!r}")
  path = path or default_path("inception")
  variables, meta = read_weights(path, "inception")
  width = float(meta.get("width", 1.0))
  try:
    inception.check_variables(variables, width)
  except ValueError as e:
    raise ConfigError(f"{path}: {e}") from None
  protocol = {"network": WEIGHTS["inception"].network, "weights": os.path.basename(path),
              "weights_source": meta.get("source"), "weights_sha256": meta.get("source_sha256"),
              "resize": f"{resize} to {size}x{size} (half-pixel, no antialias: pytorch-fid)" if resize == "bilinear"
              else "none (input fed at its own size)",
              "quantize_uint8": quantize, "scaling": "[0,1] -> 2x-1"}
  if width != 1.0:
    protocol["width"] = width
  if meta.get("note"):
    protocol["note"] = meta["note"]
  return Network("inception", inception.InceptionV3(width=width), variables,
                 functools.partial(inception.preprocess, size=size, resize=resize, quantize_input=quantize),
                 tuple(outputs), protocol)


def load_vgg16(path: str | None = None, quantize: bool = True) -> Network:
  """VGG-16 fc2 features with converted torchvision weights (`path` or the cache's default file)."""
  path = path or default_path("vgg16")
  variables, meta = read_weights(path, "vgg16")
  protocol = {"network": WEIGHTS["vgg16"].network, "weights": os.path.basename(path),
              "weights_source": meta.get("source"), "weights_sha256": meta.get("source_sha256"),
              "resize": f"bilinear to {vgg.IMAGE_SIZE}x{vgg.IMAGE_SIZE} (half-pixel, no antialias)",
              "quantize_uint8": quantize, "scaling": "[0,1], ImageNet mean/std"}
  if meta.get("note"):
    protocol["note"] = meta["note"]
  return Network("vgg16", vgg.module_for(variables), variables,
                 functools.partial(vgg.preprocess, quantize_input=quantize), ("fc2_relu",), protocol)


def _rebatch(batches: Iterable[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, int]]:
  """Re-cuts a stream of arrays into arrays of exactly `size` rows: (rows, number of real rows);
  the last one is padded by repeating its final row."""
  buf, n = [], 0
  for b in batches:
    b = np.asarray(b)
    while len(b):
      take = min(size - n, len(b))
      buf.append(b[:take])
      n += take
      b = b[take:]
      if n == size:
        yield np.concatenate(buf), size
        buf, n = [], 0
  if n:
    last = np.concatenate(buf)
    yield np.concatenate([last, np.repeat(last[-1:], size - n, axis=0)]), n


def round_batch(batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """The smallest multiple of the mesh's device count that is >= batch_size."""
  d = mesh.devices.size
  return -(-batch_size // d) * d


def make_apply(network: Network, mesh: jax.sharding.Mesh):
  """(replicated variables, jitted fn(variables, global images) -> replicated features), made
  once per network and mesh."""
  if mesh not in network._placed:
    rep = parallel.replicated(mesh)
    variables = jax.tree.map(lambda a: parallel.replicate(np.asarray(a), mesh), network.variables)
    fn = jax.jit(network.apply, in_shardings=(rep, parallel.batch_sharding(mesh)), out_shardings=rep)
    network._placed[mesh] = (variables, fn)
  return network._placed[mesh]


class Extractor:
  """features(images [n, H, W, C] in [-1, 1]) -> {output: float32 [n, D]}, computed in global
  batches of a fixed size (a multiple of the device count; the last one padded) split over the
  mesh's 'data' axis. Every process passes the same images and gets all features back."""

  def __init__(self, network: Network, mesh: jax.sharding.Mesh | None = None, batch_size: int = 50):
    self.network, self.mesh = network, mesh or parallel.make_mesh()
    self.batch_size = round_batch(batch_size, self.mesh)
    self._variables, self._fn = make_apply(network, self.mesh)
    self._sharding = parallel.batch_sharding(self.mesh)

  def _batch(self, x: np.ndarray, n: int) -> dict[str, np.ndarray]:
    p, nproc, size = jax.process_index(), jax.process_count(), self.batch_size
    local = np.asarray(x[p * size // nproc:(p + 1) * size // nproc], np.float32)
    out = self._fn(self._variables, parallel.global_batch({"x": local}, self._sharding)["x"])
    return {k: np.asarray(v)[:n] for k, v in out.items()}

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    parts = [self._batch(x, n) for x, n in _rebatch([images], self.batch_size)]
    return {k: np.concatenate([q[k] for q in parts]) for k in self.network.outputs}


def progress_bar(total: int | None, desc: str, enabled: bool = True):
  """A tqdm bar on stderr on process 0 (None elsewhere or when disabled)."""
  if not enabled or jax.process_index() != 0:
    return None
  from tqdm import tqdm
  return tqdm(total=total, unit="img", desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)


def iter_features(network: Network, batches: Iterable[np.ndarray], mesh: jax.sharding.Mesh | None = None,
                  batch_size: int = 50, total: int | None = None, desc: str | None = None,
                  progress: bool = True) -> Iterator[dict[str, np.ndarray]]:
  """Features of a stream of image arrays [b, H, W, C] in [-1, 1] (every process passes the
  same stream): yields {output: float32 [rows, D]} per global batch, in input order; one batch
  in memory at a time."""
  ex = Extractor(network, mesh, batch_size)
  bar = progress_bar(total, desc or network.kind, progress)
  try:
    for x, n in _rebatch(batches, ex.batch_size):
      yield ex._batch(x, n)
      if bar is not None:
        bar.update(n)
  finally:
    if bar is not None:
      bar.close()


def extract(network: Network, images: np.ndarray | Iterable[np.ndarray], **kwargs) -> dict[str, np.ndarray]:
  """All features of `images` at once (iter_features, concatenated)."""
  if isinstance(images, np.ndarray):
    kwargs.setdefault("total", len(images))
    images = [images]
  parts = list(iter_features(network, images, **kwargs))
  return {k: np.concatenate([q[k] for q in parts]) for k in network.outputs}


def images_per_second(network: Network, image_shape: tuple[int, int, int], batch_size: int = 50,
                      steps: int = 5, warmup: int = 2, mesh: jax.sharding.Mesh | None = None) -> dict:
  """Throughput of feature extraction on random images of `image_shape` (H, W, C): forward passes
  of one global batch, timed after `warmup` passes (the first includes compilation)."""
  mesh = mesh or parallel.make_mesh()
  size = round_batch(batch_size, mesh)
  variables, fn = make_apply(network, mesh)
  x = np.random.default_rng(0).uniform(-1, 1, (size, *image_shape)).astype(np.float32)
  xb = parallel.global_batch({"x": x}, parallel.batch_sharding(mesh))["x"]
  t0 = time.perf_counter()
  jax.block_until_ready(fn(variables, xb))
  compile_s = time.perf_counter() - t0
  for _ in range(max(0, warmup - 1)):
    jax.block_until_ready(fn(variables, xb))
  t0 = time.perf_counter()
  for _ in range(steps):
    jax.block_until_ready(fn(variables, xb))
  dt = time.perf_counter() - t0
  return {"impl": "jax", "network": network.kind, "batch": size, "image_shape": list(image_shape),
          "devices": int(mesh.devices.size), "images_per_s": size * steps / dt, "first_call_s": compile_s,
          "backend": jax.default_backend()}


def random_inception_variables(width: float = 1.0, seed: int = 0) -> dict:
  """Random weights for InceptionV3(width) (tests and smoke runs: NOT the FID network): He-scaled
  normal kernels, BN scales and running variances near 1, small random shifts and means."""
  shapes = jax.eval_shape(inception.InceptionV3(width=width).init, jax.random.PRNGKey(0),
                          jnp.zeros((1, inception.IMAGE_SIZE, inception.IMAGE_SIZE, 3)))
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:
      fan_in = int(np.prod(s.shape[:-1]))
      return (rng.standard_normal(s.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if "'var'" in name or "scale" in name:
      return (1.0 + 0.1 * rng.standard_normal(s.shape)).astype(np.float32) ** 2
    return (0.1 * rng.standard_normal(s.shape)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(draw, shapes)
