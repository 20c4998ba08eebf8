"""Measurements behind scripts/benchmark.py: the compiled train step, the machine's matmul peak,
compilation time of the shipped experiments, and the PyTorch twin (benchmarks/torch_dcgan.py).

Every figure comes from the real train step (`gan_jax.train.loop.jit_step`) on synthetic
batches of the data's shape: step times are medians over timed steps after warm-up, FLOPs are
XLA's cost analysis of the compiled step, MFU is FLOPs / step time / the float32 matmul rate
measured in the same process.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from gan_jax import cli, parallel
from gan_jax.data import build_dataset
from gan_jax.errors import ConfigError
from gan_jax.models import DataSpec
from gan_jax.procinfo import peak_rss_mb, release_free_memory, rss_stage
from gan_jax.train.loop import jit_step, setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_TWIN = os.path.join(ROOT, "benchmarks", "torch_dcgan.py")
# Image channels of the TFDS datasets, for timing their experiments where they are not prepared.
_CHANNELS = {"mnist": 1}
# Classes of the datasets the conditional paper baselines use, for shapes read off the config.
_CLASSES = {"cifar10": 10, "mnist": 10, "imagenet2012": 1000, "imagenet_resized": 1000}


def _timed(call, repeats: int, warmup: int = 0) -> list[float]:
  """Wall time of each of `repeats` calls of `call()` (after `warmup` untimed ones), each
  waited for: `call` returns the arrays to block on."""
  for _ in range(warmup):
    jax.block_until_ready(call())
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - t)
  return times


def matmul_peak_gflops(n: int = 2048, repeats: int = 7) -> float:
  """The float32 matmul rate of this machine under XLA (median of `repeats`), GFLOP/s."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  return 2 * n**3 / statistics.median(_timed(lambda: f(a), repeats, warmup=1)) / 1e9


def data_spec(config: ConfigDict) -> tuple[DataSpec, bool]:
  """The data's shape; (spec, True) when read off the config because the data is not prepared."""
  try:
    return build_dataset(config.data).spec, False
  except ConfigError:
    c = config.data
    classes = 0
    if config.model.conditional:
      classes = _CLASSES.get(c.name) or _CLASSES.get(c.tfds_name.split("/")[0], 0)
    return DataSpec("image", (c.resolution, c.resolution, c.channels or _CHANNELS.get(c.name, 3)), classes), True


def abstract_batch(gan, spec: DataSpec, sharding=None, example: dict | None = None, phase: int | None = None,
                   batch_size: int | None = None) -> dict:
  """ShapeDtypeStructs of one train-step batch of `phase` (default: the first step's) as the trainer
  lays it out: x [*batch_layout, data_batch, ...] (and labels), or with `example` (one transformed
  example of the dataset) its keys and dtypes, e.g. CycleGAN's "a" and "b". `batch_size` replaces
  the data batch (FLOPs at another batch)."""
  phase = gan.phase_at(0) if phase is None else phase
  shape = (*gan.batch_layout(phase), batch_size or gan.data_batch)
  if example is not None:
    return {k: jax.ShapeDtypeStruct((*shape, *np.shape(v)), np.asarray(v).dtype, sharding=sharding)
            for k, v in example.items()}
  batch = {"x": jax.ShapeDtypeStruct((*shape, *spec.shape), jnp.float32, sharding=sharding)}
  if gan.num_classes:
    batch["label"] = jax.ShapeDtypeStruct(shape, jnp.int32, sharding=sharding)
  return batch


def cost_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def _memory_mb(compiled) -> float:
  parts = xla_memory_mb(compiled)
  return sum(parts.values()) if parts else float("nan")


def xla_memory_mb(compiled) -> dict:
  """XLA's memory analysis of a compiled program, MB: its arguments, outputs and temporaries
  ({} where the backend gives none). Donated arguments alias outputs, so the sum overcounts."""
  m = compiled.memory_analysis()
  if m is None:
    return {}
  return {"arguments": m.argument_size_in_bytes / 2**20, "outputs": m.output_size_in_bytes / 2**20,
          "temporaries": m.temp_size_in_bytes / 2**20}


def _synthetic_batch(gan, mesh, config: ConfigDict, spec: DataSpec) -> dict:
  """A fixed batch of the step's shape (uniform pixels; labels cycling over the classes)."""
  lead = gan.batch_layout(gan.phase_at(0))
  shape = (*lead, gan.data_batch)
  x = jax.random.uniform(jax.random.PRNGKey(1), (*shape, *spec.shape), jnp.float32, -1.0, 1.0)
  sharding = parallel.batch_sharding(mesh, batch_axis=len(lead))
  batch = {"x": jax.device_put(x, sharding)}
  if gan.num_classes:
    batch["label"] = jax.device_put(np.arange(np.prod(shape)).reshape(shape) % gan.num_classes, sharding)
  return batch


def time_train_step(config: ConfigDict, spec: DataSpec, steps: int = 10, warmup: int = 3,
                    profile_dir: str | None = None) -> dict:
  """Compiles the train step of `config` and times it on a fixed synthetic batch; with
  `profile_dir`, the timed steps are also traced by the JAX profiler (TensorBoard / Perfetto)."""
  stages = {}
  rss_stage(stages, "start")   # the interpreter with jax, XLA's runtime and this package imported
  gan, mesh, init, init_key, step_key, _ = setup(config, spec)
  state = init(init_key)
  batch = _synthetic_batch(gan, mesh, config, spec)
  rss_stage(stages, "state")
  t0 = time.perf_counter()
  compiled = jit_step(gan, mesh, config.population, population_impl=config.population_impl).lower(
      state, batch, step_key).compile()
  compile_s = time.perf_counter() - t0
  release_free_memory()   # as the trainer does after compiling its step
  rss_stage(stages, "compiled")
  t0 = time.perf_counter()
  state, metrics = compiled(state, batch, step_key)
  jax.block_until_ready(metrics)
  first_step_s = compile_s + time.perf_counter() - t0

  def one_step():   # the state is donated: every call continues from the last
    nonlocal state, metrics
    state, metrics = compiled(state, batch, step_key)
    return metrics

  _timed(one_step, 0, warmup)
  with jax.profiler.trace(profile_dir) if profile_dir else contextlib.nullcontext():
    times = _timed(one_step, steps)
  rss_stage(stages, "steps")
  losses = {k: float(np.mean(np.asarray(metrics[k]))) for k in ("d_loss", "g_loss") if k in metrics}
  median = statistics.median(times)
  images = config.batch_size * config.population   # real images consumed per D+G iteration
  return {"framework": "jax", "jax_version": jax.__version__, "devices": jax.device_count(),
          "step_times_s": times, "median_step_s": median, "min_step_s": min(times), "max_step_s": max(times),
          "images_per_s": images / median, "compile_s": compile_s, "first_step_s": first_step_s,
          "flops_per_step": cost_flops(compiled), "compiled_memory_mb": _memory_mb(compiled),
          "xla_memory_mb": xla_memory_mb(compiled),
          "peak_rss_mb": peak_rss_mb(), "rss_stages": stages, **losses}


def component_times(config: ConfigDict, spec: DataSpec, steps: int = 5, warmup: int = 2) -> dict:
  """Median time of each network pass the train step is made of, each compiled on its own:
  the D step runs G forward + D forward/backward on real and on fake data; the G step runs
  G forward/backward and D forward/backward to its input (no D weight gradient)."""
  gan, _, init, init_key, _, _ = setup(config, spec)
  state = init(init_key)
  b = config.batch_size
  z = gan.latents(jax.random.PRNGKey(0), b)
  x = jax.random.uniform(jax.random.PRNGKey(1), (b, *spec.shape), jnp.float32, -1.0, 1.0)
  g_fwd = lambda p, z: gan.generate(p, state.g_vars, z)[0]  # noqa: E731
  d_fwd = lambda p, x: jnp.sum(gan.discriminate(p, state.d_vars, x)[0])  # noqa: E731
  fake = -x[::-1]
  two_calls, one_call = d_pair_grads(gan, state.d_vars)
  passes = {
      "G forward": (g_fwd, state.g_params, z),
      "G forward + backward": (jax.grad(lambda p, z: jnp.sum(g_fwd(p, z) ** 2)), state.g_params, z),
      "D forward": (d_fwd, state.d_params, x),
      "D forward + backward (weights)": (jax.grad(d_fwd), state.d_params, x),
      "D forward + backward (input)": (jax.grad(d_fwd, argnums=1), state.d_params, x),
      D_PAIR_TWO: (two_calls, state.d_params, x, fake),
      D_PAIR_ONE: (one_call, state.d_params, x, fake),
  }
  out = {}
  for name, (fn, *args) in passes.items():
    out[name] = statistics.median(_timed(functools.partial(jax.jit(fn), *args), steps, warmup + 1))
  return out


D_PAIR_TWO = "D on real and fake, two calls + backward (weights)"
D_PAIR_ONE = "D on real and fake, one vmap-ed call + backward (weights)"


def d_pair_grads(gan, d_vars: dict):
  """D's weight gradient of a loss over its real and its fake pass, two ways: the D step's two calls
  (the fake pass reads the state the real pass left), and one call vmap-ed over [real; fake] (one
  batched program; BatchNorm still normalizes each half with its own statistics). The same gradient
  for a D without state or with BatchNorm only (DCGAN's): with spectral normalization the two-call
  form's fake pass reads the vectors the real pass updated, and the forms differ. The breakdown times
  both (the one-call form is not used by the step: it measured slower). The loss is the run's D loss."""
  loss = gan.loss.d

  def two_calls(p, real, fake):
    def total(p):
      real_logits, after = gan.discriminate(p, d_vars, real)
      return loss(real_logits, gan.discriminate(p, after, fake)[0])
    return jax.grad(total)(p)

  def one_call(p, real, fake):
    def total(p):
      logits = jax.vmap(lambda x: gan.discriminate(p, d_vars, x)[0])(jnp.stack([real, fake]))
      return loss(logits[0], logits[1])
    return jax.grad(total)(p)

  return two_calls, one_call


def run_torch_twin(*, resolution: int, batch: int, width: int, kernel_size: int, z_dim: int, channels: int,
                   steps: int, warmup: int, channels_last: bool = False, loop: str = "twin") -> dict:
  """Runs benchmarks/torch_dcgan.py in a subprocess (torch is no dependency of the package); `loop`:
  "twin" (our default step's algorithm) or "canonical" (pytorch/examples' DCGAN loop)."""
  command = [sys.executable, TORCH_TWIN, "--loop", loop, "--resolution", str(resolution), "--batch", str(batch),
             "--width", str(width), "--kernel-size", str(kernel_size), "--z-dim", str(z_dim),
             "--channels", str(channels), "--steps", str(steps), "--warmup", str(warmup)]
  if channels_last:
    command.append("--channels-last")
  if importlib.util.find_spec("torch") is None:   # checked without importing torch here
    raise ConfigError("--compare-torch needs PyTorch in this environment: pip install -r "
                      "benchmarks/requirements.txt (the CPU build; used by benchmarks/ only)")
  out = subprocess.run(command, capture_output=True, text=True)
  if out.returncode != 0:
    raise RuntimeError(f"benchmarks/torch_dcgan.py failed:\n{out.stderr[-2000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


TORCH_INCEPTION = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                               "torch_inception.py")


def fid_throughput(batch: int, size: int, steps: int, warmup: int, repeats: int, compare_torch: bool) -> dict:
  """Images/s of the FID Inception forward (resize of size x size inputs to 299, pool3 and
  logits) in JAX on every local device, and with `compare_torch` of pytorch-fid's own module
  (benchmarks/torch_inception.py, a subprocess, as many threads as cores); the two alternate
  `repeats` times so that load changes hit both. Random weights at full width: the same
  FLOPs as the real file."""
  from gan_jax.metrics import features, inception
  if compare_torch and importlib.util.find_spec("torch") is None:
    raise ConfigError("--compare-torch needs PyTorch in this environment: pip install -r "
                      "benchmarks/requirements.txt (the CPU build; used by benchmarks/ only)")
  network = features.Network("inception", inception.InceptionV3(), features.random_inception_variables(1.0),
                             functools.partial(inception.preprocess, size=inception.IMAGE_SIZE, resize="bilinear",
                                               quantize_input=True), ("pool3", "logits_unbiased"), {})
  rows = {"jax": [], "torch": []}
  for _ in range(repeats):
    rows["jax"].append(features.images_per_second(network, (size, size, 3), batch, steps, warmup))
    if compare_torch:
      command = [sys.executable, TORCH_INCEPTION, "--batch", str(batch), "--size", str(size), "--steps", str(steps),
                 "--warmup", str(max(1, warmup)), "--threads", str(os.cpu_count())]
      out = subprocess.run(command, capture_output=True, text=True)
      if out.returncode != 0:
        raise RuntimeError(f"benchmarks/torch_inception.py failed:\n{out.stderr[-2000:]}")
      rows["torch"].append(json.loads(out.stdout.strip().splitlines()[-1]))
  result = {"batch": batch, "input": [size, size, 3], "steps": steps, "repeats": repeats,
            "jax_images_per_s": [r["images_per_s"] for r in rows["jax"]],
            "jax_first_call_s": rows["jax"][0]["first_call_s"], "devices": rows["jax"][0]["devices"]}
  if compare_torch:
    result["torch_images_per_s"] = [r["images_per_s"] for r in rows["torch"]]
    result["torch_version"] = rows["torch"][0]["torch"]
    result["ratios"] = [j / t for j, t in zip(result["jax_images_per_s"], result["torch_images_per_s"])]
  return result


def experiment_compile_times(names: list[str] | None = None) -> list[dict]:
  """Compile time of each shipped experiment's initializer and train step at `runlocal` size,
  cold (empty persistent cache) and warm (a fresh jit of the same programs reading the cache):
  together the compilation a run pays before its first step."""
  import tempfile
  rows = []
  with tempfile.TemporaryDirectory() as cache:
    parallel.enable_compilation_cache(cache, min_compile_s=0.0)
    for name in names or cli.experiment_names():
      config = cli.load_experiment(os.path.join(cli.EXPERIMENTS_DIR, f"{name}.py") + ":runlocal")
      spec, assumed = data_spec(config)
      # The batch as the pipeline makes it (its keys: CycleGAN's two domains), where the data exists.
      example = None
      if not assumed:
        ds = build_dataset(config.data)
        example = ds.transform(ds.source[0])
      row = {"experiment": name, "model": config.model.name, "shape": list(spec.shape), "batch": config.batch_size,
             "shape_from_config": assumed}
      for phase in ("cold", "warm"):
        gan, mesh, init, init_key, step_key, _ = setup(config, spec)
        state = jax.eval_shape(init, init_key)
        # The first phase's step, the one a run compiles before its first step (ProGAN: the first stage).
        sharding = parallel.batch_sharding(mesh, batch_axis=len(gan.batch_layout(gan.phase_at(0))))
        batch = abstract_batch(gan, spec, sharding, example)
        t0 = time.perf_counter()
        init.lower(init_key).compile()
        row[f"init_compile_{phase}_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jit_step(gan, mesh, config.population, population_impl=config.population_impl).lower(
            state, batch, step_key).compile()
        row[f"compile_{phase}_s"] = time.perf_counter() - t0
      rows.append(row)
  return rows


def population_times(config: ConfigDict, spec: DataSpec, members: int, steps: int = 5, warmup: int = 2) -> list[dict]:
  """The train step of `config` for one seed and for `members` seeds in one program, vmap-ed and
  unrolled (`population_impl`): each row's median step time, spread and compile time, on the same
  synthetic batch. The per-seed cost of a population against separate runs, and which form is faster here."""
  rows = []
  for n, impl in ((1, "vmap"), (members, "vmap"), (members, "unroll")):
    c = config.copy_and_resolve_references()
    c.population, c.population_impl = n, impl
    r = time_train_step(c, spec, steps, warmup)
    rows.append({"members": n, "population_impl": impl if n > 1 else "-", "median_step_s": r["median_step_s"],
                 "min_step_s": r["min_step_s"], "max_step_s": r["max_step_s"], "compile_s": r["compile_s"],
                 "per_member_s": r["median_step_s"] / n})
  return rows


def penalty_ratio(config: ConfigDict, spec: DataSpec, steps: int = 10, warmup: int = 2) -> dict:
  """Time of one discriminator update with the config's gradient penalties (e.g. R3GAN's R1 + R2
  every step) against the same update with every penalty off: both compiled, then called in
  alternation so that load changes hit both alike; medians. Also XLA's FLOP count of each: the
  ratio an implementation running both at the same FLOP rate would reach."""
  import dataclasses

  gan, mesh, init, init_key, step_key, _ = setup(config, spec)
  if not getattr(gan, "reg", None) or not gan.reg.has_gradient_penalty:
    raise ConfigError("the config has no gradient penalty to time (reg.r1, reg.r2, reg.wgan_gp, reg.dragan)")
  plain = dataclasses.replace(gan, reg=dataclasses.replace(gan.reg, r1=0.0, r2=0.0, wgan_gp=0.0, dragan=0.0))
  state = init(init_key)
  batch = _synthetic_batch(gan, mesh, config, spec)
  real = batch["x"][0]
  labels = batch["label"][0] if "label" in batch else None
  fns, compile_s = {}, {}
  for name, g in (("with", gan), ("without", plain)):
    f = jax.jit(lambda s, x, y, k, g=g: g.d_update(s, x, k, real_labels=y))
    t0 = time.perf_counter()
    fns[name] = f.lower(state, real, labels, step_key).compile()
    compile_s[name] = time.perf_counter() - t0
  call = {name: functools.partial(f, state, real, labels, step_key) for name, f in fns.items()}
  for _ in range(warmup):
    for c in call.values():
      jax.block_until_ready(c())
  times = {name: [] for name in call}
  for _ in range(steps):
    for name, c in call.items():
      times[name] += _timed(c, 1)
  med = {name: statistics.median(t) for name, t in times.items()}
  flops = {name: cost_flops(f) for name, f in fns.items()}
  return {"d_step_with_s": med["with"], "d_step_without_s": med["without"], "ratio": med["with"] / med["without"],
          "flops_with": flops["with"], "flops_without": flops["without"],
          "flops_ratio": flops["with"] / flops["without"],
          "times_with_s": times["with"], "times_without_s": times["without"], "compile_s": compile_s,
          "penalties": {k: getattr(gan.reg, k) for k in ("r1", "r2", "wgan_gp", "dragan")}}
