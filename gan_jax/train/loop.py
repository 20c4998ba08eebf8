"""The training loop: the only place with side effects (files, checkpoints, logs, signals).

Reads top to bottom: validation -> mesh -> data -> models and optimizers -> state and
shardings -> checkpoint restore -> compiled step -> loop (log, evaluate, sample, checkpoint).
"""
from __future__ import annotations

import fnmatch
import functools
import json
import os
import signal
import sys
import threading
import time
from typing import Callable

import jax
import numpy as np
from ml_collections import ConfigDict

from gan_jax import config as config_lib
from gan_jax import logging as logs
from gan_jax import parallel
from gan_jax.checkpoint import Checkpointer, move_aside
from gan_jax.data import Dataset, build_dataset
from gan_jax.data.pipeline import train_dataset
from gan_jax.errors import CheckpointDamaged, ConfigError, TrainingDiverged  # noqa: F401  (TrainingDiverged: re-exported)
from gan_jax.metrics.evaluation import BestTracker, Evaluator, check_best
from gan_jax.metrics.features import round_batch
from gan_jax.metrics.fid import parse_metrics
from gan_jax.models import DataSpec
from gan_jax.procinfo import release_free_memory
from gan_jax.train.kinds import Trainer, build_trainer
from gan_jax.train.machinery import gathered
from gan_jax.workdir import WorkdirLock, interrupted_writes


class _StopFlag:
  """SIGTERM or a first Ctrl-C (SIGINT) during training -> save a checkpoint at the next step
  boundary and exit 0; a second Ctrl-C -> stop at once without saving (KeyboardInterrupt: one line,
  exit 130). A Ctrl-C during set-up or compilation (before `training()`) stops the process at once
  with one line, exit 130: nothing has been written yet but the lock, which the kernel releases.
  The immediate stop reads the signal from a wakeup pipe in a thread, so it also interrupts a long
  XLA compilation (the Python handler itself runs only between bytecodes).

  With several processes JAX's preemption sync point makes every process stop at the same step: a
  Ctrl-C is turned into a SIGTERM to this process, which JAX's notifier sees."""

  def __init__(self):
    self.requested = False
    self.interrupts = 0
    self.in_setup = True
    self._multi = jax.process_count() > 1
    self._previous = {}
    if threading.current_thread() is not threading.main_thread():
      return
    if not self._multi:
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
    self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._interrupt)
    self._watch_setup()

  def close(self) -> None:
    """The signal handlers as they were before the run (for in-process callers)."""
    self.in_setup = False
    if threading.current_thread() is threading.main_thread():
      signal.set_wakeup_fd(-1)
      for sig, handler in self._previous.items():
        signal.signal(sig, handler)

  def _watch_setup(self) -> None:
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
      signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:   # not the main thread of the main interpreter
      return

    def watch():
      while self.in_setup:
        try:
          received = os.read(read, 64)
        except OSError:
          return
        if self.in_setup and signal.SIGINT in received:
          self._abort_setup()

    threading.Thread(target=watch, name="gan_jax-sigint", daemon=True).start()

  @staticmethod
  def _abort_setup() -> None:
    print("\nerror: interrupted (Ctrl-C) during set-up or compilation; this run trained and saved nothing",
          file=sys.stderr, flush=True)
    os._exit(130)

  def training(self) -> None:
    """Set-up and the first compilation are over: from now on Ctrl-C is a stop request."""
    self.in_setup = False
    if threading.current_thread() is threading.main_thread():
      signal.set_wakeup_fd(-1)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def _interrupt(self, signum, frame):
    del signum, frame
    if self.in_setup:
      self._abort_setup()
    self.interrupts += 1
    if self.interrupts > 1:
      raise KeyboardInterrupt
    print("\ngan_jax: stop requested (Ctrl-C): saving at the end of this step; Ctrl-C again to stop without saving",
          file=sys.stderr, flush=True)
    if self._multi:
      os.kill(os.getpid(), signal.SIGTERM)
    else:
      self.requested = True

  def __call__(self, step: int) -> bool:
    if self._multi:
      from jax.experimental import multihost_utils
      return multihost_utils.reached_preemption_sync_point(step)
    return self.requested


def members(fn, population: int):
  """vmap over the population axis (leading axis of states and keys) when there is one."""
  return jax.vmap(fn) if population > 1 else fn


def member(tree, i: int, population: int):
  """Member i of a population-stacked pytree (the tree itself for a single run)."""
  return jax.tree.map(lambda x: x[i], tree) if population > 1 else tree


def setup(config: ConfigDict, spec: DataSpec):
  """The GAN, mesh, jitted initializer and the run's keys (init, step, samples).

  With `population` N > 1, member i is the run with seed `seed + i`: its keys are derived
  exactly as a single run's, stacked along a leading axis."""
  gan = build_trainer(config, spec)
  mesh = parallel.make_mesh()
  rep = parallel.replicated(mesh)
  n = config.population
  seeds = [config.seed + i for i in range(n)]
  raw = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds]) if n > 1 else np.asarray(
      jax.random.PRNGKey(config.seed))
  base_key = parallel.replicate(raw, mesh)
  split = members(lambda k: tuple(jax.random.split(k, 3)), n)
  init_key, step_key, sample_key = jax.jit(split, out_shardings=rep)(base_key)
  init_fn = members(functools.partial(gan.init, data_shape=spec.shape), n)
  init = jax.jit(init_fn, out_shardings=state_shardings(config, mesh, jax.eval_shape(init_fn, init_key)))
  return gan, mesh, init, init_key, step_key, sample_key


def state_shardings(config: ConfigDict, mesh, abstract):
  """The train state's shardings by `sharding.*` (replicated by default; FSDP and rules split
  leaves over 'data'); a population's member axis is never split."""
  s = config.sharding
  try:
    return parallel.state_shardings(abstract, mesh, s.fsdp, s.min_size_mb, s.rules,
                                    leading=1 if config.population > 1 else 0)
  except ValueError as e:
    raise ConfigError(f"sharding.rules: {e}") from None


def over_members(step, impl: str):
  """A population's step `(states, batch, keys) -> (states, metrics)` from one member's: one program for
  all members, the batch shared, states and keys stacked along a leading axis. "vmap" batches the
  members' computations into one; "unroll" traces the member step once per member and stacks the
  results (each member computes its single run's computation, equal to it up to float rounding;
  XLA:CPU runs the independent members side by side, where it runs vmap-ed convolutions as slow
  grouped ones)."""
  if impl == "vmap":
    return jax.vmap(step, in_axes=(0, None, 0))

  def unrolled(states, batch, keys):
    outs = [step(jax.tree.map(lambda x, i=i: x[i], states), batch, keys[i]) for i in range(keys.shape[0])]
    return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *outs)
  return unrolled


def jit_step(gan: Trainer, mesh, population: int, state_sharding=None, phase: int | None = None,
             population_impl: str = "vmap"):
  """The jitted train step `(state, batch, key) -> (state, metrics)` of `phase` (default: the first
  step's): the state in `state_sharding` (a tree of shardings like the state; default replicated),
  keys replicated, the batch split over the mesh's data axis, the old state's buffers donated; with
  `population` > 1 the members' steps in one program (`over_members`)."""
  rep = parallel.replicated(mesh)
  state_sharding = rep if state_sharding is None else state_sharding
  phase = gan.phase_at(0) if phase is None else phase
  step = gan.step_for(phase)
  if any(sh.spec != parallel.P() for sh in jax.tree.leaves(state_sharding)):
    step = gathered(step, rep)
  if population > 1:
    step = over_members(step, population_impl)
  batch_sh = parallel.batch_sharding(mesh, batch_axis=len(gan.batch_layout(phase)))
  return jax.jit(step, in_shardings=(state_sharding, batch_sh, rep), out_shardings=(state_sharding, rep),
                 donate_argnums=(0,))


def write_data_spec(ds: Dataset, path: str) -> None:
  """What sample.py needs to rebuild the models without opening the dataset."""
  spec = {"kind": ds.spec.kind, "shape": list(ds.spec.shape), "num_classes": ds.spec.num_classes}
  if ds.modes is not None:
    spec.update(modes=ds.modes.tolist(), mode_std=ds.mode_std)
  with open(path, "w") as f:
    json.dump(spec, f)


def read_data_spec(path: str) -> tuple[DataSpec, np.ndarray | None]:
  with open(path) as f:
    d = json.load(f)
  modes = np.asarray(d["modes"]) if "modes" in d else None
  return DataSpec(d["kind"], tuple(d["shape"]), d["num_classes"]), modes


def train(config: ConfigDict, workdir: str) -> None:
  """Trains (or resumes) the run in `workdir`; returns when done or after a stop request's save
  (SIGTERM, Ctrl-C)."""
  stop = _StopFlag()   # first, so a signal during set-up or compilation is not lost
  try:
    _train(config, workdir, stop)
  finally:
    stop.close()


def _train(config: ConfigDict, workdir: str, stop: _StopFlag) -> None:
  #### Validation and building: nothing is written before this succeeds.
  config_lib.validate(config)
  ds = build_dataset(config.data)
  gan, mesh, init, init_key, step_key, sample_key = setup(config, ds.spec)
  gan.check_devices(mesh.size, jax.process_count())
  is_main = jax.process_index() == 0
  evaluator, best_mode = build_evaluator(config, ds, mesh, gan.num_classes)

  #### Input: this process's slice of every global batch. A phase's batch is [*batch_layout,
  # data_batch, ...] pipeline batches (one phase but for ProGAN, whose batch grows by resolution).
  data_iter = iter(train_dataset(ds, gan.data_batch, config.data.seed, jax.process_index(),
                                 jax.process_count(), config.data.num_threads))

  def next_batch(phase: int):
    lead = gan.batch_layout(phase)
    local = [next(data_iter) for _ in range(int(np.prod(lead)))]
    sharding = parallel.batch_sharding(mesh, batch_axis=len(lead))
    return {k: jax.make_array_from_process_local_data(
        sharding, np.stack([b[k] for b in local]).reshape(*lead, *local[0][k].shape),
        (*lead, gan.data_batch, *local[0][k].shape[1:])) for k in local[0]}

  #### One live run per workdir (process 0 holds DIR/lock; a dead holder releases it). A ConfigError
  # (exit 2) from here on leaves the workdir as it was (`WorkdirLock.undo`).
  lock = WorkdirLock(workdir)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  had_checkpoints = os.path.isdir(ckpt_dir)
  if is_main:
    lock.acquire()
  try:
    finished_before = _run(config, workdir, stop, ds, gan, mesh, init, init_key, step_key, sample_key, is_main,
                           evaluator, best_mode, data_iter, next_batch, ckpt_dir)
    if finished_before and is_main:
      lock.undo()   # a rerun of a finished run changes nothing, its lock file included
  except ConfigError:
    if is_main:
      if not had_checkpoints and os.path.isdir(ckpt_dir) and not os.listdir(ckpt_dir):
        os.rmdir(ckpt_dir)
      lock.undo()
    raise
  finally:
    lock.release()


def _run(config, workdir, stop, ds, gan, mesh, init, init_key, step_key, sample_key, is_main, evaluator, best_mode,
         data_iter, next_batch, ckpt_dir) -> bool:
  """The run once its workdir is locked: state, workdir files, the loop (see `train`). True when the
  run had already reached total_steps: then nothing is written."""
  #### State: restored from the newest checkpoint, or initialized in its shardings (sharding.*). A
  # resumed run never compiles or runs the initializer (on a large model its compile is a step's).
  shapes = jax.eval_shape(init, init_key)
  abstract = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), shapes,
                          state_shardings(config, mesh, shapes))
  best_ckpt = progress = None
  tracing = False
  if is_main:
    for path in interrupted_writes(ckpt_dir):
      print(f"gan_jax: warning: ignoring {path}, a checkpoint write that never completed (the run was "
            "stopped during it); it is left in place and never loaded", file=sys.stderr)
  ckpt, latest, restored = restore_newest(ckpt_dir, config.ckpt.keep, abstract,
                                          lambda step, e: incompatible_resume_message(workdir, config, step, e))
  try:
    if latest is not None:
      parallel.meet("init")
      state = restored
    else:   # a fresh run may start from another run's state (StackGAN's Stage II)
      init = init.lower(init_key).compile()
      parallel.meet("init")   # every process compiled: the collectives that follow start together
      state = gan.warm_start(init(init_key), lambda other: load_run(other)[5])
    start = int(np.asarray(state.step).reshape(-1)[0])   # all members share the step count
    if latest is not None and start >= config.total_steps:
      if is_main:
        print(f"gan_jax: {workdir} is finished (step {start}, total_steps {config.total_steps}); nothing to do, "
              f"nothing changed. To train on, rerun with --config.total_steps=N for an N > {start}", file=sys.stderr)
      return True
    if latest is not None and not ckpt.restore_data(latest, data_iter):
      # Saved by another number of processes (or its data item unreadable): every process has read
      # batches_per_step local batches per step of the same global order (data/pipeline.py): the
      # position follows from the step.
      data_iter.set_state({"next_index": gan.data_position(start)})
      own = os.path.join(ckpt_dir, str(latest), "data", f"process_{jax.process_index()}-of-{jax.process_count()}.json")
      if os.path.exists(own):
        print(f"gan_jax: warning: the data position in {own} is unreadable; it follows from the step "
              f"({start}) instead", file=sys.stderr)

    #### Workdir files, written once the run is known to be valid.
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    if is_main:
      with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2, sort_keys=True)
      write_data_spec(ds, os.path.join(workdir, "data_spec.json"))
    #### The compiled step.
    population = config.population
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    step_fns = {}   # phase -> the compiled step
    truncation = config.sample.truncation
    # 2-D data: a scatter of eval.num_samples samples over the modes; images: the kind's grid.
    scatter = gan.sampler(mesh, chunk=config.eval.num_samples) if ds.modes is not None else None
    grid = gan.grid(mesh, ds, config.sample.num, truncation) if scatter is None else None
    # Image evaluations use the grids' chunk size, so normalization statistics match the grids.
    eval_chunk = config.eval.num_samples if ds.spec.kind == "vector" else config.sample.num
    eval_sampler = gan.sampler(mesh, chunk=eval_chunk) if ds.evaluate is not None else None
    # Published-network metrics: chunks and latents as scripts/evaluate.py's defaults (seed 0), so
    # the two give the same numbers for the same checkpoint, N and batch size.
    fid_chunk = round_batch(config.eval.batch_size, mesh)
    fid_sampler = gan.sampler(mesh, chunk=fid_chunk) if evaluator is not None else None
    eval_log = os.path.join(workdir, "eval.jsonl")
    best = None
    if best_mode is not None:
      best = BestTracker(workdir, config.eval.best, best_mode)
      best_ckpt = Checkpointer(os.path.join(workdir, "best"), keep=None, async_save=False)

    #### Logging.
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    writer = None
    if is_main:
      writer = logs.MetricWriter(metrics_path, logs.init_wandb(config, workdir))
      writer.truncate_after(start)
      logs.truncate_jsonl(eval_log, start, keep=lambda row: row.get("source") != "train")
      total_mb, device_mb = state_megabytes(state)
      print(f"gan_jax: {'resuming at step ' + str(start) if start else 'starting'}; "
            f"{mesh.size} devices, {jax.process_count()} processes; state {total_mb:.2f} MB, "
            f"{device_mb:.2f} MB per device; workdir {workdir}", file=sys.stderr)

    def write_samples(step: int) -> None:
      # Population runs show member 0 (the run with `seed`).
      first, key = member(state, 0, population), member(sample_key, 0, population)
      path = os.path.join(workdir, "samples", f"step_{step:08d}.png")
      if scatter is not None:
        pts = scatter(gan.generator_params(first), first.g_vars, key, config.eval.num_samples)
        if is_main:
          logs.save_scatter(pts, ds.modes, path, title=f"{config.data.name}, step {step}")
      else:
        images, ncol = grid(first, key)
        if is_main:
          logs.save_png(logs.image_grid(images, ncol), path)
      if is_main:
        logs.save_loss_curves(metrics_path, os.path.join(workdir, "loss_curves.png"))
        writer.image(step, "samples", path)

    def evaluate(step: int) -> dict:
      stats = [{} for _ in range(population)]
      for i in range(population):
        params, g_vars = member(gan.generator_params(state), i, population), member(state.g_vars, i, population)
        if eval_sampler is not None:
          key = jax.random.fold_in(member(sample_key, i, population), step)
          n = config.eval.num_samples
          # Conditional samples are drawn for the classes in turn; those labels go to the dataset's metrics.
          labels = np.arange(n) % gan.num_classes if gan.num_classes else None
          samples = eval_sampler(params, g_vars, key, n, labels)
          given = {"labels": labels} if labels is not None and ds.conditional_eval_metrics else {}
          stats[i].update(ds.evaluate(samples, **given))
        if evaluator is not None:
          t0 = time.perf_counter()
          out = evaluator(lambda k, n, y, p=params, v=g_vars: fid_sampler(p, v, k, n, y), jax.random.PRNGKey(0),
                          config.eval.num, fid_chunk, gan.num_classes, desc=f"evaluate step {step}")
          record = out.pop("record")
          stats[i].update(out)
          row = {"step": step, **out, **record, "seed": 0, "truncation": 1.0,
                 "ema": getattr(state, "ema_params", None) is not None,
                 "source": "train", "time_s": round(time.perf_counter() - t0, 2)}
          if population > 1:
            row["member"] = i
          if is_main:
            with open(eval_log, "a") as f:
              f.write(json.dumps(row) + "\n")
      if population == 1:
        return stats[0]
      # Per-member lists; a key missing for a member (reverse_kl with no good sample) is NaN there.
      return {k: [st.get(k, float("nan")) for st in stats] for k in stats[0] | stats[-1]}

    def keep_if_best(step: int, values: dict) -> None:
      if best is not None and best.improves(values[best.metric]):
        best_ckpt.save_only(step, state)
        best.update(step, values[best.metric])

    #### Loop.
    if is_main:
      from tqdm import tqdm
      progress = tqdm(total=config.total_steps, initial=start, unit="step", dynamic_ncols=True,
                      mininterval=1.0, file=sys.stderr)
    acc, n_acc, interval_start, interval_steps, compile_s = None, 0, None, 0, None
    first_row = True   # the first metrics.jsonl row of this invocation carries compile_s
    if latest is not None:   # the logging interval that was open at the checkpoint continues
      acc, n_acc = open_interval(ckpt.restore_log(latest), mesh)
    interval_images = 0
    overhead = 0.0   # seconds of evaluation, sampling and checkpointing, kept out of steps_per_sec
    saved_at = latest
    step = start
    # Profiler trace of steps [a, b) on process 0 (TensorBoard's profile plugin or Perfetto read it).
    profile = config_lib.parse_profile_steps(config.profile_steps, start) if is_main else None
    profile_dir = os.path.join(workdir, "profile")
    evaluates = eval_sampler is not None or evaluator is not None
    # The step compiled ahead of the first batch it runs on, then every process meets: compiles
    # drift apart between hosts by more than the CPU collectives' 30 s set-up wait.
    pending, aot_s = None, 0.0

    def compiled_step(phase: int, batch):
      if phase not in step_fns:
        step_fns[phase] = jit_step(gan, mesh, population, state_sh, phase, config.population_impl).lower(
            state, batch, step_key).compile()
        # The compilers' freed heap back to the system: without it the run's resident memory stays at
        # the compile's level (DCGAN 64x64: peak RSS 1410 -> 1009-1015 MB, docs/benchmarks.md).
        release_free_memory()
        parallel.meet(f"step{phase}")
      return step_fns[phase]

    if start < config.total_steps:
      pending = next_batch(gan.phase_at(start))
      t0 = time.perf_counter()
      compiled_step(gan.phase_at(start), pending)
      aot_s = time.perf_counter() - t0
    stop.training()
    if start == 0 and config.eval.every and evaluates:
      # The untrained generator's metrics: the baseline every later evaluation is compared with.
      initial = evaluate(0)
      release_free_memory()   # the evaluation programs' compile, as above
      keep_if_best(0, initial)
      if writer is not None:
        writer.write(0, initial)
    for step in range(start + 1, config.total_steps + 1):
      phase = gan.phase_at(step - 1)
      batch, pending = (next_batch(phase) if pending is None else pending), None
      step_fn = compiled_step(phase, batch)   # a new phase compiles here (ProGAN's next resolution)
      if profile and step == profile[0]:
        jax.profiler.start_trace(profile_dir)
        tracing = True
      t0 = time.perf_counter()
      state, metrics = step_fn(state, batch, step_key)
      if tracing and (step == profile[1] - 1 or step == config.total_steps):
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        tracing = False
        print(f"gan_jax: profiled steps {profile[0]}-{step} into {profile_dir} (tensorboard --logdir "
              f"{profile_dir}, or ui.perfetto.dev)", file=sys.stderr)
      acc = metrics if acc is None else jax.tree.map(lambda a, m: a + m, acc, metrics)
      n_acc += 1
      if compile_s is None:
        jax.block_until_ready(metrics)
        compile_s = aot_s + time.perf_counter() - t0   # compiling and the first step
        interval_start, interval_steps = time.perf_counter(), 0
      else:
        interval_steps += 1
        interval_images += gan.images_per_step(phase)
      if progress is not None:
        progress.update(1)

      t_eval = time.perf_counter()
      eval_now = config.eval.every and (step % config.eval.every == 0 or step == config.total_steps)
      eval_metrics = evaluate(step) if eval_now and evaluates else {}
      if eval_metrics:
        keep_if_best(step, eval_metrics)
      overhead += time.perf_counter() - t_eval
      if step % config.log_every == 0 or step == config.total_steps:
        means = interval_means(jax.device_get(acc), n_acc, jax.device_get(metrics))
        check_finite(means, step, n_acc, saved_at)
        elapsed = time.perf_counter() - interval_start - overhead
        if interval_steps and elapsed > 0:
          means["steps_per_sec"] = interval_steps / elapsed
          means["images_per_sec"] = interval_images / elapsed
        if compile_s is not None and first_row:
          means["compile_s"] = compile_s
          first_row = False
        if getattr(ds.source, "skipped", None):   # image files that could not be decoded (this process)
          means["data_skipped"] = len(ds.source.skipped)
        means.update(eval_metrics)
        if writer is not None:
          writer.write(step, means)
          progress.set_postfix({"d_loss": f"{np.mean(means['d_loss']):.3f}",
                                "g_loss": f"{np.mean(means['g_loss']):.3f}",
                                "img/s": f"{means.get('images_per_sec', 0):.0f}"}, refresh=False)
        acc, n_acc, interval_start, interval_steps, overhead = None, 0, time.perf_counter(), 0, 0.0
        interval_images = 0
      elif eval_metrics and writer is not None:
        writer.write(step, eval_metrics)

      t_side = time.perf_counter()
      if config.sample_every and (step % config.sample_every == 0 or step == config.total_steps):
        write_samples(step)
      stopping = stop(step)
      if step % config.ckpt_every == 0 or step == config.total_steps or stopping:
        if acc is not None:   # never save a state that a NaN or Inf reached: the last good one stays
          check_finite(jax.device_get(acc), step, n_acc, saved_at)
        ckpt.save(step, state, data_iter, log=interval_record(acc, n_acc))
        saved_at = step
      overhead += time.perf_counter() - t_side
      if stopping:
        if is_main:
          print(f"gan_jax: stop requested; saved step {step}, rerun the same command to resume",
                file=sys.stderr)
        break

    if is_main:
      logs.save_loss_curves(metrics_path, os.path.join(workdir, "loss_curves.png"))
      record_progress(workdir, start, step, config.total_steps)
    if writer is not None:
      writer.close()
    if progress is not None:   # closed first: the last line says where the outputs are
      progress.close()
      progress = None
    if is_main and step == config.total_steps:
      grid = os.path.join(workdir, "samples", f"step_{step:08d}.png")
      shown = f"samples {grid}, " if os.path.exists(grid) else ""
      print(f"gan_jax: done, step {step}: {shown}curves {os.path.join(workdir, 'loss_curves.png')}, metrics "
            f"{metrics_path}, checkpoint {os.path.join(ckpt_dir, str(step))}", file=sys.stderr)
    return False
  finally:
    if tracing:
      jax.profiler.stop_trace()
    if progress is not None:   # before any error message, so the bar does not overwrite it
      progress.close()
    ckpt.close()
    if best_ckpt is not None:
      best_ckpt.close()


def record_progress(workdir: str, start: int, step: int, total_steps: int) -> None:
  """DIR/run.json: the step the run has reached and the steps each invocation trained ([start, end],
  a continuation being one more), so a run's outputs say what was trained whatever config.json's
  total_steps (scripts/compare.py reads it)."""
  path = os.path.join(workdir, "run.json")
  record = {"step": step, "total_steps": total_steps, "segments": []}
  if os.path.exists(path):
    try:
      with open(path) as f:
        record["segments"] = [seg for seg in json.load(f)["segments"] if seg[1] <= start]
    except (OSError, ValueError, KeyError, TypeError):
      pass
  if step > start:
    record["segments"].append([start, step])
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f)
  os.replace(tmp, path)


def state_megabytes(state) -> tuple[float, float]:
  """The train state's size in MB: whole, and what one device holds (its shards: the whole
  state when replicated, about 1/n of its large leaves under FSDP over n devices)."""
  leaves = [x for x in jax.tree.leaves(state) if isinstance(x, jax.Array)]
  total = sum(x.nbytes for x in leaves)
  device = jax.local_devices()[0]
  held = sum(sh.data.nbytes for x in leaves for sh in x.addressable_shards if sh.device == device)
  return total / 2**20, held / 2**20


def interval_record(acc: dict | None, n: int) -> dict:
  """The open logging interval as JSON: the summed step metrics (values exact: float32 and int32
  numbers are exact in JSON's doubles) and the number of steps."""
  if acc is None:
    return {"steps": 0, "sums": {}}
  host = jax.device_get(acc)
  return {"steps": n, "sums": {k: {"dtype": str(np.asarray(v).dtype), "value": np.asarray(v).tolist()}
                               for k, v in host.items()}}


def open_interval(record: dict | None, mesh) -> tuple[dict | None, int]:
  """(acc, n) of `interval_record`'s output, replicated over the mesh as the step's metrics are."""
  if not record or not record.get("steps"):
    return None, 0
  acc = {k: parallel.replicate(np.asarray(v["value"], v["dtype"]), mesh) for k, v in record["sums"].items()}
  return acc, int(record["steps"])


def interval_means(sums: dict, n: int, last: dict) -> dict:
  """Means of the summed step metrics over an interval of n steps; with nan_policy="skip", over
  its good steps only (`step_ok`), and the running count of undone steps as it stands now."""
  ok = np.asarray(sums["step_ok"], np.float64) if "step_ok" in sums else n
  means = {k: np.asarray(v, np.float64) / np.maximum(ok, 1) for k, v in sums.items()
           if k not in ("step_ok", "nonfinite_skipped")}
  if "nonfinite_skipped" in last:
    means["nonfinite_skipped"] = np.asarray(last["nonfinite_skipped"])
  return means


def check_finite(sums: dict, step: int, n_steps: int, saved_at: int | None) -> None:
  """Stops the run (TrainingDiverged: exit 1) when a logged quantity of the last `n_steps` steps
  (losses, penalties, gradient norms: a non-finite update shows in the gradient norms) is NaN or
  Inf. Called at logging and before each checkpoint, so no step syncs with the host for it and
  no checkpoint ever holds a diverged state."""
  bad = [k for k, v in sums.items() if not np.all(np.isfinite(np.asarray(v, np.float64)))]
  if bad:
    kept = (f"the last checkpoint (step {saved_at}) is intact" if saved_at is not None else
            "no checkpoint was saved yet (lower the learning rate or set nan_policy=skip, then rerun)")
    raise TrainingDiverged(f"{', '.join(bad)} became NaN or Inf within steps ({step - n_steps}, {step}]; {kept}")


def build_evaluator(config: ConfigDict, ds: Dataset, mesh, num_classes: int = 0):
  """The published-network evaluator of `eval.metrics` (networks and reference loaded, so a
  missing weight or reference file stops the run before anything is written) and the mode of
  `eval.best` (None without it). `num_classes` > 0: a conditional generator, for which the
  dataset's `conditional_eval_metrics` are computed too."""
  e = config.eval
  metrics = parse_metrics(e.metrics) if e.metrics else ()
  if metrics and ds.spec.kind != "image":
    raise ConfigError(f"eval.metrics={e.metrics!r} are image metrics; dataset {config.data.name!r} is "
                      f"{ds.spec.kind} data")
  if metrics and not e.every:
    raise ConfigError("eval.metrics needs eval.every > 0")
  dataset_metrics = ds.eval_metrics + (ds.conditional_eval_metrics if num_classes else ())
  mode = check_best(e.best, metrics, dataset_metrics, config.population, e.every) if e.best else None
  if not metrics:
    return None, mode
  evaluator = Evaluator(metrics, mesh, e.batch_size, e.inception or None, e.vgg16 or None)
  evaluator.set_reference(e.ref or None, config.data, e.num_ref, ds)
  return evaluator, mode


# Keys a resumed run may change (they shape nothing in the state): never named as the cause of a
# checkpoint that does not fit.
SHAPE_FREE = ("total_steps", "log_every", "ckpt_every", "sample_every", "ckpt.*", "sample.*", "eval.*", "wandb.*",
              "profile_steps", "data.num_threads", "data.download", "data.data_dir", "data.path*", "nan_policy",
              "optim.*.lr*", "optim.*.b2_final", "sharding.*")


def incompatible_resume_message(workdir: str, config: ConfigDict, step: int, error: Exception | None) -> str:
  """One line for a checkpoint that does not fit the new config, naming the keys that changed."""
  old_path = os.path.join(workdir, "config.json")
  changed = []
  if os.path.exists(old_path):
    with open(old_path) as f:
      old = config_lib.flatten(json.load(f))
    new = config_lib.flatten(config.to_dict())
    changed = [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k) and not any(fnmatch.fnmatchcase(k, p) for p in SHAPE_FREE)]
  detail = f"changed keys: {', '.join(changed)}" if changed else (type(error).__name__ if error else "other shapes")
  return (f"the checkpoint at step {step} in {workdir} does not fit this config ({detail}); "
          "rerun with the original config or use a new --workdir")


def load_run(workdir: str, step: int | None = None, best: bool = False):
  """Rebuilds a finished or running run from its workdir: (config, spec, modes, gan, mesh, state, step);
  `best`: from the checkpoint kept by `eval.best` (DIR/best) instead of DIR/checkpoints."""
  for name in ("config.json", "data_spec.json"):
    if not os.path.exists(os.path.join(workdir, name)):
      raise ConfigError(f"{os.path.join(workdir, name)} not found; is {workdir!r} a workdir of scripts/train.py?")
  with open(os.path.join(workdir, "config.json")) as f:
    config = config_lib.from_saved(json.load(f))
  spec, modes = read_data_spec(os.path.join(workdir, "data_spec.json"))
  gan, mesh, init, init_key, _, _ = setup(config, spec)
  if best and step is not None:
    raise ConfigError("give a checkpoint step or ask for the best one, not both")
  ckpt_dir = os.path.join(workdir, "best" if best else "checkpoints")
  if best and not os.path.isdir(ckpt_dir):
    raise ConfigError(f"no best checkpoint in {workdir}; train with eval.best=METRIC and eval.every > 0")
  ckpt = Checkpointer(ckpt_dir, keep=1 if best else config.ckpt.keep)
  try:
    steps = ckpt.all_steps()
  finally:
    ckpt.close()
  if not steps:
    raise ConfigError(f"no checkpoint in {ckpt_dir}; train first")
  if step is not None and step not in steps:
    raise ConfigError(f"no checkpoint for step {step}; available: {', '.join(map(str, steps))}")
  shapes = jax.eval_shape(init, init_key)
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes,
                          state_shardings(config, mesh, shapes))
  ckpt, step, state = restore_newest(ckpt_dir, 1 if best else config.ckpt.keep, abstract,
                                     lambda s, e: incompatible_resume_message(workdir, config, s, e), step)
  ckpt.close()
  return config, spec, modes, gan, mesh, state, step


def restore_newest(ckpt_dir: str, keep: int | None, abstract, mismatch: Callable[[int, Exception | None], str],
                   step: int | None = None) -> tuple[Checkpointer, int | None, object]:
  """(checkpointer, step, state) of the newest checkpoint of `ckpt_dir` that reads back whole, or of
  `step`; (checkpointer, None, None) when there is none. Each candidate is verified by its restore,
  which reads every array. A damaged one (unreadable metadata or array data: `Checkpointer.unreadable`)
  is moved to ckpt_dir/damaged/<step> with a warning naming it and what is wrong, and the next older
  one is tried; none intact (or `step` damaged): CheckpointDamaged (exit 1) naming them. A checkpoint
  that reads back whole but not into `abstract` belongs to another config: ConfigError(mismatch(step, e))."""
  moved = []
  while True:
    ckpt = Checkpointer(ckpt_dir, keep=keep)
    steps = ckpt.all_steps()
    if not steps or (step is not None and step not in steps):
      if moved:
        ckpt.close()
        raise CheckpointDamaged(f"no intact checkpoint in {ckpt_dir}: {'; '.join(moved)}; start over with a new "
                                "--workdir (the damaged ones are kept there)")
      return ckpt, None, None
    candidate = steps[-1] if step is None else step
    if not ckpt.fits(candidate, abstract):
      ckpt.close()
      raise ConfigError(mismatch(candidate, None))
    try:
      return ckpt, candidate, ckpt.restore(candidate, abstract)
    except Exception as e:  # noqa: BLE001 - damaged, or another config's: told apart below
      why = ckpt.unreadable(candidate)
      if why is None:
        ckpt.close()
        raise ConfigError(mismatch(candidate, e)) from None
    try:
      ckpt.close()
    except Exception:  # noqa: BLE001 - a failed restore may leave Orbax's async writer complaining
      pass
    if step is not None:
      raise CheckpointDamaged(f"checkpoint step {step} in {ckpt_dir} is damaged ({why}); pick another --step "
                              f"({', '.join(str(s) for s in steps if s != step) or 'none left'})")
    if jax.process_index() == 0:
      where = move_aside(ckpt_dir, candidate)
      print(f"gan_jax: warning: checkpoint step {candidate} is damaged ({why}); moved to {where}, trying the "
            "next older one", file=sys.stderr)
    parallel.meet(f"damaged{candidate}")
    moved.append(f"step {candidate} damaged ({why})")
