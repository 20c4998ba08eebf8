"""scripts/benchmark.py: the table and JSON it promises, its errors, and the PyTorch twin."""
import json
import math

import jax
import pytest
from conftest import run_script

TINY = ["--resolution", "16", "--batch", "8", "--width", "8", "--steps", "2", "--warmup", "1"]


@pytest.mark.slow
def test_benchmark_rows_and_json(tmp_path):
  out = tmp_path / "bench.json"
  r = run_script("benchmark.py", *TINY, "--impl", "subpixel,xla", "--breakdown", "--json", str(out),
                 "--profile", str(tmp_path / "trace"), "--dump-hlo", str(tmp_path / "hlo"))
  assert r.returncode == 0, r.stderr
  for impl in ("subpixel", "xla"):
    assert list((tmp_path / "trace" / impl).rglob("*.trace.json.gz")), impl
  assert list((tmp_path / "hlo").glob("*train_step*.txt"))
  rows = json.loads(out.read_text())["jax"]
  assert set(rows[0]["breakdown_s"]) == {"G forward", "G forward + backward", "D forward",
                                         "D forward + backward (weights)", "D forward + backward (input)"}
  assert [row["impl"] for row in rows] == ["subpixel", "xla"]
  for row in rows:
    assert len(row["step_times_s"]) == 2
    assert row["images_per_s"] == pytest.approx(8 / row["median_step_s"])
    assert row["flops_per_step"] > 0 and 0 < row["mfu"] and row["compile_s"] > 0
  assert r.stdout.count("| jax | dcgan | 16 | 8 |") == 2


@pytest.mark.parametrize("args,message", [
    (["--impl", "cudnn"], "--impl: unknown value 'cudnn'; valid: auto, subpixel, xla"),
    (["--model", "nope"], "--model: unknown model 'nope'; valid:"),
    (["--experiments", "nope"], "--experiments: unknown experiment 'nope'; valid:"),
    (["--steps", "0"], "--steps must be >= 1"),
])
def test_benchmark_bad_input(args, message):
  r = run_script("benchmark.py", *args)
  assert r.returncode == 2
  assert r.stderr.strip().count("\n") == 0 and message in r.stderr


@pytest.mark.slow
def test_benchmark_experiment_compile_times(tmp_path):
  out = tmp_path / "compile.json"
  r = run_script("benchmark.py", "--experiments", "ring8,dcgan_cifar10", "--json", str(out))
  assert r.returncode == 0, r.stderr
  rows = {row["experiment"]: row for row in json.loads(out.read_text())["compile"]}
  assert rows["ring8"]["shape"] == [2] and not rows["ring8"]["shape_from_config"]
  # CIFAR-10 is not prepared here: its shape comes from the config.
  assert rows["dcgan_cifar10"]["shape"] == [32, 32, 3] and rows["dcgan_cifar10"]["shape_from_config"]
  for row in rows.values():
    assert row["compile_cold_s"] > 0 and row["compile_warm_s"] > 0


@pytest.mark.slow
def test_torch_twin_matches_parameter_counts(tmp_path):
  pytest.importorskip("torch")
  from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
  out = tmp_path / "bench.json"
  r = run_script("benchmark.py", *TINY, "--impl", "subpixel", "--compare-torch", "--json", str(out))
  assert r.returncode == 0, r.stderr
  result = json.loads(out.read_text())
  t = result["torch"]
  assert result["jax"][0]["ratio_vs_torch"] == pytest.approx(result["jax"][0]["images_per_s"] / t["images_per_s"])
  z, x = jax.numpy.zeros((2, 100)), jax.numpy.zeros((2, 16, 16, 3))
  count = lambda tree: sum(a.size for a in jax.tree.leaves(tree["params"]))  # noqa: E731
  assert t["g_params"] == count(jax.eval_shape(DCGANGenerator(16, 3, 8, 4).init, jax.random.PRNGKey(0), z))
  assert t["d_params"] == count(jax.eval_shape(DCGANDiscriminator(16, 8, 4).init, jax.random.PRNGKey(0), x))
  assert math.isfinite(t["d_loss"]) and math.isfinite(t["g_loss"])
