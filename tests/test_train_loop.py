"""The trainer in this interpreter (loop.train): exact resume, a stop between log steps, the tfds and
image-folder data paths, divergence and nan_policy, populations. (Split from test_train.py so that the
two files run on both pytest workers at once.)"""
import os

import jax
import numpy as np
import pytest
from conftest import read_jsonl
from PIL import Image

from gan_jax.errors import ConfigError
from gan_jax.train import loop


def _digits_config(load_config, **overrides):
  c = load_config("experiments/dcgan_digits.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", **overrides})
  return c


def _flat(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_resume_is_exact(load_config, tmp_path):
  """20 steps straight == 10 steps, stop, then 10 more (bitwise)."""
  common = {"ckpt_every": 5, "sample_every": 0, "ema.halflife_kimg": 0.5, "n_critic": 2}
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "straight"))
  loop.train(_digits_config(load_config, total_steps=10, **common), str(tmp_path / "resumed"))
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "resumed"))
  *_, a, step_a = loop.load_run(str(tmp_path / "straight"))
  *_, b, step_b = loop.load_run(str(tmp_path / "resumed"))
  assert step_a == step_b == 20
  for x, y in zip(_flat(a), _flat(b), strict=True):
    np.testing.assert_array_equal(x, y)
  rows_a = read_jsonl(str(tmp_path / "straight" / "metrics.jsonl"))
  rows_b = read_jsonl(str(tmp_path / "resumed" / "metrics.jsonl"))
  assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]  # no duplicated lines
  for ra, rb in zip(rows_a, rows_b):
    assert ra["d_loss"] == rb["d_loss"] and ra["g_loss"] == rb["g_loss"]


TIMING = ("steps_per_sec", "images_per_sec", "compile_s")


def _rows_without_timing(workdir):
  return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))]


def test_logs_after_a_stop_between_log_steps_equal_an_uninterrupted_run(load_config, tmp_path, monkeypatch):
  """A stop request (SIGTERM, Ctrl-C) at step 7 with log_every 4 and ckpt_every 5: the checkpoint
  keeps the open logging interval (steps 5-7), so the resumed run's step-8 row averages steps 5-8
  as the uninterrupted run's does: metrics.jsonl equal row for row and value for value (the timing
  keys aside), and the final states equal."""
  common = {"ckpt_every": 5, "log_every": 4, "sample_every": 0, "total_steps": 12, "ema.halflife_kimg": 0.5}
  loop.train(_digits_config(load_config, **common), str(tmp_path / "straight"))
  with monkeypatch.context() as m:
    m.setattr(loop._StopFlag, "__call__", lambda self, step: step == 7)
    loop.train(_digits_config(load_config, **common), str(tmp_path / "stopped"))
  assert sorted(os.listdir(tmp_path / "stopped" / "checkpoints")) == ["5", "7"]
  assert [r["step"] for r in read_jsonl(str(tmp_path / "stopped" / "metrics.jsonl"))] == [4]
  loop.train(_digits_config(load_config, **common), str(tmp_path / "stopped"))
  straight, resumed = _rows_without_timing(tmp_path / "straight"), _rows_without_timing(tmp_path / "stopped")
  assert [r["step"] for r in straight] == [4, 8, 12]
  assert resumed == straight
  states = [loop.load_run(str(tmp_path / name))[5] for name in ("straight", "stopped")]
  for x, y in zip(_flat(states[0]), _flat(states[1]), strict=True):
    np.testing.assert_array_equal(x, y)


def test_tfds_path_end_to_end(load_config, tmp_path):
  import tensorflow_datasets as tfds
  c = load_config("experiments/dcgan_mnist.py:runlocal")
  c.update_from_flattened_dict({"total_steps": 4, "log_every": 2, "sample_every": 4, "ckpt_every": 4,
                                "wandb.mode": "disabled"})
  with tfds.testing.mock_data(num_examples=64):
    loop.train(c, str(tmp_path))
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows] == [2, 4]
  assert Image.open(tmp_path / "samples" / "step_00000004.png").mode == "L"


def test_image_folder_end_to_end(load_config, tmp_path):
  images = tmp_path / "images"
  images.mkdir()
  rng = np.random.default_rng(0)
  for i in range(12):
    suffix = "png" if i % 2 else "jpeg"
    Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(images / f"{i}.{suffix}")
  c = _digits_config(load_config, **{"data.name": "folder", "data.path": str(images), "total_steps": 3,
                                     "log_every": 1, "sample_every": 3, "ckpt_every": 3, "batch_size": 8})
  loop.train(c, str(tmp_path / "run"))
  assert len(read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))) == 3
  assert Image.open(tmp_path / "run" / "samples" / "step_00000003.png").mode == "RGB"


def test_divergence_stops_with_a_message_and_keeps_checkpoints(load_config, tmp_path):
  c = load_config("experiments/ring8.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", "total_steps": 40, "log_every": 10,
                                "ckpt_every": 10, "sample_every": 0, "eval.every": 0})
  loop.train(c, str(tmp_path))                         # 40 good steps, checkpoints 10..40
  # Logged every 100 steps, checkpointed every 10: the check before the step-50 checkpoint stops
  # the run, so no checkpoint ever holds the diverged state.
  c.update_from_flattened_dict({"total_steps": 200, "log_every": 100, "optim.d.lr": 1e30, "optim.g.lr": 1e30})
  with pytest.raises(loop.TrainingDiverged,
                     match=r"NaN or Inf within steps \(40, 50\]; the last checkpoint \(step 40\) is intact"):
    loop.train(c, str(tmp_path))
  assert sorted(int(s) for s in os.listdir(tmp_path / "checkpoints")) == [20, 30, 40]


def test_nan_policy_skip_undoes_and_counts_nonfinite_steps(load_config, tmp_path):
  """nan_policy=skip: 40 good steps, then a learning rate that makes every update non-finite:
  the run goes on to step 60, each bad step is undone inside the step (the parameters stay those
  of step 40, bit for bit) and counted; a bad config value exits with the valid choices."""
  c = load_config("experiments/ring8.py:runlocal")
  c.update_from_flattened_dict({"wandb.mode": "disabled", "total_steps": 40, "log_every": 10, "ckpt_every": 20,
                                "sample_every": 0, "eval.every": 0, "nan_policy": "skip"})
  loop.train(c, str(tmp_path))
  *_, good, _ = loop.load_run(str(tmp_path))
  c.update_from_flattened_dict({"total_steps": 60, "optim.d.lr": 1e30, "optim.g.lr": 1e30})
  loop.train(c, str(tmp_path))
  *_, after, step = loop.load_run(str(tmp_path))
  assert step == 60 and int(after.step) == 60 and int(after.reg_state["nonfinite_skipped"]) == 20
  for a, b in zip(_flat((good.g_params, good.d_params, good.ema_params)),
                  _flat((after.g_params, after.d_params, after.ema_params))):
    np.testing.assert_array_equal(a, b)
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["nonfinite_skipped"] for r in rows] == [0, 0, 0, 0, 10, 20]
  assert all(np.isfinite(r["d_loss"]) for r in rows)
  c.nan_policy = "ignore"
  with pytest.raises(ConfigError, match="unknown nan_policy 'ignore'; valid choices: stop, skip"):
    loop.train(c, str(tmp_path / "other"))


@pytest.mark.slow
def test_population_members_equal_separate_runs(load_config, tmp_path):
  """population=3 trains seeds 5, 6, 7 as one vmap-ed program: member i == the run with seed 5+i."""
  common = {"total_steps": 6, "log_every": 2, "sample_every": 6, "ckpt_every": 6, "seed": 5}
  loop.train(_digits_config(load_config, population=3, **common), str(tmp_path / "pop"))
  pop_rows = read_jsonl(str(tmp_path / "pop" / "metrics.jsonl"))
  *_, pop_state, _ = loop.load_run(str(tmp_path / "pop"))
  for i in (0, 2):
    wd = str(tmp_path / f"seed{5 + i}")
    loop.train(_digits_config(load_config, **{**common, "seed": 5 + i}), wd)
    rows = read_jsonl(os.path.join(wd, "metrics.jsonl"))
    for r, p in zip(rows, pop_rows):
      np.testing.assert_allclose(p["d_loss"][i], r["d_loss"], atol=1e-5)
      np.testing.assert_allclose(p["g_loss"][i], r["g_loss"], atol=1e-5)
    *_, single, _ = loop.load_run(wd)
    for a, b in zip(_flat(loop.member(pop_state, i, 3)), _flat(single)):
      np.testing.assert_allclose(a, b, atol=1e-5)
  assert os.path.exists(tmp_path / "pop" / "samples" / "step_00000006.png")


@pytest.mark.slow
def test_resume_with_another_process_count_derives_the_data_position(load_config, tmp_path):
  """A checkpoint whose data item was written by 2 processes still resumes exactly on 1."""
  common = {"ckpt_every": 10, "sample_every": 0, "n_critic": 2}
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "straight"))
  loop.train(_digits_config(load_config, total_steps=10, **common), str(tmp_path / "moved"))
  data = tmp_path / "moved" / "checkpoints" / "10" / "data"
  os.rename(data / "process_0-of-1.json", data / "process_0-of-2.json")
  loop.train(_digits_config(load_config, total_steps=20, **common), str(tmp_path / "moved"))
  *_, a, _ = loop.load_run(str(tmp_path / "straight"))
  *_, b, _ = loop.load_run(str(tmp_path / "moved"))
  for x, y in zip(_flat(a), _flat(b), strict=True):
    np.testing.assert_array_equal(x, y)
