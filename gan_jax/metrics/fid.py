"""FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule...") and the evaluation
protocol around it: reference-statistics files and all metrics of one stream of images.

FID = Fréchet distance (gan_jax/metrics/frechet.py: float64, scipy sqrtm with pytorch-fid's
eps retry and imaginary-part check) between Gaussians fitted to the FID Inception's pool3
features (gan_jax/metrics/inception.py) of generated and reference images; the covariance is
the unbiased 1/(N-1) one of TTUR, pytorch-fid and clean-fid (StyleGAN2-ADA's 1/N changes FID by
about 1e-3 at N = 50k), accumulated in float64 batch by batch. Compare FIDs only at equal N
(FID is biased upward at small N) and with the same preprocessing: every result carries its
protocol (network, weights hash, resize, quantization, N), and a reference file made with other
preprocessing is refused.

Metric names for `--metrics`: fid; kid (gan_jax/metrics/kid.py, same pool3 features); is
(gan_jax/metrics/inception_score.py, unbiased logits); pr (gan_jax/metrics/prdc.py: precision and
recall with k = 3, density and coverage with k = 5, on VGG-16 fc2 features).

Memory: FID streams (two float64 D x D sums); KID, IS and P/R need every feature vector of the
sample set (N x 2048, N x 1008 and N x 4096 float32), as the metrics themselves do.

Reference file (`.npz`, written by scripts/ref_stats.py): mu [2048] and sigma [2048, 2048]
float64, num, pool3 [N, 2048] float32 (for KID), vgg16 [N, 4096] float32 (for P/R), and `meta`,
a JSON string with the data and each network's protocol.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable

import jax
import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.metrics import features as feats
from gan_jax.metrics.frechet import GaussianAccumulator, frechet_distance
from gan_jax.metrics.inception_score import inception_score
from gan_jax.metrics.kid import kernel_inception_distance
from gan_jax.metrics.prdc import density_coverage, precision_recall

METRICS = ("fid", "kid", "is", "pr")
# Protocol keys that must agree between a reference file and the features compared with it.
_MATCH_KEYS = ("network", "weights_sha256", "resize", "quantize_uint8", "width")


def parse_metrics(spec: str) -> tuple[str, ...]:
  names = tuple(m.strip() for m in spec.split(",") if m.strip())
  bad = [m for m in names if m not in METRICS]
  if bad or not names:
    raise ConfigError(f"unknown metric {bad[0] if bad else spec!r}; valid metrics: {', '.join(METRICS)}")
  return names


def needs_inception(metrics: Iterable[str]) -> bool:
  return bool({"fid", "kid", "is"} & set(metrics))


@dataclasses.dataclass
class FeatureSet:
  """What the requested metrics need of one image set, accumulated batch by batch."""
  metrics: tuple[str, ...]
  gauss: GaussianAccumulator = dataclasses.field(default_factory=GaussianAccumulator)
  parts: dict = dataclasses.field(default_factory=dict)
  num: int = 0

  def update(self, out: dict[str, np.ndarray]) -> None:
    n = len(next(iter(out.values())))
    self.num += n
    if "fid" in self.metrics:
      self.gauss.update(out["pool3"])
    keep = {"kid": "pool3", "is": "logits_unbiased", "pr": "fc2_relu"}
    for metric, key in keep.items():
      if metric in self.metrics:
        self.parts.setdefault(key, []).append(np.asarray(out[key], np.float32))

  def array(self, key: str) -> np.ndarray:
    return np.concatenate(self.parts[key])


def compute_features(chunks: Iterable[np.ndarray], metrics: tuple[str, ...], inception: feats.Network | None,
                     vgg: feats.Network | None, mesh: jax.sharding.Mesh | None = None, batch_size: int = 50,
                     total: int | None = None, desc: str = "features", progress: bool = True) -> FeatureSet:
  """Streams image chunks [b, H, W, C] in [-1, 1] through the networks the metrics need."""
  extractors = []
  if needs_inception(metrics):
    extractors.append(feats.Extractor(inception, mesh, batch_size))
  if "pr" in metrics:
    extractors.append(feats.Extractor(vgg, mesh, batch_size))
  fs = FeatureSet(tuple(metrics))
  bar = feats.progress_bar(total, desc, progress)
  try:
    for chunk in chunks:
      out = {}
      for ex in extractors:
        out.update(ex(chunk))
      fs.update(out)
      if bar is not None:
        bar.update(len(chunk))
  finally:
    if bar is not None:
      bar.close()
  return fs


def protocols(inception: feats.Network | None, vgg: feats.Network | None) -> dict:
  out = {}
  if inception is not None:
    out["inception"] = inception.protocol
  if vgg is not None:
    out["vgg16"] = vgg.protocol
  return out


@dataclasses.dataclass
class RefStats:
  mu: np.ndarray | None
  sigma: np.ndarray | None
  num: int
  pool3: np.ndarray | None
  vgg16: np.ndarray | None
  meta: dict

  @classmethod
  def from_features(cls, fs: FeatureSet, meta: dict) -> "RefStats":
    mu, sigma = fs.gauss.stats() if fs.gauss.n > 1 else (None, None)
    return cls(mu, sigma, fs.num, fs.array("pool3") if "kid" in fs.metrics else None,
               fs.array("fc2_relu") if "pr" in fs.metrics else None, meta)

  def save(self, path: str) -> None:
    arrays = {k: v for k, v in (("mu", self.mu), ("sigma", self.sigma), ("pool3", self.pool3),
                                ("vgg16", self.vgg16)) if v is not None}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, num=np.int64(self.num), meta=np.array(json.dumps(self.meta)), **arrays)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "RefStats":
    if not os.path.exists(path):
      raise ConfigError(f"reference statistics {path} not found; make them with "
                        "`python scripts/ref_stats.py --data NAME --split SPLIT --out FILE`")
    with np.load(path) as z:
      get = lambda k: z[k] if k in z.files else None  # noqa: E731
      if "mu" not in z.files and "vgg16" not in z.files:
        raise ConfigError(f"{path} is not a reference statistics file of scripts/ref_stats.py")
      meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
      return cls(get("mu"), get("sigma"), int(z["num"]) if "num" in z.files else 0, get("pool3"), get("vgg16"), meta)


def check_protocol(ref: RefStats, current: dict, path: str, metrics: tuple[str, ...]) -> None:
  """Refuses a reference made with other weights or preprocessing than the current networks, or
  one lacking what `metrics` need."""
  parts = (("fid", "mu/sigma", ref.mu), ("kid", "pool3 features", ref.pool3), ("pr", "VGG-16 features", ref.vgg16))
  lacking = [what for metric, what, have in parts if metric in metrics and have is None]
  if lacking:
    raise ConfigError(f"reference {path} has no {', '.join(lacking)}; recompute it with scripts/ref_stats.py "
                      f"--metrics {','.join(m for m in metrics if m != 'is')}")
  for net in current:
    if net == "vgg16" and "pr" not in metrics or net == "inception" and not needs_inception(metrics):
      continue
    theirs = ref.meta.get("protocol", {}).get(net)
    if theirs is None:
      raise ConfigError(f"reference {path} has no {net} features; recompute it with the metrics you need")
    diff = [f"{k}: {theirs.get(k)!r} vs {current[net].get(k)!r}" for k in _MATCH_KEYS
            if theirs.get(k) != current[net].get(k)]
    if diff:
      raise ConfigError(f"reference {path} was made with another {net} protocol ({'; '.join(diff)}); "
                        "recompute it with scripts/ref_stats.py")


def compare(fs: FeatureSet, ref: RefStats, seed: int = 0) -> dict:
  """The metrics of generated features `fs` against reference `ref`."""
  out = {}
  if "fid" in fs.metrics:
    if ref.mu is None:
      raise ConfigError("the reference has no Inception statistics (mu, sigma) for FID")
    mu, sigma = fs.gauss.stats()
    out["fid"] = frechet_distance(mu, sigma, ref.mu, ref.sigma)
  if "kid" in fs.metrics:
    if ref.pool3 is None:
      raise ConfigError("the reference has no pool3 features for KID; recompute it with kid in --metrics")
    out.update(kernel_inception_distance(fs.array("pool3"), ref.pool3, seed=seed))
  if "is" in fs.metrics:
    out.update(inception_score(fs.array("logits_unbiased")))
  if "pr" in fs.metrics:
    if ref.vgg16 is None:
      raise ConfigError("the reference has no VGG-16 features for precision/recall; recompute it with pr in --metrics")
    gen = fs.array("fc2_relu")
    out.update(precision_recall(ref.vgg16, gen))
    out.update(density_coverage(ref.vgg16, gen))
  return out


def load_networks(metrics: tuple[str, ...], inception_path: str | None = None, vgg_path: str | None = None,
                  resize: str = "bilinear", image_size: int = 299) -> tuple[feats.Network | None, feats.Network | None]:
  """The networks `metrics` need (WeightsMissing, a ConfigError, when a weight file is absent)."""
  inc = feats.load_inception(inception_path, resize=resize, size=image_size) if needs_inception(metrics) else None
  vgg = feats.load_vgg16(vgg_path) if "pr" in metrics else None
  return inc, vgg


def dataset_chunks(ds, num: int, chunk: int) -> Iterable[np.ndarray]:
  """The first `num` examples of a gan_jax.data Dataset as image arrays of `chunk` rows, in order."""
  for start in range(0, num, chunk):
    yield np.stack([ds.transform(ds.source[i])["x"] for i in range(start, min(start + chunk, num))])


def reference_stats(ds, data_meta: dict, metrics: tuple[str, ...], inception: feats.Network | None,
                    vgg: feats.Network | None, num: int | None = None, mesh=None, batch_size: int = 50,
                    progress: bool = True) -> RefStats:
  """RefStats of the first `num` (default: all) images of dataset `ds`."""
  if ds.spec.kind != "image":
    raise ConfigError(f"reference statistics need an image dataset; {data_meta.get('name')!r} is {ds.spec.kind} data")
  n = len(ds.source) if not num else min(num, len(ds.source))
  fs = compute_features(dataset_chunks(ds, n, batch_size), metrics, inception, vgg, mesh, batch_size, total=n,
                        desc="reference", progress=progress)
  return RefStats.from_features(fs, {"data": {**data_meta, "num": n}, "metrics": list(metrics),
                                     "protocol": protocols(inception, vgg)})
