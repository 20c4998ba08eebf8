"""The digit classifier that counts StackedMNIST-style modes, trained by the project itself.

PacGAN/VEEGAN count modes with a pretrained MNIST CNN (Keras `mnist_cnn`: conv32, conv64,
max-pool, dense 128). We cannot download one, so we train the same shape of network on the
data's own digits (scikit-learn's bundled digits, or TFDS mnist) once, hold out a test split
to report its accuracy, and cache the weights under $GAN_JAX_CACHE (default
~/.cache/gan_jax) keyed by dataset and resolution.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
from typing import Callable

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax


class DigitCNN(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x: [B, H, W, 1] in [-1, 1] -> logits [B, 10]."""
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return nn.Dense(10)(x)


def cache_dir() -> str:
  return os.environ.get("GAN_JAX_CACHE") or os.path.expanduser("~/.cache/gan_jax")


def train_classifier(images: np.ndarray, labels: np.ndarray, *, epochs: int = 15, batch: int = 64,
                     seed: int = 0, test_fraction: float = 0.2) -> tuple[dict, float]:
  """Trains DigitCNN with Adam on a random (1 - test_fraction) split; returns (params, test accuracy)."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(images))
  n_test = int(len(images) * test_fraction)
  test, train = order[:n_test], order[n_test:]
  model = DigitCNN()
  params = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, *images.shape[1:])))   # one program
  tx = optax.adam(1e-3)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, x, y):
    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt

  for _ in range(epochs):
    perm = rng.permutation(train)
    for i in range(0, len(perm) - batch + 1, batch):
      idx = perm[i:i + batch]
      params, opt = step(params, opt, images[idx], labels[idx])
  predict = make_predictor(params)
  accuracy = float(np.mean(predict(images[test]) == labels[test])) if n_test else float("nan")
  return params, accuracy


def make_predictor(params: dict, batch: int = 1000) -> Callable[[np.ndarray], np.ndarray]:
  """images [N, H, W, 1] -> predicted digits [N] (int)."""
  apply = jax.jit(lambda x: jnp.argmax(DigitCNN().apply(params, x), axis=-1))

  def predict(images: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(apply(images[i:i + batch])) for i in range(0, len(images), batch)])
  return predict


@functools.lru_cache(maxsize=8)
def _load(path: str) -> tuple[dict, float]:
  with open(path + ".json") as f:
    meta = json.load(f)
  template = jax.eval_shape(DigitCNN().init, jax.random.PRNGKey(0), jnp.zeros((1, *meta["shape"])))   # shapes only
  with open(path, "rb") as f:
    params = flax.serialization.from_bytes(template, f.read())
  return params, meta["test_accuracy"]


def make_featurizer(params: dict, batch: int = 1000) -> Callable[[np.ndarray], np.ndarray]:
  """images [N, H, W, 1] -> the 128-d penultimate features (after ReLU) [N, 128]."""
  def features(x):
    _, state = DigitCNN().apply(params, x, capture_intermediates=lambda mdl, _: mdl.name == "Dense_0")
    return jax.nn.relu(state["intermediates"]["Dense_0"]["__call__"][0])
  apply = jax.jit(features)

  def featurize(images: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(apply(images[i:i + batch])) for i in range(0, len(images), batch)])
  return featurize


def cached_classifier(name: str, load_data: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[Callable, float]:
  """(predict, test accuracy) for classifier `name`, training and caching it on first use."""
  params, accuracy = cached_params(name, load_data)
  return make_predictor(params), accuracy


def cached_params(name: str, load_data: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[dict, float]:
  """(weights, test accuracy) of classifier `name`, training and caching it on first use."""
  path = os.path.join(cache_dir(), f"digit_classifier_{name}.msgpack")
  if not os.path.exists(path + ".json"):
    os.makedirs(cache_dir(), exist_ok=True)
    # One trainer at a time: processes that need the same classifier at once (sweep trials, test
    # workers) wait for the first one's file instead of each training their own.
    with open(path + ".lock", "w") as lock:
      fcntl.flock(lock, fcntl.LOCK_EX)
      if not os.path.exists(path + ".json"):
        images, labels = load_data()
        params, accuracy = train_classifier(images, labels)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
          f.write(flax.serialization.to_bytes(params))
        os.replace(tmp, path)
        with open(tmp, "w") as f:
          json.dump({"test_accuracy": accuracy, "shape": list(images.shape[1:]), "n": len(images)}, f)
        os.replace(tmp, path + ".json")
  return _load(path)
