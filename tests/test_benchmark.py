"""scripts/benchmark.py: the table and JSON it promises, its errors, and the PyTorch twin."""
import json
import math
import os

import jax
import pytest
from conftest import run_main, run_python, run_script

TINY = ["--resolution", "16", "--batch", "8", "--width", "8", "--steps", "2", "--warmup", "1"]


@pytest.mark.slow
def test_benchmark_rows_and_json(tmp_path):
  out = tmp_path / "bench.json"
  r = run_script("benchmark.py", *TINY, "--impl", "subpixel,xla", "--breakdown", "--json", str(out),
                 "--profile", str(tmp_path / "trace"), "--dump-hlo", str(tmp_path / "hlo"))
  assert r.returncode == 0, r.stderr
  for impl in ("subpixel", "xla"):
    assert list((tmp_path / "trace" / impl).rglob("*.trace.json.gz")), impl
  assert list((tmp_path / "hlo").glob("*jit_step*.txt"))   # the trainer's step (Trainer.step) as XLA compiled it
  rows = json.loads(out.read_text())["jax"]
  assert set(rows[0]["breakdown_s"]) == {"G forward", "G forward + backward", "D forward",
                                         "D forward + backward (weights)", "D forward + backward (input)",
                                         "D on real and fake, two calls + backward (weights)",
                                         "D on real and fake, one vmap-ed call + backward (weights)"}
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
    (["--population", "nope:runlocal"], "--population: unknown experiment 'nope'; valid:"),
    (["--population", "ring8:runlocal", "--members", "1"], "--members must be >= 2, got 1"),
    (["--compare-official", "nope", "--official-repo", "."],
     "--compare-official: unknown model 'nope'; valid: r3gan, stylegan2, biggan"),
    (["--compare-official", "r3gan", "--official-repo", "/nonexistent"],
     "--official-repo /nonexistent: not a directory"),
    (["--compare-official", "biggan"], "--official-repo (not given): not a directory; --compare-official biggan needs"),
])
def test_benchmark_bad_input(args, message):
  r = run_main("benchmark.py", *args)
  assert r.returncode == 2
  assert r.stderr.strip().count("\n") == 0 and message in r.stderr


@pytest.mark.slow
def test_benchmark_experiment_compile_times(tmp_path):
  out = tmp_path / "compile.json"
  # ProGAN's batch has its stage's layout [batches_per_step, units, unit, ...]; StackGAN's the keys of
  # its pipeline (image and label).
  r = run_script("benchmark.py", "--experiments", "ring8,dcgan_cifar10,progan_celebahq1024,stackgan_cub",
                 "--json", str(out))
  assert r.returncode == 0, r.stderr
  rows = {row["experiment"]: row for row in json.loads(out.read_text())["compile"]}
  assert rows["progan_celebahq1024"]["shape"] == rows["stackgan_cub"]["shape"] == [16, 16, 1]
  assert rows["ring8"]["shape"] == [2] and not rows["ring8"]["shape_from_config"]
  # CIFAR-10 is not prepared here: its shape comes from the config.
  assert rows["dcgan_cifar10"]["shape"] == [32, 32, 3] and rows["dcgan_cifar10"]["shape_from_config"]
  for row in rows.values():
    for phase in ("cold", "warm"):
      assert row[f"compile_{phase}_s"] > 0 and row[f"init_compile_{phase}_s"] > 0
  assert "| ring8 | mlp | 2 | 100 |" in r.stdout


@pytest.mark.slow
def test_fid_throughput_against_pytorch_fid(tmp_path):
  """benchmark.py --fid times the full-width FID Inception (and pytorch-fid's where torch is
  installed) and reports each alternating measurement and their ratio."""
  import importlib.util
  torch = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("pytorch_fid") is not None
  out = tmp_path / "fid.json"
  args = ("--fid", "--batch", "2", "--steps", "1", "--warmup", "1", "--repeats", "2", "--json", str(out))
  r = run_script("benchmark.py", *args, *(("--compare-torch",) if torch else ()))
  assert r.returncode == 0, r.stderr[-3000:]
  f = json.loads(out.read_text())["fid_throughput"]
  assert f["batch"] == 2 and f["devices"] == 1 and len(f["jax_images_per_s"]) == 2
  assert all(x > 0 for x in f["jax_images_per_s"])
  if torch:
    assert len(f["torch_images_per_s"]) == 2 and "ratio jax / torch" in r.stdout
    assert f["ratios"] == pytest.approx([j / t for j, t in zip(f["jax_images_per_s"], f["torch_images_per_s"])])


def test_inference_commands_take_one_cpu_device_per_core():
  """parallel.cpu_device_per_core: one device per usable core unless the user set a count."""
  code = "from gan_jax import parallel; import jax; print(parallel.cpu_device_per_core(), jax.device_count())"
  cores = len(os.sched_getaffinity(0))
  r = run_python(code, env={"XLA_FLAGS": None})   # no device count set
  assert r.returncode == 0 and r.stdout.split() == [str(cores), str(cores)], r.stderr[-2000:]
  r = run_python(code, devices=3)
  assert r.returncode == 0 and r.stdout.split() == ["None", "3"], r.stderr[-2000:]


@pytest.mark.slow
def test_torch_twin_matches_parameter_counts(tmp_path):
  pytest.importorskip("torch")
  from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator
  out = tmp_path / "bench.json"
  r = run_script("benchmark.py", *TINY, "--impl", "subpixel", "--compare-torch", "--repeats", "1", "--json", str(out))
  assert r.returncode == 0, r.stderr
  result = json.loads(out.read_text())
  # Ours without and with reuse_fake, PyTorch's twin and canonical loops; ratios of the same round.
  assert [row["reuse_fake"] for row in result["jax"]] == [False, True]
  assert [t["loop"] for t in result["torch"]] == ["twin", "canonical"]
  for row in result["jax"]:
    for t in result["torch"]:
      assert row[f"ratio_vs_{t['loop']}"] == pytest.approx(row["images_per_s"] / t["images_per_s"])
    assert set(row["xla_memory_mb"]) == {"arguments", "outputs", "temporaries"} and row["peak_rss_mb"] > 0
  for row, stages in [(row, ["start", "state", "compiled", "steps"]) for row in result["jax"]] + [
      (t, ["start", "state", "steps"]) for t in result["torch"]]:
    assert list(row["rss_stages"]) == stages
    peaks = [s["peak_mb"] for s in row["rss_stages"].values()]
    assert peaks == sorted(peaks) and all(0 < s["rss_mb"] <= s["peak_mb"] for s in row["rss_stages"].values())
  assert "resident memory by stage" in r.stdout
  assert "| torch" in r.stdout and "canonical loop" in r.stdout and "reuse_fake" in r.stdout
  t = result["torch"][0]
  z, x = jax.numpy.zeros((2, 100)), jax.numpy.zeros((2, 16, 16, 3))
  count = lambda tree: sum(a.size for a in jax.tree.leaves(tree["params"]))  # noqa: E731
  assert t["g_params"] == count(jax.eval_shape(DCGANGenerator(16, 3, 8, 4).init, jax.random.PRNGKey(0), z))
  assert t["d_params"] == count(jax.eval_shape(DCGANDiscriminator(16, 8, 4).init, jax.random.PRNGKey(0), x))
  assert math.isfinite(t["d_loss"]) and math.isfinite(t["g_loss"])


def test_scaling_costs_and_model():
  """benchmark.py --scaling's figures for one baseline: parameters counted, gradient bytes from them,
  the FLOPs per image are positive and the model's arithmetic holds."""
  from gan_jax import scaling
  c = scaling.baseline_costs("dcgan_cifar10")
  assert c["batch"] == 128 and c["d_updates_per_step"] == 1 and c["flops_per_image"] > 1e9
  assert c["allreduce_bytes_per_step"] == 4 * (c["params_d"] + c["params_g"])
  assert abs(c["flops_per_step"] - (c["flops_fixed"] + 128 * c["flops_per_image"])) < 1e-6 * c["flops_per_step"]
  p = scaling.Platform("test", 4, 100.0, 10.0, "")
  m = scaling.model_step(c, p, mfu=0.5)
  compute = c["flops_per_step"] / (4 * 100e12 * 0.5)
  comm = 1.5 * c["allreduce_bytes_per_step"] / 10e9
  assert m["compute_ms"] == pytest.approx(compute * 1e3) and m["allreduce_ms"] == pytest.approx(comm * 1e3)
  assert m["efficiency"] == pytest.approx(compute / (compute + comm))
  assert "| dcgan_cifar10 | 32 | 128 |" in scaling.markdown([c])


def test_d_pair_passes_compute_the_same_gradient(load_config):
  """The breakdown's two D-pair rows time the same work: one call vmap-ed over [real; fake] gives the
  two calls' weight gradient (each half with its own BatchNorm statistics), unlike one call on the
  concatenated batch (statistics over both)."""
  import jax.numpy as jnp
  import numpy as np

  from gan_jax.benchmark import d_pair_grads
  from gan_jax.data import build_dataset
  from gan_jax.train.loop import setup
  c = load_config("experiments/dcgan_digits.py:runlocal")
  spec = build_dataset(c.data).spec
  gan, _, init, init_key, _, _ = setup(c, spec)
  state = jax.eval_shape(init, init_key)
  state = jax.tree.map(lambda s: jax.random.normal(jax.random.PRNGKey(3), s.shape, s.dtype) * 0.1
                       if jnp.issubdtype(s.dtype, jnp.floating) else jnp.zeros(s.shape, s.dtype), state)
  assert state.d_vars, "the check needs a D with BatchNorm statistics"
  real = jax.random.uniform(jax.random.PRNGKey(1), (8, *spec.shape), minval=-1.0, maxval=1.0)
  fake = 0.3 * jnp.tanh(jax.random.normal(jax.random.PRNGKey(2), real.shape))
  two_calls, one_call = d_pair_grads(gan, state.d_vars)

  def concatenated(p, real, fake):
    def total(p):
      logits = gan.discriminate(p, state.d_vars, jnp.concatenate([real, fake]))[0]
      return gan.loss.d(logits[:8], logits[8:])
    return jax.grad(total)(p)

  a, b, mixed = jax.jit(lambda *args: [f(*args) for f in (two_calls, one_call, concatenated)])(
      state.d_params, real, fake)
  scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(a))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * scale)
  assert max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(mixed))) > 1e-3 * scale


def test_rss_stages_see_an_allocation():
  """procinfo's stages: 64 MB touched between two stages raise the resident memory by most of that, and
  the peak never falls below the memory now."""
  import numpy as np

  from gan_jax.procinfo import rss_stage
  stages = {}
  rss_stage(stages, "before")
  block = np.ones(64 * 2**20 // 8)
  rss_stage(stages, "after")
  a, b = stages["before"], stages["after"]
  assert b["rss_mb"] - a["rss_mb"] > 48 and block.sum() > 0
  assert a["peak_mb"] <= b["peak_mb"] and b["rss_mb"] <= b["peak_mb"]


# In a fresh interpreter (this process's heap, shaped by the tests before, could let free() shrink it alone).
_TRIM_CHECK = """
from gan_jax.procinfo import release_free_memory, rss_mb
blocks = [bytearray(b"x" * 60_000) for _ in range(1100)]   # under glibc's mmap threshold: heap blocks
keep = bytearray(b"y" * 60_000)                             # allocated last, above them
before = rss_mb()
del blocks
held = rss_mb()
released = release_free_memory()
print(released, before - held, held - rss_mb())
"""


def test_release_free_memory_returns_the_freed_heap():
  """64 MB of small blocks freed behind one block still in use stay resident (glibc cannot shrink its
  heap past a live block) until release_free_memory hands their pages back."""
  r = run_python(_TRIM_CHECK)
  assert r.returncode == 0, r.stderr[-2000:]
  released, kept_by_free, returned = r.stdout.split()
  if released == "False":
    pytest.skip("not glibc: no malloc_trim")
  assert float(kept_by_free) < 16 and float(returned) > 48, r.stdout


def test_population_rows_time_one_seed_and_both_forms(tmp_path):
  """--population: one seed, then the members vmap-ed and unrolled, each a timed compiled step."""
  out = tmp_path / "pop.json"
  r = run_main("benchmark.py", "--population", "ring8:runlocal", "--members", "2", "--steps", "1", "--warmup", "0",
               "--json", str(out))
  assert r.returncode == 0, r.stderr[-2000:]
  rows = json.loads(out.read_text())["population"]["rows"]
  assert [(row["members"], row["population_impl"]) for row in rows] == [(1, "-"), (2, "vmap"), (2, "unroll")]
  for row in rows:
    assert row["median_step_s"] > 0 and row["compile_s"] > 0
    assert row["per_member_s"] == pytest.approx(row["median_step_s"] / row["members"])
  assert "| 2 | unroll |" in r.stdout
