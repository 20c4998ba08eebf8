import numpy as np
import pytest
from PIL import Image

from gan_jax.config import base_config
from gan_jax.data import build_dataset
from gan_jax.data.images import preprocess
from gan_jax.data.pipeline import train_dataset
from gan_jax.errors import ConfigError


def data_cfg(**kw):
  c = base_config().data
  c.update(kw)
  return c


def test_digits_are_real_and_scaled():
  ds = build_dataset(data_cfg(name="digits", resolution=16))
  assert len(ds.source) == 1797
  x = np.stack([ds.transform(ds.source[i])["x"] for i in range(50)])
  assert x.shape == (50, 16, 16, 1) and x.dtype == np.float32
  assert x.min() == -1.0 and x.max() <= 1.0 and x.max() > 0.9
  assert ds.spec.num_classes == 10


def test_ring8_training_set_statistics():
  ds = build_dataset(data_cfg(name="ring8", num_examples=20_000))
  x = np.stack([ds.source[i]["x"] for i in range(len(ds.source))])
  d = np.linalg.norm(x[:, None] - ds.modes[None], axis=-1)
  np.testing.assert_allclose(d.min(axis=1).mean(), 0.01 * np.sqrt(np.pi / 2), rtol=0.05)  # Rayleigh mean
  counts = np.bincount(d.argmin(axis=1), minlength=8)
  assert counts.min() > 2200


@pytest.mark.parametrize("processes", [2, 4])
def test_process_slices_rebuild_the_global_batch(processes):
  ds = build_dataset(data_cfg(name="digits", resolution=8))
  whole = iter(train_dataset(ds, 16, seed=3, process_index=0, process_count=1))
  parts = [iter(train_dataset(ds, 16, seed=3, process_index=p, process_count=processes))
           for p in range(processes)]
  for _ in range(5):
    expected = next(whole)
    got = [next(it) for it in parts]
    for key in expected:
      np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), expected[key])


def test_each_example_once_per_epoch_across_processes():
  ds = build_dataset(data_cfg(name="ring8", num_examples=96))
  seen = []
  for p in range(3):
    it = iter(train_dataset(ds, 24, seed=0, process_index=p, process_count=3))
    seen += [tuple(row) for _ in range(4) for row in next(it)["x"]]
  all_rows = {tuple(ds.source[i]["x"]) for i in range(96)}
  assert len(seen) == 96 and set(seen) == all_rows


def test_iterator_state_resumes_exactly():
  ds = build_dataset(data_cfg(name="digits", resolution=8))
  it = iter(train_dataset(ds, 8, seed=1, process_index=0, process_count=1))
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it)["label"] for _ in range(4)]
  it2 = iter(train_dataset(ds, 8, seed=1, process_index=0, process_count=1))
  it2.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(it2)["label"], e)


def test_preprocess_crop_resize_channels():
  img = np.zeros((40, 60, 3), np.uint8)
  img[:, 10:50] = 255                         # the centre 40x40 square is white
  out = preprocess(img, 16, 3)
  assert out.shape == (16, 16, 3)
  np.testing.assert_allclose(out, 1.0)
  grey = preprocess(img, 8, 1)
  assert grey.shape == (8, 8, 1)


def _write_images(folder, n, size=(20, 30)):
  rng = np.random.default_rng(0)
  for i in range(n):
    arr = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    ext = "png" if i % 2 else "jpg"
    (folder / f"sub{i % 2}").mkdir(exist_ok=True)
    Image.fromarray(arr).save(folder / f"sub{i % 2}" / f"img{i}.{ext}")


def test_folder_source_reads_png_and_jpeg(tmp_path):
  _write_images(tmp_path, 6)
  (tmp_path / "notes.txt").write_text("not an image")
  ds = build_dataset(data_cfg(name="folder", path=str(tmp_path), resolution=8))
  assert len(ds.source) == 6
  x = ds.source[0]["x"]
  assert x.shape == (8, 8, 3) and -1 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("setup,message", [
    ("missing", "is not a folder"),
    ("empty", "no images"),
    ("corrupt", "no usable image under data.path .* none of its 1 files is a readable image"),
])
def test_folder_errors(tmp_path, setup, message):
  path = tmp_path / "imgs"
  if setup != "missing":
    path.mkdir()
  if setup == "corrupt":
    (path / "a.png").write_bytes(b"not a png at all")
  with pytest.raises(ConfigError, match=message):
    build_dataset(data_cfg(name="folder", path=str(path)))


@pytest.mark.parametrize("name,resolution,channels,num_classes", [
    ("mnist", 32, 1, 10), ("cifar10", 32, 3, 10), ("celeba", 64, 3, 0)])
def test_tfds_through_data_source(name, resolution, channels, num_classes):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=20):
    ds = build_dataset(data_cfg(name=name, resolution=resolution))
    assert ds.spec.shape == (resolution, resolution, channels) and ds.spec.num_classes == num_classes
    batch = next(iter(train_dataset(ds, 8, seed=0, process_index=0, process_count=1)))
  assert batch["x"].shape == (8, resolution, resolution, channels)
  assert batch["x"].dtype == np.float32 and -1 <= batch["x"].min() and batch["x"].max() <= 1


def test_tfds_not_prepared_says_what_to_run(tmp_path):
  with pytest.raises(ConfigError, match="tfds build cifar10"):
    build_dataset(data_cfg(name="cifar10", data_dir=str(tmp_path)))


def test_unknown_tfds_name(tmp_path):
  with pytest.raises(ConfigError, match="TFDS has no dataset"):
    build_dataset(data_cfg(name="tfds", tfds_name="no_such_dataset_xyz", data_dir=str(tmp_path)))


def test_stacked_digits_are_three_labelled_digits():
  ds = build_dataset(data_cfg(name="stacked_digits", resolution=8, num_examples=500))
  assert len(ds.source) == 500 and ds.spec.shape == (8, 8, 3) and ds.spec.num_classes == 1000
  from gan_jax.data.digits import digit_images
  images, labels = digit_images(8)
  item = ds.source[7]
  triple = [int(d) for d in f"{int(item['label']):03d}"]
  for ch in range(3):   # each channel is one of the real digits with that label
    matches = np.where(np.all(images[..., 0] == item["x"][..., ch], axis=(1, 2)))[0]
    assert len(matches) and labels[matches[0]] == triple[ch]
  modes = {int(ds.source[i]["label"]) for i in range(500)}
  assert len(modes) > 350                       # 500 uniform draws of 1000 modes cover ~393


def test_stacked_mnist_through_tfds():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=30):
    ds = build_dataset(data_cfg(name="stacked_mnist", resolution=32, num_examples=100))
    item = ds.source[3]
  assert item["x"].shape == (32, 32, 3) and 0 <= int(item["label"]) < 1000
