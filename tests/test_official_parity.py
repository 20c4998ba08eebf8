"""Forward parity with the official code, from fixtures the official code made (tests/fixtures/official/,
benchmarks/official/make_fixtures.py): every fixture is imported through `import_checkpoint` (what
scripts/import_checkpoint.py runs) into a workdir, and our networks with the imported weights must give
the official outputs on the same inputs (relative L2 error <= the manifest's tolerance, 1e-5). A fixture
directory joins by holding a manifest.json. The published full-size networks' tensor names and shapes
must map onto our full-size models one to one. Error cases of the import exit 2 with one line.
No torch needed.
"""
import functools
import glob
import inspect
import json
import os
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_main

from gan_jax.errors import ConfigError
from gan_jax.importers import FORMATS, import_checkpoint
from gan_jax.importers import workdir as workdir_lib
from gan_jax.models import DataSpec, build_models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "official")
NETS = {"G": "G", "generator": "G", "D": "D", "discriminator": "D"}
DEFAULT_WEIGHTS = {"G": "ema_params", "D": "d_params"}


def _manifest(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


# Forward fixtures; the training-step fixtures ("kind": "train_step") have tests of their own.
MANIFESTS = sorted(p for p in glob.glob(os.path.join(FIXTURES, "*", "manifest.json"))
                   if _manifest(p).get("kind") != "train_step")


def _source(d: str, m: dict) -> str:
  return os.path.join(d, m.get("import_path") or m["files"][0])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """Fixture directory -> (manifest, Imported, workdir): read, reconciled with the manifest's config, written."""
  cache = {}

  def get(d: str):
    if d not in cache:
      m = _manifest(os.path.join(d, "manifest.json"))
      cfg = m.get("config", {})
      work = str(tmp_path_factory.mktemp(os.path.basename(d)))
      if m.get("workdir", True):
        imp = import_checkpoint(m["format"], _source(d, m), work, cfg.get("experiment"), cfg.get("overrides"))
      else:   # a checkpoint that needs more than itself for a run (e.g. StackGAN Stage II: its Stage-I run)
        imp = FORMATS.get(m["format"]).read(_source(d, m))
        imp.config = workdir_lib.load_config(cfg["experiment"], cfg.get("overrides"))
      cache[d] = m, imp, work
    return cache[d]
  return get


def _weights(output: dict, net: str) -> tuple[str, str | None]:
  """(state field, sub-tree key): `weights` (+ `params` as the sub-tree), or `params` naming the field
  (+ `key` as the sub-tree); the default is the EMA generator or D."""
  if "weights" in output:
    return output["weights"], output.get("params")
  if str(output.get("params", "")).endswith("_params"):
    return output["params"], output.get("key")
  return DEFAULT_WEIGHTS[net], output.get("params")


def _variables(imp, output: dict, net: str) -> dict:
  weights, sub = _weights(output, net)
  tree = getattr(imp, weights)
  if sub:
    tree = tree[sub]
  variables = {"params": tree, **((imp.g_vars if net == "G" else imp.d_vars) or {})}
  extras = imp.extras.get(weights, {})
  if output.get("noise") and "noise_const" in extras:   # the official noise_mode 'const' or 'none'
    noise = extras["noise_const"]
    variables["noise_const"] = noise if output["noise"] == "const" else jax.tree.map(np.zeros_like, noise)
  return variables


def _apply(module, method: str, kwargs: dict, variables, *args):
  """module.apply in inference mode; `method` "a+b" chains methods: b(a(x), *rest)."""
  first, *chain = (method or "__call__").split("+")
  rngs = {"noise": jax.random.PRNGKey(0)}
  y = module.apply(variables, *(args[:1] if chain else args), train=False, rngs=rngs, method=first, **kwargs)
  for name in chain:
    extra = {"train": False} if "train" in inspect.signature(getattr(module, name)).parameters else {}
    y = module.apply(variables, y, *args[1:], method=name, **extra)
  return y


def _fixed_ca_eps(eps: list):
  """A flax interceptor: StackGAN's conditioning augmentation (CANet) uses the given epsilons, in call order,
  instead of its own draws (manifest "noise": {"ca_eps": [input names]})."""
  draws = iter(eps)

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if type(context.module).__name__ == "CANet" and context.method_name == "__call__":
      _, mu, logvar = out
      return mu + jnp.asarray(next(draws)) * jnp.exp(0.5 * logvar), mu, logvar
    return out
  return interceptor


def relative_error(ours, ref) -> float:
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), 1e-30))


def test_imported_workdir_samples_and_fine_tunes(tmp_path):
  """scripts/import_checkpoint.py -> sample.py and train.py (a fine-tuning step from the imported step 0)
  on the R3GAN toy fixture, whose experiment trains on the bundled digits. ADA and R1 + R2 off: what is
  tested is the import and the fine-tuning from it (the penalties have step-parity tests), and together
  they treble the step's compile time. First in the file: its longest test, started first."""
  d = os.path.join(FIXTURES, "r3gan")
  m = _manifest(os.path.join(d, "manifest.json"))
  work = str(tmp_path / "w")
  config = ["--config", os.path.join(ROOT, m["config"]["experiment"]),
            *[f"--config.{k}={v}" for k, v in m["config"]["overrides"].items()]]
  r = _cli("--format", "r3gan", "--in", os.path.join(d, m["files"][0]), "--workdir", work, *config)
  assert r.returncode == 0, r.stderr
  # The workdir's checkpoint reads back (as sample.py reads it) with the file's weights.
  from gan_jax.train import loop
  imported = FORMATS.get("r3gan").read(os.path.join(d, m["files"][0]))
  _, _, _, _, _, state, step = loop.load_run(work)
  assert step == 0
  for field in ("g_params", "d_params", "ema_params"):
    for a, b in zip(jax.tree.leaves(getattr(state, field)), jax.tree.leaves(getattr(imported, field))):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b, np.float32))
  r = run_main("sample.py", "--workdir", work, "--num", "4", "--out", str(tmp_path / "s.npy"))
  assert r.returncode == 0, r.stderr
  assert np.load(tmp_path / "s.npy").shape == (4, 16, 16, 3)
  r = run_main("train.py", "--workdir", work, *config, "--config.total_steps=1", "--config.eval.every=0",
               "--config.log_every=1", "--config.batch_size=8", "--config.augment.name=none",
               "--config.reg.r1=0", "--config.reg.r2=0")
  assert r.returncode == 0, r.stderr
  with open(os.path.join(work, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f if line.strip()]
  assert steps[-1] == 1
  # Fine-tuned from the imported weights (a small step away), not from a fresh initialization.
  state = loop.load_run(work, step=1)[5]
  for field in ("g_params", "d_params"):
    ours = np.concatenate([np.ravel(x) for x in jax.tree.leaves(getattr(state, field))])
    theirs = np.concatenate([np.ravel(x) for x in jax.tree.leaves(getattr(imported, field))])
    assert 0 < relative_error(ours, theirs) < 0.2, field


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_forward_parity(manifest, imported):
  d = os.path.dirname(manifest)
  m, imp, _ = imported(d)
  G, D = build_models(imp.config.model, imp.spec)
  inputs = dict(np.load(os.path.join(d, m["inputs"])))
  expected = dict(np.load(os.path.join(d, m["outputs_file"])))
  errors, compiled = {}, {}
  for output in m["outputs"]:
    kind, _, method = output["net"].partition(".")
    method = method or output.get("method", "")
    net = NETS[kind]
    kwargs = output.get("kwargs", {})
    key = (net, method, json.dumps(kwargs, sort_keys=True))
    module = G if net == "G" else D
    if key not in compiled:   # one compilation per network, method and arguments (weights are arguments)
      compiled[key] = jax.jit(functools.partial(_apply, module, method, kwargs))
    args = [jnp.asarray(inputs[name]) for name in (output.get("inputs") or [output["input"]])]
    source = imp
    if output.get("import_path", m.get("import_path")) != m.get("import_path"):   # one file of the set alone
      source = FORMATS.get(m["format"]).read(os.path.join(d, output["import_path"]))
    eps = [inputs[k] for k in m.get("noise", {}).get("ca_eps", [])] if net == "G" else []
    if eps:   # the official run's conditioning-augmentation draws, one per CANet call in call order
      def with_eps(variables, *args, eps=eps, module=module, method=method, kwargs=kwargs):
        with nn.intercept_methods(_fixed_ca_eps(eps)):
          return _apply(module, method, kwargs, variables, *args)
      y = jax.jit(with_eps)(_variables(source, output, net), *args)
    else:
      y = compiled[key](_variables(source, output, net), *args)
    y = y[output["index"]] if "index" in output else y
    errors[output["name"]] = relative_error(y, expected[output["name"]])
  print(os.path.basename(d), {k: f"{e:.2g}" for k, e in errors.items()})
  tol = m.get("tolerance", 1e-5)
  assert all(e <= tol for e in errors.values()), f"relative errors above {tol}: {errors}"


def _full_cases():
  for path in MANIFESTS:
    m = _manifest(path)
    full = m.get("full_shapes")
    if isinstance(full, dict) and FORMATS.get(m["format"]).trees is not None:
      for name in full.get("configs", {}):
        yield pytest.param(path, name, id=f"{os.path.basename(os.path.dirname(path))}-{name}")


@pytest.mark.parametrize("manifest,name", list(_full_cases()))
def test_full_size_shapes_map_one_to_one(manifest, name):
  """Every official tensor of the published configuration has its place in our full-size model (same
  shape), every one of our parameters and collections is filled, none left over on either side."""
  d = os.path.dirname(manifest)
  m = _manifest(manifest)
  entry = m["full_shapes"]["configs"][name]
  with open(os.path.join(d, m["full_shapes"]["file"])) as f:
    shapes = json.load(f)
  nets = {key.split("/", 1)[1]: {k: np.broadcast_to(np.float32(0), s) for k, s in sd.items()}
          for key, sd in shapes.items() if key.startswith(name + "/")}
  assert set(nets) == {"G", "D"}, sorted(shapes)
  trees = FORMATS.get(m["format"]).trees(nets)
  config = workdir_lib.load_config(entry["experiment"], entry.get("overrides"))
  r = config.data.resolution
  spec = DataSpec("image", (r, r, 3), entry.get("num_classes", 0))
  abstract, _ = workdir_lib.trainer_state(config, spec)
  for field, tree in trees.items():
    workdir_lib.fit(getattr(abstract, field), tree, field, f"{name} {field}")


# --- errors: exit 2 and one line ------------------------------------------------------------------

SG2 = os.path.join(FIXTURES, "stylegan2_ada")


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


def _cli(*args):
  """scripts/import_checkpoint.py ARGS, its main run in this interpreter (exit code and stderr as a shell's)."""
  return run_main("import_checkpoint.py", *args)


def _one_error_line(stderr: str) -> str:
  lines = [line for line in stderr.splitlines() if line.strip() and "Warning" not in line and "warn(" not in line]
  assert len(lines) == 1 and lines[0].startswith("error: "), stderr
  return lines[0]


def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
  marker = tmp_path / "ran"
  bad = tmp_path / "evil.pkl"
  with open(bad, "wb") as f:
    pickle.dump({"G": _Evil(str(marker)), "D": None}, f)
  r = _cli("--format", "stylegan2-ada", "--in", str(bad), "--workdir", str(tmp_path / "w"))
  assert r.returncode == 2, r.stderr
  line = _one_error_line(r.stderr)
  assert "refusing to load" in line and "posix.system" in line and "not a tensor or a known container" in line
  assert not marker.exists()
  assert not (tmp_path / "w").exists()


def test_config_of_another_resolution_exits_2_naming_the_key(tmp_path):
  m = _manifest(os.path.join(SG2, "manifest.json"))
  overrides = [f"--config.{k}={v}" for k, v in m["config"]["overrides"].items()]
  r = _cli("--format", "stylegan2-ada", "--in", os.path.join(SG2, m["files"][0]), "--workdir", str(tmp_path / "w"),
           "--config", os.path.join(ROOT, m["config"]["experiment"]), *overrides, "--config.data.resolution=32",
           "--config.model.channel_max=64")
  assert r.returncode == 2, r.stderr
  line = _one_error_line(r.stderr)
  assert "data.resolution=32 (the file has 16)" in line and "model.channel_max=64 (the file has 32)" in line


def test_truncated_file(tmp_path):
  src = os.path.join(SG2, "network-snapshot.pkl")
  with open(src, "rb") as f:
    data = f.read()
  for cut in (100, len(data) // 2, len(data) - 10):
    path = tmp_path / f"cut{cut}.pkl"
    path.write_bytes(data[:cut])
    with pytest.raises(ConfigError, match="truncated"):
      import_checkpoint("stylegan2-ada", str(path), str(tmp_path / f"w{cut}"))


def test_checkpoint_of_another_architecture(tmp_path):
  with pytest.raises(ConfigError, match="holds a stylegan2 network, but the config's model.name is 'r3gan'"):
    import_checkpoint("stylegan2-ada", os.path.join(SG2, "network-snapshot.pkl"), str(tmp_path / "w"),
                      "experiments/r3gan_cifar10.py:runlocal")
  with pytest.raises(ConfigError, match="StyleGAN3 generator"):
    import_checkpoint("stylegan2-ada", os.path.join(FIXTURES, "stylegan3_t", "network-snapshot.pkl"),
                      str(tmp_path / "w2"))


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_missing_extra_or_misshaped_tensors(tmp_path, change):
  """The file's trees are fitted leaf by leaf to our state: every difference is named."""
  d = os.path.join(FIXTURES, "r3gan")
  m = _manifest(os.path.join(d, "manifest.json"))
  imp = FORMATS.get("r3gan").read(os.path.join(d, m["files"][0]))
  config = workdir_lib.reconcile(imp, workdir_lib.load_config(m["config"]["experiment"], m["config"]["overrides"]),
                                 "toy.pkl")
  if change == "missing":
    del imp.d_params["stage0_block1"]["linear2"]
    pattern = r"the d_params tensors do not fit our model: missing stage0_block1/linear2/kernel"
  elif change == "extra":
    imp.g_params["stage9_block0"] = {"kernel": np.zeros((1, 1, 4, 4), np.float32)}
    pattern = r"the g_params tensors do not fit our model: extra stage9_block0/kernel"
  else:
    imp.ema_params["basis"] = np.zeros((4, 4, 31), np.float32)
    pattern = r"the ema_params tensors do not fit our model: shapes differ: basis \(4, 4, 31\) vs ours \(4, 4, 32\)"
  with pytest.raises(ConfigError, match=pattern):
    workdir_lib.write(str(tmp_path / "w"), config, imp, "toy.pkl")
  assert not os.path.exists(tmp_path / "w" / "checkpoints")
