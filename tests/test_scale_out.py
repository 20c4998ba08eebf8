"""Scale-out features: parameter sharding rules (FSDP), gradient accumulation, bf16 compute,
profiler traces, coordinated preemption and multi-process equality for a large architecture."""
import dataclasses
import functools
import os
import re
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT, experiment, free_port, read_jsonl, run_main, run_processes, run_script, state_mb

from gan_jax import parallel
from gan_jax.config import parse_profile_steps
from gan_jax.errors import ConfigError
from gan_jax.losses import LOSSES
from gan_jax.models import DataSpec
from gan_jax.models.mlp import MaxoutDiscriminator, MLPGenerator
from gan_jax.regularizers import Regularization
from gan_jax.train import loop
from gan_jax.train.kinds import build_trainer
from gan_jax.train.kinds.gan import GAN, train_step

# --- sharding rules ----------------------------------------------------------------------------


def test_fsdp_splits_the_largest_divisible_dimension_of_large_leaves():
  spec = lambda path, shape, **kw: parallel.leaf_spec(path, shape, **{  # noqa: E731
      "n": 8, "fsdp": True, "min_size": 1000, "rules": [], **kw})
  assert spec("g_params/Dense_0/kernel", (100, 4096)) == parallel.P(None, "data")
  assert spec("d_params/Conv_1/kernel", (5, 5, 128, 256)) == parallel.P(None, None, None, "data")
  # Ties go to the last dimension; dimensions that do not divide by 8 are skipped.
  assert spec("x", (64, 64)) == parallel.P(None, "data")
  assert spec("x", (1000, 3, 12)) == parallel.P("data", None, None)
  assert spec("x", (999, 3)) == parallel.P()                       # nothing divides: replicated
  assert spec("g_params/BatchNorm_0/scale", (256,)) == parallel.P()  # below min_size
  assert spec("x", (100, 4096), fsdp=False) == parallel.P()
  assert spec("x", (100, 4096), n=1) == parallel.P()
  # A population's member axis is never split.
  assert spec("x", (4096, 100), leading=1) == parallel.P()            # 100 does not divide by 8
  assert spec("x", (3, 64, 4096), leading=1) == parallel.P(None, None, "data")


def test_rules_override_fsdp_first_match_wins():
  rules = parallel.parse_sharding_rules(r"embed=none, Dense_0/kernel=0 ,kernel=-1")
  assert rules == [("embed", None), ("Dense_0/kernel", 0), ("kernel", -1)]
  spec = lambda path, shape: parallel.leaf_spec(path, shape, 8, True, 0, rules)  # noqa: E731
  assert spec("g_params/shared_embed/embedding", (1000, 128)) == parallel.P()
  assert spec("g_params/Dense_0/kernel", (128, 4096)) == parallel.P("data", None)
  assert spec("d_opt/inner_state/0/mu/Conv_0/kernel", (3, 3, 64, 128)) == parallel.P(None, None, None, "data")
  with pytest.raises(ValueError, match="does not divide by the 8 devices"):
    spec("g_params/Dense_0/kernel", (100, 4096))
  for bad, why in (("kernel", "not REGEX=DIM"), ("kernel=x", "integer or 'none'"), ("(=0", "bad regex")):
    with pytest.raises(ValueError, match=re.escape(why)):
      parallel.parse_sharding_rules(bad)


def test_state_shardings_of_a_real_train_state(load_config):
  """Every leaf of G, D, EMA and both Adam states gets a sharding; the big kernels and their
  optimizer moments are split, scalars and small vectors replicated."""
  c = load_config("experiments/dcgan_digits.py:runlocal")
  gan = build_trainer(c, DataSpec("image", (16, 16, 1)))
  abstract = jax.eval_shape(lambda k: gan.init(k, (16, 16, 1)), jax.random.PRNGKey(0))
  mesh = jax.make_mesh((1,), ("data",))
  # One device here: specs are computed for 8 by leaf_spec directly on the same paths.
  paths = {jax.tree_util.keystr(p, simple=True, separator="/"): x.shape
           for p, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  split = {p for p, s in paths.items() if parallel.leaf_spec(p, s, 8, True, 4096, []) != parallel.P()}
  assert "g_params/Dense_0/kernel" in split and "d_params/Conv_1/kernel" in split
  assert {"g_opt/inner_state/0/mu/Dense_0/kernel", "d_opt/inner_state/0/nu/Conv_1/kernel"} <= split
  assert "ema_params/Dense_0/kernel" in split   # the runlocal config has an EMA (half-life 5 kimg)
  assert not any(p.endswith("count") or "BatchNorm" in p for p in split)
  shardings = parallel.state_shardings(abstract, mesh, fsdp=True, min_size_mb=0)
  assert len(jax.tree.leaves(shardings)) == len(jax.tree.leaves(abstract))


def test_bad_sharding_and_scale_keys_exit_2(tmp_path):
  base = ("--config", experiment("ring8") + ":runlocal", "--workdir", str(tmp_path / "w"))
  for flag, message in (("--config.sharding.rules=kernel", "sharding.rules: sharding rule 'kernel' is not REGEX=DIM"),
                        ("--config.precision=fp16", "unknown precision 'fp16'; valid choices: float32, bfloat16"),
                        ("--config.grad_accum=3", "batch_size=100 is not divisible by grad_accum=3"),
                        ("--config.profile_steps=5:2", "profile_steps '5:2': need 1 <= START < STOP")):
    r = run_main("train.py", *base, flag)
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], (flag, r.stderr[-500:])
  assert not os.path.exists(tmp_path / "w")


def test_profile_steps_parsing():
  assert parse_profile_steps("") is None
  assert parse_profile_steps("3", start=0) == (2, 5)         # after the compiling first step
  assert parse_profile_steps("3", start=100) == (102, 105)    # ... of a resumed invocation
  assert parse_profile_steps("10:20") == (10, 20)
  with pytest.raises(ConfigError, match="N or START:STOP"):
    parse_profile_steps("a:b")


# --- gradient accumulation -----------------------------------------------------------------------


def _mlp_gan(**kw):
  args = dict(generator=MLPGenerator(out_dim=2, width=32, layers=2),
              discriminator=MaxoutDiscriminator(width=16, layers=2, pieces=2),
              loss=LOSSES.get("rpgan")(), g_tx=optax.adam(1e-3, b1=0.0, b2=0.99),
              d_tx=optax.adam(1e-3, b1=0.0, b2=0.99),
              z_dim=4, z_dist="normal", batch_size=32, n_critic=2, ema_decay=0.99,
              reg=Regularization(r1=1.0, r2=0.5))
  args.update(kw)
  return GAN(**args)


def _run_steps(gan, steps=3):
  state = gan.init(jax.random.PRNGKey(0), (2,))
  step = jax.jit(lambda s, b, k: train_step(gan, s, b, k))
  out = []
  for i in range(steps):
    batch = {"x": jax.random.normal(jax.random.PRNGKey(100 + i), (gan.batches_per_step, 32, 2))}
    state, metrics = step(state, batch, jax.random.PRNGKey(7))
    out.append(metrics)
  return state, out


@functools.lru_cache(maxsize=None)
def _big_batch_run():
  """The 32-batch reference run, shared by the accumulation tests below (compiled once)."""
  return _run_steps(_mlp_gan())


@pytest.mark.parametrize("k", [2, 4])
def test_accumulation_over_k_micro_batches_equals_one_big_batch(k):
  """RpGAN (a relativistic loss that pairs reals and fakes), R1 + R2 and the EMA of G on a
  normalization-free network: k micro-batches of 32/k give
  the 32-batch's gradients, so the states after 3 steps (2 D steps each) agree to float32
  rounding amplified by Adam, and so do the logged losses, penalties and gradient norms."""
  big, big_metrics = _big_batch_run()
  acc, acc_metrics = _run_steps(_mlp_gan(grad_accum=k))
  for a, b in zip(jax.tree.leaves(big), jax.tree.leaves(acc)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
  for ma, mb in zip(big_metrics, acc_metrics):
    assert set(ma) == set(mb)
    for key in ma:
      np.testing.assert_allclose(float(mb[key]), float(ma[key]), rtol=1e-4, atol=1e-6, err_msg=key)


def test_accumulation_is_not_the_plain_step_with_a_smaller_batch():
  """The check above has power: micro-batches of 8 taken as the whole batch give other states."""
  big, _ = _big_batch_run()
  small = _mlp_gan(batch_size=8)
  state = small.init(jax.random.PRNGKey(0), (2,))
  batch = {"x": jax.random.normal(jax.random.PRNGKey(100), (small.batches_per_step, 32, 2))[:, ::4]}
  state, _ = jax.jit(lambda s, b, k: train_step(small, s, b, k))(state, batch, jax.random.PRNGKey(7))
  diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(big.d_params),
                                                               jax.tree.leaves(state.d_params)))
  assert diff > 1e-4


# --- bf16 compute ----------------------------------------------------------------------------------


def _setup(load_config, spec, **over):
  c = load_config(spec)
  c.update_from_flattened_dict({"batch_size": 32, **over})
  gan, mesh, init, init_key, step_key, _ = loop.setup(c, DataSpec("image", (16, 16, 1)))
  return gan, mesh, init(init_key), step_key


def test_bfloat16_compute_stays_close_to_float32(load_config):
  """DCGAN (BatchNorm) on 16x16 digits-shaped data, 5 steps from the same initialization: losses
  within 5e-3 of float32's (measured 7e-4). Every convolution of the bf16 step computes in bf16;
  parameters, optimizer states and BatchNorm statistics stay float32."""
  rng = np.random.default_rng(0)
  batches = [{"x": jnp.asarray(np.tanh(rng.normal(size=(1, 32, 16, 16, 1))), jnp.float32)} for _ in range(5)]
  runs = {}
  for precision in ("float32", "bfloat16"):
    gan, mesh, state, key = _setup(load_config, "experiments/dcgan_digits.py:runlocal", precision=precision)
    step = loop.jit_step(gan, mesh, 1)
    hlo = step.lower(state, batches[0], key).as_text()
    convs = re.findall(r"stablehlo.convolution[^\n]*", hlo)
    low = [c for c in convs if "bf16" in c]
    assert convs and len(low) == (len(convs) if precision == "bfloat16" else 0)
    losses = []
    for b in batches:
      state, m = step(state, b, key)
      losses.append([float(m["d_loss"]), float(m["g_loss"])])
    assert {str(x.dtype) for x in jax.tree.leaves(state)} <= {"float32", "int32"}
    runs[precision] = np.array(losses)
  diff = np.abs(runs["bfloat16"] - runs["float32"])
  assert diff.max() < 5e-3 and diff.max() > 0   # close, and not the same program


BF16_NETWORKS = [("experiments/sngan_cifar10.py:runlocal", {"model.g_width": 8, "model.d_width": 8}),
                 ("experiments/stylegan2_ffhq256.py:runlocal", {"model.channel_max": 32}),
                 ("experiments/biggan_cifar10.py:runlocal", {}),
                 ("experiments/sagan_imagenet128.py:runlocal", {}),
                 ("experiments/r3gan_cifar10.py:runlocal", {})]


@pytest.mark.slow   # a minute or more of compiling each; the quick tier has the DCGAN bf16 test above
@pytest.mark.parametrize("spec,widths", BF16_NETWORKS, ids=[s.split("/")[1].split(".")[0] for s, _ in BF16_NETWORKS])
def test_bfloat16_forward_passes_of_every_large_architecture(load_config, spec, widths):
  """SNGAN (spectral norm: sigma in float32, weights back to bf16), StyleGAN2 (demodulation and
  minibatch stddev in float32), BigGAN and SAGAN (self-attention softmax in float32, conditional BN
  statistics in float32) and R3GAN (grouped convolutions, no normalization), runlocal configs (SNGAN
  and StyleGAN2 at half their width), conditional where the paper's model is: at initialization,
  G's images and D's logits in bf16 are within 3 % (relative L2) of float32's, and come back as
  float32."""
  c = load_config(spec)
  c.update_from_flattened_dict(widths)
  shape = (c.data.resolution, c.data.resolution, 1)
  classes = 10 if c.model.conditional else 0
  base = build_trainer(c, DataSpec("image", shape, classes))
  gans = {"float32": base, "bfloat16": dataclasses.replace(base, compute_dtype="bfloat16")}
  state = jax.jit(functools.partial(base.init, data_shape=shape))(jax.random.PRNGKey(0))
  y = jnp.arange(8) % 10 if classes else None
  outs = {}
  for precision, gan in gans.items():
    @jax.jit
    def forward(state, z, key, gan=gan):
      images = gan.generate(state.g_params, state.g_vars, z, y, key, train=False)[0]
      return images, gan.discriminate(state.d_params, state.d_vars, jnp.tanh(images), y, key)[0]
    images, logits = forward(state, gans["float32"].latents(jax.random.PRNGKey(1), 8), jax.random.PRNGKey(2))
    assert images.dtype == logits.dtype == jnp.float32
    outs[precision] = (np.asarray(images), np.asarray(logits))
  for a, b in zip(outs["float32"], outs["bfloat16"]):
    rel = np.linalg.norm(b - a) / np.linalg.norm(a)
    assert 0 < rel < 0.03, (spec, rel)


# --- multi-device and multi-process runs ----------------------------------------------------------

TOY_BIGGAN = ["--config.total_steps=3", "--config.log_every=1", "--config.batch_size=8", "--config.sample_every=0",
              "--config.eval.every=0", "--config.ckpt_every=3", "--config.model.shared_dim=8",
              "--config.model.z_dim=20", "--config.reg.ortho=1e-4",
              # Adam's eps at 1e-3 instead of 1e-6: its first update is g / (|g| + eps), which turns
              # float noise in near-zero gradients into lr-sized steps; a larger eps keeps the
              # comparison about the distributed computation, not Adam's amplification of noise.
              "--config.optim.g.eps=1e-3", "--config.optim.d.eps=1e-3"]


def _losses(workdir):
  return np.array([[r["d_loss"], r["g_loss"]] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))
                   if "d_loss" in r])



@pytest.mark.slow
def test_biggan_on_2_and_4_processes_with_and_without_fsdp_equals_1_process(tmp_path):
  """BigGAN (class-conditional, shared embedding, hierarchical z, conditional BN, self-attention,
  orthogonal regularization) at toy width on 4 devices in all: 1 process x 4 devices with the
  state replicated, 2 processes x 2 devices with G, D, EMA and Adam states split over the 4
  devices (FSDP), and 4 processes x 1 device with the state replicated: the same losses at every
  step."""
  name = experiment("biggan_imagenet128") + ":runlocal"
  single = str(tmp_path / "single")
  r = run_script("train.py", "--config", name, "--workdir", single, *TOY_BIGGAN, devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  multi = str(tmp_path / "multi")
  outs = run_processes("train.py", "--config", name, "--workdir", multi, *TOY_BIGGAN, "--config.sharding.fsdp=True",
                       "--config.sharding.min_size_mb=0", processes=2, devices=2)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert "4 devices, 2 processes" in outs[0][2]
  whole, held = state_mb(outs[0][2])
  assert held < whole / 3, outs[0][2][:400]   # G, D, EMA and Adam states split over the 4 devices
  assert state_mb(r.stderr) == (whole, whole)   # replicated: every device holds all of it
  assert _losses(single).shape == (3, 2)
  np.testing.assert_allclose(_losses(multi), _losses(single), atol=2e-5, rtol=0)
  four = str(tmp_path / "four")
  outs = run_processes("train.py", "--config", name, "--workdir", four, *TOY_BIGGAN, processes=4, devices=1)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert "4 devices, 4 processes" in outs[0][2]
  np.testing.assert_allclose(_losses(four), _losses(single), atol=2e-5, rtol=0)


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_saves_the_same_step_on_both_and_resumes(tmp_path):
  """SIGTERM to the non-coordinator of 2 processes: JAX's preemption sync point makes both stop
  at the same step, save it together and exit 0; rerunning both resumes from it."""
  run = str(tmp_path / "run")
  args = ("--config", experiment("dcgan_digits") + ":runlocal", "--workdir", run, "--config.ckpt_every=1000",
          "--config.sample_every=0", "--config.log_every=5")
  port = free_port()
  procs = []
  for pid in range(2):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_NUM_CPU_DEVICES": "1",
           "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(pid),
           "WANDB_MODE": "disabled"}
    procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "train.py"), *args,
                                   "--config.total_steps=100000"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  try:
    metrics = os.path.join(run, "metrics.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline and not (os.path.exists(metrics) and len(read_jsonl(metrics)) >= 2):
      time.sleep(0.3)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=120) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
  steps = [int(n) for n in os.listdir(os.path.join(run, "checkpoints")) if n.isdigit()]
  assert len(steps) == 1 and 5 <= steps[0] < 100000
  assert f"saved step {steps[0]}" in outs[0][1]
  outs = run_processes("train.py", *args, f"--config.total_steps={steps[0] + 5}", processes=2, devices=1)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert f"resuming at step {steps[0]}" in outs[0][2]


@pytest.mark.slow
def test_persistent_compilation_cache_is_written_then_read(tmp_path):
  """train.py stores its compiled programs in the persistent cache (GAN_JAX_COMPILE_CACHE); a second
  run of the same command in a new workdir compiles the same programs and finds every one of them
  there: it adds no entry and rewrites none."""
  cache = tmp_path / "cache"
  args = ["--config", experiment("dcgan_digits") + ":runlocal", "--config.total_steps=2", "--config.log_every=1",
          "--config.sample_every=0", "--config.eval.every=0", "--config.ckpt_every=2"]
  entries = []
  for run in ("first", "second"):
    r = run_script("train.py", *args, "--workdir", str(tmp_path / run), env={"GAN_JAX_COMPILE_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr[-3000:]
    entries.append(sorted((p.name, p.stat().st_mtime_ns) for p in cache.rglob("*-cache")))
  assert entries[0], "nothing was written to the compilation cache"
  assert entries[1] == entries[0]
