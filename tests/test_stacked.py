"""Mode counting on stacked digits: the histogram maths and the project-trained classifier."""
import numpy as np
import pytest

from gan_jax.data.digits import digit_images
from gan_jax.metrics import digit_classifier
from gan_jax.metrics.stacked import mode_histogram, stacked_mode_statistics


def test_mode_histogram_closed_forms():
  uniform = mode_histogram(np.arange(1000).repeat(3))
  assert uniform == {"modes_covered": 1000, "reverse_kl": pytest.approx(0.0, abs=1e-12)}
  one = mode_histogram(np.full(50, 123))
  assert one["modes_covered"] == 1 and one["reverse_kl"] == pytest.approx(np.log(1000))
  half = mode_histogram(np.arange(500).repeat(2))
  assert half["reverse_kl"] == pytest.approx(np.log(2))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
  import os
  os.environ["GAN_JAX_CACHE"] = str(tmp_path_factory.mktemp("cache"))
  try:
    yield digit_classifier.cached_classifier("digits_8", lambda: digit_images(8))
  finally:
    os.environ.pop("GAN_JAX_CACHE")


def test_classifier_is_accurate_and_cached(classifier):
  predict, accuracy = classifier
  assert accuracy > 0.95                                 # held-out 20% of the digits
  predict2, accuracy2 = digit_classifier.cached_classifier("digits_8", lambda: 1 / 0)  # loads, never retrains
  assert accuracy2 == accuracy
  images, labels = digit_images(8)
  np.testing.assert_array_equal(predict(images[:100]), predict2(images[:100]))


def test_real_stacks_cover_their_modes(classifier):
  predict, _ = classifier
  images, labels = digit_images(8)
  rng = np.random.default_rng(0)
  idx = rng.integers(0, len(images), size=(3000, 3))
  stacks = np.concatenate([images[idx[:, c]] for c in range(3)], axis=-1)
  truth = mode_histogram(100 * labels[idx[:, 0]] + 10 * labels[idx[:, 1]] + labels[idx[:, 2]])
  got = stacked_mode_statistics(stacks, predict)
  assert abs(got["modes_covered"] - truth["modes_covered"]) <= 30
  # A generator that repeats one stack covers one mode.
  assert stacked_mode_statistics(np.repeat(stacks[:1], 200, axis=0), predict)["modes_covered"] == 1


def test_concurrent_users_train_the_classifier_once(tmp_path, monkeypatch):
  """Two callers that need the same uncached classifier at once (sweep trials, test workers): one
  trains, the other waits for its file (a lock beside it) and loads it; both get the same weights."""
  import threading
  import time

  import jax
  import jax.numpy as jnp

  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  calls = []

  def slow_fake_training(images, labels):
    calls.append(1)
    time.sleep(1.0)   # long enough for the second caller to arrive while the first trains
    shapes = jax.eval_shape(digit_classifier.DigitCNN().init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
    return jax.tree.map(lambda s: np.full(s.shape, len(calls), s.dtype), shapes), 0.5 + len(calls)

  monkeypatch.setattr(digit_classifier, "train_classifier", slow_fake_training)
  data = (np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, np.int32))
  results = [None, None]

  def use(i):
    results[i] = digit_classifier.cached_params("concurrent_8", lambda: data)

  threads = [threading.Thread(target=use, args=(i,)) for i in range(2)]
  for t in threads:
    t.start()
    time.sleep(0.2)
  for t in threads:
    t.join()
  assert len(calls) == 1 and results[0][1] == results[1][1] == 1.5
  for a, b in zip(jax.tree.leaves(results[0][0]), jax.tree.leaves(results[1][0])):
    np.testing.assert_array_equal(a, b)
