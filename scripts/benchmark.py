"""Speed of the compiled train step: images/s, step time, compile time, memory and MFU.

  python scripts/benchmark.py [--model dcgan] [--resolution 64] [--batch 64] [--width 64]
      [--kernel-size 4] [--impl auto|subpixel|xla[,...]] [--r1 G --r2 G] [--loss NAME]
      [--reuse-fake off|on|both] [--steps 10] [--warmup 3] [--compare-torch [--repeats 3]]
      [--json PATH] [--profile DIR] [--dump-hlo DIR]
  python scripts/benchmark.py --experiments [NAME,...]    # compile time of shipped experiments
  python scripts/benchmark.py --population NAME[:ARGS] [--members 5]   # a population's step, vmap / unroll
  python scripts/benchmark.py --compare-official r3gan|stylegan2|biggan --official-repo PATH [--batch 32]

One row per conv implementation (`model.conv_impl`). The defaults are the PyTorch DCGAN
example's setting (64x64, batch 64, ngf = ndf = 64, 4x4 kernels, BCE, Adam 2e-4/0.5); warm-up
steps are excluded and the median of the timed steps is reported with its min-max spread.
`--reuse-fake` times the step without and/or with `train.reuse_fake` (one G forward per step).
`--compare-torch` runs the same network in PyTorch (benchmarks/torch_dcgan.py, in a subprocess,
same thread count) with two loops: the twin of our default step and pytorch/examples' canonical
DCGAN loop (one G forward, as ours with reuse_fake); every row, ours and theirs, runs in a process
of its own (so each peak RSS is its own), `--repeats` times, alternating; the table gives medians
with the spread over the repeats and the ratios of each of ours to both PyTorch loops, measured
in the same repeat. PyTorch is needed only then.
MFU = XLA's cost-analysis FLOPs per step / median step time / this machine's float32 matmul rate
(measured in the same run). `--breakdown` times each network pass of the step on its own,
`--profile DIR` traces the timed steps with the JAX profiler (open DIR in TensorBoard's profile
plugin, or the trace.json.gz in Perfetto), `--dump-hlo DIR` writes XLA's HLO.
`--experiments` compiles every experiment (runlocal size) with an empty persistent
compilation cache, then again from the cache. `--population NAME[:ARGS]` times that experiment's step
for one seed and for `--members` seeds in one program, vmap-ed and unrolled (`population_impl`), on a
synthetic batch. `--compare-official MODEL` times the official
training iteration (benchmarks/official/step_<model>.py's `time_official`, which imports the
checkout at --official-repo; needs torch) and our train step at the same configuration (its
`our_config()`: runlocal width, batch 32 unless --batch, R3GAN with R1 + R2 every step) and prints
both and their ratio. The table goes to stdout, all figures to --json.
"""
import argparse
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_jax import cli  # noqa: E402
from gan_jax.errors import ConfigError  # noqa: E402

# --compare-official MODEL -> benchmarks/official/<module>.py, with `time_official(repo_path, batch, steps)`
# (the official training iteration, timed) and `our_config()` ((experiment, overrides) of the same run).
OFFICIAL_STEPS = {"r3gan": "step_r3gan", "stylegan2": "step_stylegan2", "biggan": "step_biggan"}


class _Parser(argparse.ArgumentParser):
  def error(self, message):   # one line and exit 2, as every script here
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse(argv):
  p = _Parser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default="dcgan")
  p.add_argument("--resolution", type=int, default=64)
  p.add_argument("--batch", type=int, default=None, help="default 64 (32 with --compare-official)")
  p.add_argument("--width", type=int, default=64, help="g_width = d_width")
  p.add_argument("--kernel-size", type=int, default=4)
  p.add_argument("--channels", type=int, default=3)
  p.add_argument("--impl", default="auto", help="model.conv_impl values, comma-separated")
  p.add_argument("--loss", default="nonsaturating")
  p.add_argument("--r1", type=float, default=0.0)
  p.add_argument("--r2", type=float, default=0.0)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--compare-torch", action="store_true")
  p.add_argument("--reuse-fake", choices=("off", "on", "both"), default=None,
                 help="train.reuse_fake of the timed step (default: both with --compare-torch, else off)")
  p.add_argument("--breakdown", action="store_true", help="also time each network pass of the step")
  p.add_argument("--torch-channels-last", action="store_true")
  p.add_argument("--experiments", nargs="?", const="all", default=None)
  p.add_argument("--population", default=None, metavar="EXPERIMENT[:ARGS]",
                 help="time the experiment's step for 1 and --members seeds, vmap-ed and unrolled")
  p.add_argument("--members", type=int, default=5, help="--population: seeds in the population")
  p.add_argument("--penalty-ratio", default=None, metavar="EXPERIMENT",
                 help="time the D update of EXPERIMENT:runlocal with its gradient penalties vs without")
  p.add_argument("--scaling", nargs="?", const="all", default=None, metavar="EXPERIMENTS",
                 help="parameters, FLOPs per image and the modelled pod/node step time of the paper baselines")
  p.add_argument("--fid", action="store_true",
                 help="images/s of the FID Inception (with --compare-torch: against pytorch-fid's)")
  p.add_argument("--size", type=int, default=32, help="--fid: input images are size x size (resized to 299)")
  p.add_argument("--repeats", type=int, default=3,
                 help="--fid, --compare-torch: alternating JAX/PyTorch measurements")
  p.add_argument("--compare-official", default=None, metavar="MODEL",
                 help=f"time the official training step against ours: {', '.join(OFFICIAL_STEPS)}")
  p.add_argument("--official-repo", default=None, metavar="PATH", help="--compare-official: the official checkout")
  p.add_argument("--json", default=None, help="write every figure here")
  p.add_argument("--profile", default=None, help="trace the timed steps into DIR/<impl> (TensorBoard, Perfetto)")
  p.add_argument("--dump-hlo", default=None, help="write XLA's HLO of every compiled program to DIR")
  a = p.parse_args(argv)
  a.batch = a.batch if a.batch is not None else 32 if a.compare_official else 64
  if a.steps < 1 or a.warmup < 0 or a.batch < 1:
    p.error(f"--steps must be >= 1, --warmup >= 0, --batch >= 1; got {a.steps}, {a.warmup}, {a.batch}")
  return a


def check_experiments(flag: str, names: list[str]) -> None:
  """One error line naming the first of `names` that is not a shipped experiment, and the valid ones."""
  valid = cli.experiment_names()
  for n in names:
    if n not in valid:
      raise ConfigError(f"{flag}: unknown experiment {n!r}; valid: {', '.join(valid)}")


def named_experiment(flag: str, spec: str):
  """The config of shipped experiment `spec` ("NAME[:ARGS]"), after checking NAME."""
  name, _, args = spec.partition(":")
  check_experiments(flag, [name])
  return cli.load_experiment(os.path.join(cli.EXPERIMENTS_DIR, f"{name}.py") + (f":{args}" if args else ""))


def config_for(a, impl, reuse_fake: bool = False):
  from gan_jax.config import base_config, validate
  from gan_jax.models import MODELS
  if a.model not in MODELS.names():
    raise ConfigError(f"--model: unknown model {a.model!r}; valid: {', '.join(MODELS.names())}")
  c = base_config(a.model)
  c.batch_size = a.batch
  c.loss.name = a.loss
  c.reg.r1, c.reg.r2 = a.r1, a.r2
  for who in ("g", "d"):
    c.optim[who].update(name="adam", lr=2e-4, b1=0.5, b2=0.999)
  if a.model == "dcgan":
    c.data.name = "folder"   # the shape comes from resolution/channels; no files are read
    c.data.resolution, c.data.channels = a.resolution, a.channels
    c.model.update(g_width=a.width, d_width=a.width, kernel_size=a.kernel_size, conv_impl=impl)
  if reuse_fake:
    if "train" not in c:
      raise ConfigError(f"--reuse-fake: model {a.model!r} trains without train.reuse_fake")
    c.train.reuse_fake = True
  if a.model != "dcgan":
    c.data.name = "ring8"
  validate(c)
  return c


REUSE = {"off": (False,), "on": (True,), "both": (False, True)}


def bench_models(a) -> dict:
  from gan_jax.models.layers import IMPLS
  impls = a.impl.split(",")
  for impl in impls:
    if impl not in IMPLS:
      raise ConfigError(f"--impl: unknown value {impl!r}; valid: {', '.join(IMPLS)}")
  if a.compare_torch:
    return compare_torch(a, impls)
  return bench_jax(a, impls, REUSE[a.reuse_fake or "off"])


def bench_jax(a, impls: list[str], reuses: tuple[bool, ...]) -> dict:
  import jax

  from gan_jax import benchmark
  from gan_jax.models import DataSpec
  from gan_jax.models.layers import resolve_impl
  peak = benchmark.matmul_peak_gflops()
  rows = []
  for impl, reuse in ((i, r) for i in impls for r in reuses):
    c = config_for(a, impl, reuse)
    spec = (DataSpec("image", (a.resolution, a.resolution, a.channels)) if a.model == "dcgan"
            else benchmark.data_spec(c)[0])
    profile = os.path.join(a.profile, impl) if a.profile else None
    r = benchmark.time_train_step(c, spec, a.steps, a.warmup, profile)
    if a.breakdown:
      r["breakdown_s"] = benchmark.component_times(c, spec, a.steps, a.warmup)
    r.update(model=a.model, impl=resolve_impl(impl) if a.model == "dcgan" else "-", reuse_fake=reuse,
             resolution=a.resolution if a.model == "dcgan" else "-",
             batch=a.batch, width=a.width, kernel_size=a.kernel_size, loss=a.loss, r1=a.r1, r2=a.r2,
             mfu=r["flops_per_step"] / r["median_step_s"] / (peak * 1e9))
    rows.append(r)
    print(f"  jax {r['impl']}{' reuse_fake' if reuse else ''}: {r['median_step_s'] * 1e3:.0f} ms/step, "
          f"{r['images_per_s']:.1f} img/s", file=sys.stderr)
  machine = {"cpu": cpu_name(), "cores": os.cpu_count(),
             "backend": jax.default_backend(), "devices": jax.device_count(), "matmul_gflops": peak}
  return {"machine": machine, "jax": rows, "torch": []}


def compare_torch(a, impls: list[str]) -> dict:
  """Ours (each impl x reuse_fake setting) and PyTorch's two loops, each row in a process of its
  own, `a.repeats` rounds alternating; medians, spreads and per-round ratios."""
  import statistics
  import subprocess
  import tempfile

  from gan_jax import benchmark
  if a.model != "dcgan":
    raise ConfigError(f"--compare-torch has a PyTorch twin for --model dcgan only, not {a.model!r}")
  if a.loss != "nonsaturating" or a.r1 or a.r2:
    raise ConfigError("--compare-torch: the PyTorch twin trains the non-saturating loss without penalties")
  if a.repeats < 1:
    raise ConfigError(f"--repeats must be >= 1, got {a.repeats}")
  reuses = REUSE[a.reuse_fake or "both"]
  shape = ["--model", "dcgan", "--resolution", str(a.resolution), "--batch", str(a.batch), "--width", str(a.width),
           "--kernel-size", str(a.kernel_size), "--channels", str(a.channels), "--steps", str(a.steps),
           "--warmup", str(a.warmup)]
  ours, theirs, machine = {}, {}, None
  for rnd in range(a.repeats):
    for impl, reuse in ((i, r) for i in impls for r in reuses):
      with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "row.json")
        out = subprocess.run([sys.executable, os.path.abspath(__file__), *shape, "--impl", impl,
                              "--reuse-fake", "on" if reuse else "off", "--json", path],
                             capture_output=True, text=True)
        if out.returncode != 0:
          raise RuntimeError(f"benchmark of impl={impl} reuse_fake={reuse} failed:\n{out.stderr[-2000:]}")
        with open(path) as f:
          row = json.load(f)
      machine = row["machine"]
      ours.setdefault((impl, reuse), []).append(row["jax"][0])
    for loop in ("twin", "canonical"):
      theirs.setdefault(loop, []).append(benchmark.run_torch_twin(
          resolution=a.resolution, batch=a.batch, width=a.width, kernel_size=a.kernel_size, z_dim=100,
          channels=a.channels, steps=a.steps, warmup=a.warmup, channels_last=a.torch_channels_last, loop=loop))
    print(f"  round {rnd + 1}/{a.repeats} done", file=sys.stderr)

  def summary(runs: list[dict]) -> dict:
    ips = [r["images_per_s"] for r in runs]
    return {"runs": runs, "images_per_s": statistics.median(ips), "images_per_s_min": min(ips),
            "images_per_s_max": max(ips), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}

  rows = []
  for runs in ours.values():
    row = {**{k: v for k, v in runs[0].items() if k not in ("step_times_s",)}, **summary(runs)}
    for loop, t in theirs.items():
      ratios = [r["images_per_s"] / x["images_per_s"] for r, x in zip(runs, t)]
      row[f"ratio_vs_{loop}"] = statistics.median(ratios)
      row[f"ratio_vs_{loop}_range"] = [min(ratios), max(ratios)]
    rows.append(row)
  torch_rows = [{**{k: v for k, v in t[0].items() if k != "step_times_s"}, **summary(t)} for t in theirs.values()]
  return {"machine": machine, "jax": rows, "torch": torch_rows, "repeats": a.repeats}


def official_step_module(model: str, repo: str | None):
  """The benchmarks/official module timing `model`'s official step; ConfigError (exit 2) for an
  unknown model or a missing checkout."""
  import importlib
  valid = ", ".join(OFFICIAL_STEPS)
  if model not in OFFICIAL_STEPS:
    raise ConfigError(f"--compare-official: unknown model {model!r}; valid: {valid}")
  if not repo or not os.path.isdir(repo):
    raise ConfigError(f"--official-repo {repo or '(not given)'}: not a directory; --compare-official {model} needs "
                      f"a checkout of the official code (models: {valid})")
  name = f"benchmarks.official.{OFFICIAL_STEPS[model]}"
  try:
    return importlib.import_module(name)
  except ModuleNotFoundError as e:
    if e.name != name:
      raise
    raise ConfigError(f"--compare-official {model}: no {name.replace('.', '/')}.py in this tree") from None


def compare_official(a) -> dict:
  """Our train step and the official training iteration at the module's configuration, batch a.batch."""
  module = official_step_module(a.compare_official, a.official_repo)
  import jax

  from gan_jax import benchmark
  from gan_jax.config import validate
  from gan_jax.importers import workdir as workdir_lib
  experiment, overrides = module.our_config()
  config = workdir_lib.load_config(experiment, {**overrides, "batch_size": a.batch})
  validate(config)
  ours = benchmark.time_train_step(config, benchmark.data_spec(config)[0], a.steps, a.warmup)
  print(f"  ours: {ours['median_step_s'] * 1e3:.0f} ms/step", file=sys.stderr)
  official = module.time_official(os.path.abspath(a.official_repo), batch=a.batch, steps=a.steps)
  print(f"  official: {official['median_step_s'] * 1e3:.0f} ms/step", file=sys.stderr)
  machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "backend": jax.default_backend(),
             "devices": jax.device_count()}
  return {"machine": machine, "model": a.compare_official, "batch": a.batch, "experiment": experiment,
          "overrides": overrides, "ours": ours, "official": official,
          "ratio_official_over_ours": official["median_step_s"] / ours["median_step_s"]}


def print_compare_official(out: dict) -> None:
  m, ours, off = out["machine"], out["ours"], out["official"]
  print(f"machine: {m['cpu']}, {m['cores']} cores, {m['backend']} x{m['devices']}")
  print(f"{out['model']} training step, batch {out['batch']} ({out['experiment']}):")
  print("| code | ms/step (min-max) | images/s |\n|---|---|---|")
  print(f"| ours (jax {ours['jax_version']}) | {ours['median_step_s'] * 1e3:.0f} "
        f"({ours['min_step_s'] * 1e3:.0f}-{ours['max_step_s'] * 1e3:.0f}) | {ours['images_per_s']:.1f} |")
  times = off["step_times_s"]
  print(f"| official (torch {off.get('torch_version', '?')}) | {off['median_step_s'] * 1e3:.0f} "
        f"({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f}) | {off['images_per_s']:.1f} |")
  print(f"official / ours step time: {out['ratio_official_over_ours']:.2f}x")


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def print_table(out: dict) -> None:
  m = out["machine"]
  print(f"machine: {m['cpu']}, {m['cores']} cores, {m['backend']} x{m['devices']}; "
        f"float32 matmul {m['matmul_gflops']:.0f} GFLOP/s")
  if out.get("repeats"):
    print_comparison(out)
    print_memory_stages(out)
  else:
    print("| framework | model | res | batch | impl | ms/step (min-max) | images/s | compile s | "
          "GFLOP/step | MFU | XLA MB (args/out/temp) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in out["jax"]:
      print(f"| jax | {r['model']} | {r['resolution']} | {r['batch']} | {_impl(r)} | "
            f"{r['median_step_s'] * 1e3:.0f} ({r['min_step_s'] * 1e3:.0f}-{r['max_step_s'] * 1e3:.0f}) | "
            f"{r['images_per_s']:.1f} | {r['compile_s']:.1f} | {r['flops_per_step'] / 1e9:.1f} | "
            f"{r['mfu']:.0%} | {_xla_mb(r)} | {r['peak_rss_mb']:.0f} |")
  for r in out["jax"]:
    if "breakdown_s" in r:
      b = r["breakdown_s"]
      print(f"\n{r['impl']}: time per network pass (each compiled alone), ms")
      print("| pass | ms | per step |\n|---|---|---|")
      uses = {"G forward": 1, "G forward + backward": 1, "D forward + backward (weights)": 2,
              "D forward + backward (input)": 1}
      for name, sec in b.items():
        print(f"| {name} | {sec * 1e3:.0f} | x{uses.get(name, 0)} |")
      total = sum(b[n] * k for n, k in uses.items())
      print(f"| sum of the passes one step runs | {total * 1e3:.0f} | (step: {r['median_step_s'] * 1e3:.0f}) |")


def _impl(r: dict) -> str:
  return f"{r['impl']}{', reuse_fake' if r.get('reuse_fake') else ''}"


def _xla_mb(r: dict) -> str:
  m = r.get("xla_memory_mb") or {}
  return "/".join(f"{m[k]:.0f}" for k in ("arguments", "outputs", "temporaries")) if m else "-"


def print_comparison(out: dict) -> None:
  """Medians over the rounds with their min-max, and each of ours against both PyTorch loops."""
  n = out["repeats"]
  print(f"{n} rounds, alternating, each row in its own process; images/s median (min-max over the rounds)")
  print("| framework | step | res | batch | images/s | vs PyTorch twin | vs PyTorch canonical | "
        "XLA MB (args/out/temp) | peak RSS MB |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in out["jax"]:
    ratios = [f"{r[f'ratio_vs_{k}']:.2f}x ({r[f'ratio_vs_{k}_range'][0]:.2f}-{r[f'ratio_vs_{k}_range'][1]:.2f})"
              for k in ("twin", "canonical")]
    print(f"| jax {r['jax_version']} | {_impl(r)} | {r['resolution']} | {r['batch']} | "
          f"{r['images_per_s']:.1f} ({r['images_per_s_min']:.1f}-{r['images_per_s_max']:.1f}) | {ratios[0]} | "
          f"{ratios[1]} | {_xla_mb(r)} | {r['peak_rss_mb']:.0f} |")
  for t in out["torch"]:
    print(f"| torch {t['torch_version']} | {t['loop']} loop{', channels_last' if t.get('channels_last') else ''} | "
          f"{t['resolution']} | {t['batch']} | {t['images_per_s']:.1f} ({t['images_per_s_min']:.1f}-"
          f"{t['images_per_s_max']:.1f}) | - | - | - | {t['peak_rss_mb']:.0f} |")


def print_memory_stages(out: dict) -> None:
  """Where each row's resident memory goes (its first round): RSS now / peak so far, MB, at the start
  (interpreter and framework imported), with the state built, after compiling (ours), after the steps."""
  print("\nresident memory by stage, MB, now / peak so far (first round)")
  print("| framework | step | start | state built | compiled | after the steps |")
  print("|---|---|---|---|---|---|")

  def cell(stages: dict, name: str) -> str:
    s = stages.get(name)
    return f"{s['rss_mb']:.0f} / {s['peak_mb']:.0f}" if s else "-"

  for r in out["jax"]:
    st = r.get("rss_stages", {})
    print(f"| jax | {_impl(r)} | {cell(st, 'start')} | {cell(st, 'state')} | {cell(st, 'compiled')} | "
          f"{cell(st, 'steps')} |")
  for t in out["torch"]:
    st = t.get("rss_stages", {})
    print(f"| torch | {t['loop']} loop | {cell(st, 'start')} | {cell(st, 'state')} | - | {cell(st, 'steps')} |")


def print_compile_table(rows: list[dict]) -> None:
  print("| experiment (runlocal) | model | shape | batch | init + step compile, cold cache s | "
        "init + step compile, warm cache s |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    shape = "x".join(map(str, r["shape"])) + (" (from config)" if r["shape_from_config"] else "")
    cold, warm = (r[f"init_compile_{p}_s"] + r[f"compile_{p}_s"] for p in ("cold", "warm"))
    print(f"| {r['experiment']} | {r['model']} | {shape} | {r['batch']} | {cold:.1f} "
          f"({r['init_compile_cold_s']:.1f} + {r['compile_cold_s']:.1f}) | {warm:.1f} |")


def print_fid(r: dict) -> None:
  fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
  print(f"FID Inception forward, batch {r['batch']} of {r['input'][0]}x{r['input'][1]} inputs resized to 299, "
        f"{r['repeats']} alternating measurements of {r['steps']} batches")
  print(f"jax ({r['devices']} device(s)): {fmt(r['jax_images_per_s'])} images/s")
  if "torch_images_per_s" in r:
    print(f"pytorch-fid (torch {r['torch_version']}): {fmt(r['torch_images_per_s'])} images/s")
    print(f"ratio jax / torch: {fmt(r['ratios'])}")


EXAMPLES = (
    'python scripts/benchmark.py --model dcgan --resolution 64 --batch 64',
    'python scripts/benchmark.py --experiments dcgan_digits,r3gan_cifar10',
    'python scripts/benchmark.py --compare-official r3gan --official-repo ../R3GAN',
)


def main(argv):
  a = parse(argv[1:])
  if a.dump_hlo:   # read when the XLA backend starts, which has not happened yet
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={a.dump_hlo}".strip()
  from gan_jax import benchmark
  if a.experiments is not None:
    names = None if a.experiments == "all" else a.experiments.split(",")
    check_experiments("--experiments", names or [])
    out = {"compile": benchmark.experiment_compile_times(names)}
    print_compile_table(out["compile"])
  elif a.scaling is not None:
    from gan_jax import scaling
    names = scaling.BASELINES if a.scaling == "all" else a.scaling.split(",")
    check_experiments("--scaling", names)
    rows = []
    for n in names:
      rows.append(scaling.baseline_costs(n))
      print(f"  {n}: {rows[-1]['flops_per_image'] / 1e9:.1f} GFLOP per image", file=sys.stderr)
    out = {"scaling": rows, "mfu": scaling.MFU, "platforms": [vars(p) for p in scaling.PLATFORMS],
           "modelled": {r["experiment"]: [scaling.model_step(r, p) for p in scaling.PLATFORMS] for r in rows}}
    print(scaling.markdown(rows))
  elif a.fid:
    if a.repeats < 1 or a.size < 1:
      raise ConfigError(f"--repeats and --size must be >= 1, got {a.repeats}, {a.size}")
    from gan_jax import parallel
    parallel.cpu_device_per_core()   # as scripts/evaluate.py and ref_stats.py run the network
    out = {"fid_throughput": benchmark.fid_throughput(a.batch, a.size, a.steps, a.warmup, a.repeats, a.compare_torch)}
    print_fid(out["fid_throughput"])
  elif a.compare_official is not None:
    out = {"compare_official": compare_official(a)}
    print_compare_official(out["compare_official"])
  elif a.population is not None:
    if a.members < 2:
      raise ConfigError(f"--members must be >= 2, got {a.members}")
    config = named_experiment("--population", a.population)
    rows = benchmark.population_times(config, benchmark.data_spec(config)[0], a.members, a.steps, a.warmup)
    out = {"population": {"experiment": a.population, "steps": a.steps, "rows": rows}}
    print(f"{a.population}: train step per population, median (min-max) of {a.steps} steps\n")
    print("| seeds | population_impl | ms/step | ms per seed | compile s |\n|---|---|---|---|---|")
    for r in rows:
      print(f"| {r['members']} | {r['population_impl']} | {r['median_step_s'] * 1e3:.1f} ({r['min_step_s'] * 1e3:.1f}-"
            f"{r['max_step_s'] * 1e3:.1f}) | {r['per_member_s'] * 1e3:.1f} | {r['compile_s']:.1f} |")
  elif a.penalty_ratio is not None:
    config = named_experiment("--penalty-ratio", f"{a.penalty_ratio}:runlocal")
    r = benchmark.penalty_ratio(config, benchmark.data_spec(config)[0], a.steps, a.warmup)
    out = {"penalty_ratio": {"experiment": a.penalty_ratio + ":runlocal", **r}}
    print(f"{a.penalty_ratio}:runlocal D update: {r['d_step_with_s'] * 1e3:.0f} ms with {r['penalties']}, "
          f"{r['d_step_without_s'] * 1e3:.0f} ms without: ratio {r['ratio']:.2f} "
          f"(XLA FLOPs {r['flops_with'] / 1e9:.2f} vs {r['flops_without'] / 1e9:.2f} G: {r['flops_ratio']:.2f})")
  else:
    out = bench_models(a)
    print_table(out)
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)


if __name__ == "__main__":
  sys.exit(cli.main(main, examples=EXAMPLES))
