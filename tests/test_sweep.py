"""Sweeps: expansion, trial names and commands, validation before anything runs, resume by skipping."""
import json
import os
import shlex
import shutil
import sys

import pytest
from conftest import ROOT, experiment, run_main, run_script

from gan_jax import sweep as sweep_lib
from gan_jax.errors import ConfigError
from gan_jax.losses import LOSSES

SMOKE_SETS = ["total_steps=20", "log_every=10", "eval.every=10", "sample_every=0", "ckpt_every=10"]
SMOKE_NAMES = ["loss.name-nonsaturating__seed-0", "loss.name-nonsaturating__seed-1",
               "loss.name-rpgan__seed-0", "loss.name-rpgan__seed-1"]


def _experiment_file(tmp_path, sweeps: str) -> str:
  """An experiment file on ring8's config with the given get_sweeps() body."""
  path = tmp_path / "exp.py"
  path.write_text(f"import sys\nsys.path.insert(0, {os.path.join(ROOT, 'experiments')!r})\n"
                  "from ring8 import get_config  # noqa: F401\n\n\n"
                  f"def get_sweeps():\n  return {sweeps}\n")
  return str(path)


def test_expand_is_the_product_in_key_order():
  sweeps = {"s": {"loss.name": ["hinge", "rpgan"], "seed": [0, 1, 2]}}
  assert sweep_lib.expand(sweeps, "s") == [
      {"loss.name": n, "seed": s} for n in ("hinge", "rpgan") for s in (0, 1, 2)]
  with pytest.raises(ConfigError, match="sweep 's': seed needs a non-empty list"):
    sweep_lib.expand({"s": {"seed": []}}, "s")


def test_trial_names_are_deterministic_and_filesystem_safe():
  assert sweep_lib.trial_name({"loss.name": "rpgan", "seed": 3}) == "loss.name-rpgan__seed-3"
  assert sweep_lib.trial_name({"optim.g.lr": 1e-4, "data.download": True}) == (
      "optim.g.lr-0.0001__data.download-true")
  a, b = sweep_lib.trial_name({"data.path": "/x y"}), sweep_lib.trial_name({"data.path": "/x_y"})
  assert a != b and a == sweep_lib.trial_name({"data.path": "/x y"})
  assert all(c.isalnum() or c in "._+-" for c in a + b)


def test_smoke_sweep_trials_and_commands(tmp_path):
  sweep = sweep_lib.load_sweep(experiment("ring8") + ":runlocal", "smoke", str(tmp_path),
                               sweep_lib.parse_sets(["total_steps=20", "optim.g.lr=1e-4"]))
  assert sweep.keys == ["loss.name", "seed"]
  assert [t.name for t in sweep.trials] == SMOKE_NAMES
  t = sweep.trials[2]
  assert t.overrides == {"loss.name": "rpgan", "seed": 0} and t.total_steps == 20
  assert t.workdir == str(tmp_path / "loss.name-rpgan__seed-0")
  assert t.command == [sys.executable, os.path.join(ROOT, "scripts", "train.py"),
                       "--config", experiment("ring8") + ":runlocal", "--workdir", t.workdir,
                       "--config.total_steps=20", "--config.optim.g.lr=1e-4",
                       "--config.loss.name=rpgan", "--config.seed=0"]
  assert not t.finished()
  os.makedirs(os.path.join(t.workdir, "checkpoints", "10"))
  assert not t.finished()
  os.makedirs(os.path.join(t.workdir, "checkpoints", "20"))
  assert t.finished()


def test_experiment_sweeps(tmp_path):
  losses = sweep_lib.load_sweep(experiment("ring8"), "losses", str(tmp_path))
  assert len(losses.trials) == 50
  assert sorted({t.overrides["loss.name"] for t in losses.trials}) == LOSSES.names()
  assert {t.overrides["seed"] for t in losses.trials} == {0, 1, 2, 3, 4}
  grid = sweep_lib.load_sweep(experiment("grid25"), "losses", str(tmp_path))
  assert [t.name for t in grid.trials] == [t.name for t in losses.trials]
  digits = sweep_lib.load_sweep(experiment("dcgan_digits"), "losses", str(tmp_path))
  assert len(digits.trials) == 15


def test_apply_overrides_parses_like_config_flags(load_config):
  c = sweep_lib.apply_overrides(load_config("experiments/ring8.py"),
                                {"optim.g.lr": "1e-4", "data.download": "true", "seed": "7",
                                 "optim.d.lr_final": "0.5", "loss.name": "hinge"})
  assert (c.optim.g.lr, c.data.download, c.seed, c.optim.d.lr_final, c.loss.name) == (1e-4, True, 7, 0.5, "hinge")


@pytest.mark.parametrize("sets, sweep, message", [
    ([], "nope", "unknown sweep 'nope'; valid sweeps: losses, losses_population, losses_x_penalties, smoke"),
    (["optim.g.lrr=1"], "smoke", "unknown config key 'config.optim.g.lrr'; valid keys under 'config.optim.g': b1"),
    (["batch_size=abc"], "smoke", "bad value for config key 'batch_size': 'abc' (expected int)"),
    (["optim=1"], "smoke", "config key 'optim' (ConfigDict) cannot be overridden"),
    (["loss.name=hinge"], "smoke", "--set loss.name: swept by sweep 'smoke'"),
    (["total_steps"], "smoke", "--set expects KEY=VALUE, got 'total_steps'"),
    (["total_steps=0"], "smoke", "total_steps must be an integer >= 1"),
])
def test_bad_sweeps_fail_before_any_trial(tmp_path, sets, sweep, message):
  with pytest.raises(ConfigError) as e:
    sweep_lib.load_sweep(experiment("ring8"), sweep, str(tmp_path / "root"), sweep_lib.parse_sets(sets))
  assert message in str(e.value)
  assert not os.path.exists(tmp_path / "root")


def test_bad_values_in_get_sweeps_name_the_trial(tmp_path):
  spec = _experiment_file(tmp_path, '{"bad": {"seed": [0], "loss.name": ["hinge", "bogus"]}}')
  with pytest.raises(ConfigError, match=r"sweep 'bad', trial seed-0__loss.name-bogus: unknown loss 'bogus'"):
    sweep_lib.load_sweep(spec, "bad", str(tmp_path / "root"))
  spec = _experiment_file(tmp_path, '{"bad": {"seed": [0.5]}}')
  with pytest.raises(ConfigError, match=r"bad value for config key 'seed': '0.5' \(expected int\)"):
    sweep_lib.load_sweep(spec, "bad", str(tmp_path / "root"))


def test_experiment_without_sweeps(tmp_path):
  with pytest.raises(ConfigError, match="defines no sweeps"):
    sweep_lib.load_sweep(experiment("dcgan_mnist"), "losses", str(tmp_path))


def test_root_of_another_sweep_is_refused(tmp_path):
  sweep_lib.load_sweep(experiment("ring8"), "smoke", str(tmp_path)).write()
  sweep_lib.load_sweep(experiment("ring8"), "smoke", str(tmp_path), {"total_steps": "5"}).write()  # same sweep
  with pytest.raises(ConfigError, match="belongs to sweep 'smoke'"):
    sweep_lib.load_sweep(experiment("ring8"), "losses", str(tmp_path)).write()


def _lines(result):
  return [line for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_sweep_runs_resumes_and_prints_commands(tmp_path):
  root = tmp_path / "root"
  args = ["--config", experiment("ring8") + ":runlocal", "--sweep", "smoke", "--root", str(root),
          *[a for s in SMOKE_SETS for a in ("--set", s)]]
  result = run_script("sweep.py", *args, "--parallel", "2")
  assert result.returncode == 0, result.stdout + result.stderr[-3000:]
  assert sorted(line.split()[:2] for line in _lines(result)) == [["ok", n] for n in SMOKE_NAMES]
  for name in SMOKE_NAMES:
    assert os.path.isdir(root / name / "checkpoints" / "20")
    assert json.loads((root / name / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 20
    assert "workdir " + str(root / name) in (root / name / "train.log").read_text()
  saved = json.loads((root / "sweep.json").read_text())
  assert (saved["sweep"], saved["keys"], [t["dir"] for t in saved["trials"]]) == (
      "smoke", ["loss.name", "seed"], SMOKE_NAMES)
  assert saved["fixed"] == dict(s.split("=") for s in SMOKE_SETS)

  # A lost trial: only it is printed by --dry_run and run again; the others are skipped untouched.
  lost = SMOKE_NAMES[1]
  shutil.rmtree(root / lost)
  mtimes = {n: os.path.getmtime(root / n / "metrics.jsonl") for n in SMOKE_NAMES if n != lost}
  dry = run_script("sweep.py", *args, "--dry_run")
  assert dry.returncode == 0, dry.stderr[-3000:]
  [command] = _lines(dry)
  assert shlex.split(command)[1:] == [
      os.path.join(ROOT, "scripts", "train.py"), "--config", experiment("ring8") + ":runlocal",
      "--workdir", str(root / lost), *[f"--config.{s}" for s in SMOKE_SETS],
      "--config.loss.name=nonsaturating", "--config.seed=1"]
  assert not os.path.exists(root / lost)

  again = run_script("sweep.py", *args)
  assert again.returncode == 0, again.stdout + again.stderr[-3000:]
  lines = _lines(again)
  assert [line.split()[:2] for line in lines] == [
      ["skipped", n] for n in SMOKE_NAMES if n != lost] + [["ok", lost]]
  assert {n: os.path.getmtime(root / n / "metrics.jsonl") for n in mtimes} == mtimes
  assert os.path.isdir(root / lost / "checkpoints" / "20")
  assert _lines(run_script("sweep.py", *args, "--dry_run")) == []


@pytest.mark.slow
def test_failed_trial_exits_1(tmp_path):
  spec = _experiment_file(tmp_path, '{"one": {"seed": [0]}}')
  root = tmp_path / "root"
  result = run_script("sweep.py", "--config", spec, "--sweep", "one", "--root", str(root),
                      "--set", "data.name=folder", "--set", f"data.path={tmp_path / 'missing'}")
  assert result.returncode == 1
  assert _lines(result) == [f"failed seed-0 (exit 2; log: {root / 'seed-0' / 'train.log'})"]
  assert "error: " in (root / "seed-0" / "train.log").read_text()


@pytest.mark.parametrize("args, message", [
    (["--sweep", "smoke"], "error: missing --root"),
    (["--sweep", "nope", "--root", "{tmp}"], "error: unknown sweep 'nope'; valid sweeps: losses, losses_population"),
    (["--sweep", "smoke", "--root", "{tmp}", "--set", "bogus=1"], "error: unknown config key 'config.bogus'"),
])
def test_sweep_cli_bad_input_exits_2(tmp_path, args, message):
  result = run_main("sweep.py", "--config", experiment("ring8"), *[a.format(tmp=tmp_path / "r") for a in args])
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith(message), result.stderr[-2000:]
  assert not os.path.exists(tmp_path / "r")


def test_trials_through_a_launcher_and_the_wandb_export(tmp_path):
  sweep = sweep_lib.load_sweep(experiment("ring8") + ":runlocal", "smoke", str(tmp_path),
                               sweep_lib.parse_sets(["total_steps=20"]))
  slurm = sweep_lib.with_launcher(sweep, "slurm", ["--nodes=2", "--gpus_per_node=4"])
  t = slurm.trials[2]
  assert t.command[:7] == [sys.executable, os.path.join(ROOT, "scripts", "launch.py"), "--backend", "slurm",
                           "--nodes=2", "--gpus_per_node=4", "--"]
  assert t.command[7:] == sweep.trials[2].command[1:]
  local = sweep_lib.with_launcher(sweep, "local", ["--num_processes=2"]).trials[0]
  assert local.command[5:7] == ["--log_dir", os.path.join(local.workdir, "launch_logs")]
  with pytest.raises(ConfigError, match="unknown --backend 'mpi'; valid choices: process, local, slurm, tpu-vm"):
    sweep_lib.with_launcher(sweep, "mpi")
  # The launcher's dry run of a trial is srun around the trial's own train command.
  r = run_main("launch.py", *t.command[2:6], "--dry-run", *t.command[6:])
  assert r.returncode == 0 and shlex.split(r.stdout)[:3] == ["srun", "--nodes=2", "--ntasks-per-node=4"]

  out = tmp_path / "wandb.yaml"
  r = run_main("sweep.py", "--config", experiment("ring8") + ":runlocal", "--sweep", "smoke", "--root",
               str(tmp_path / "w"), "--set", "total_steps=20", "--wandb_export", str(out))
  assert r.returncode == 0, r.stderr[-2000:]
  cfg = json.loads(out.read_text())
  assert cfg["method"] == "grid" and cfg["program"] == os.path.join(ROOT, "scripts", "train.py")
  assert cfg["parameters"] == {"config.loss.name": {"values": ["nonsaturating", "rpgan"]},
                               "config.seed": {"values": ["0", "1"]}, "config.total_steps": {"value": "20"}}
  assert cfg["command"][-3:] == ["--workdir", str(tmp_path / "w" / "{wandb_run_id}"), "${args}"]
  # What an agent run executes: the placeholder becomes the run's id.
  cmd = [a for a in cfg["command"][3:-1]]
  r = run_main("train.py", *cmd, "--config.loss.name=rpgan", "--config.seed=1", "--config.total_steps=2",
               "--config.sample_every=0", "--config.eval.every=0", env={"WANDB_RUN_ID": "abc123"})
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.isdir(tmp_path / "w" / "abc123" / "checkpoints" / "2")
  r = run_main("train.py", *cmd, env={"WANDB_RUN_ID": ""})
  assert r.returncode == 2 and "WANDB_RUN_ID is not set" in r.stderr


PENALTY = '{"none": {"reg.r1": 0.0, "reg.r2": 0.0}, "R1+R2": {"reg.r1": 0.5, "reg.r2": 0.5}}'


def test_preset_axis_names_trials_by_label_and_sets_its_keys(tmp_path):
  spec = _experiment_file(tmp_path, '{"lxp": {"loss.name": ["hinge", "rpgan"], "penalty": %s, "population": [3]}}'
                          % PENALTY)
  sweep = sweep_lib.load_sweep(spec, "lxp", str(tmp_path / "root"), {"total_steps": "20"})
  assert sweep.keys == ["loss.name", "penalty", "population"]
  assert [t.name for t in sweep.trials] == [f"loss.name-{n}__penalty-{p}__population-3"
                                            for n in ("hinge", "rpgan") for p in ("none", "R1+R2")]
  t = sweep.trials[1]
  assert t.point == {"loss.name": "hinge", "penalty": "R1+R2", "population": 3}
  assert t.overrides == {"loss.name": "hinge", "reg.r1": 0.5, "reg.r2": 0.5, "population": 3}
  assert t.command[-5:] == ["--config.total_steps=20", "--config.loss.name=hinge", "--config.reg.r1=0.5",
                            "--config.reg.r2=0.5", "--config.population=3"]
  sweep.write()
  saved = json.loads((tmp_path / "root" / "sweep.json").read_text())
  assert saved["axes"] == {"loss.name": ["hinge", "rpgan"], "penalty": ["none", "R1+R2"], "population": ["3"]}
  assert saved["presets"] == {"penalty": json.loads(PENALTY)}
  assert saved["trials"][1]["point"] == t.point and saved["trials"][1]["overrides"] == t.overrides
  with pytest.raises(ConfigError, match="--set reg.r2: swept by sweep 'lxp'"):
    sweep_lib.load_sweep(spec, "lxp", str(tmp_path / "root"), {"reg.r2": "1"})
  with pytest.raises(ConfigError, match="preset axes .penalty., which a wandb grid cannot express"):
    sweep_lib.wandb_sweep_config(sweep)


@pytest.mark.parametrize("body, message", [
    ('{"bad": {"penalty": {}}}', "preset axis penalty needs a non-empty {label: {config_key: value}} dict"),
    ('{"bad": {"penalty": {"R1": 0.1}}}', "preset axis penalty needs a non-empty"),
    ('{"bad": {"reg.r1": [0.1], "penalty": %s}}' % PENALTY, "reg.r1 is set by two axes"),
    ('{"bad": {"penalty": {"x": {"reg.r9": 1.0}}}}',
     "sweep 'bad', trial penalty-x: unknown config key 'config.reg.r9'"),
])
def test_bad_preset_axes(tmp_path, body, message):
  with pytest.raises(ConfigError) as e:
    sweep_lib.load_sweep(_experiment_file(tmp_path, body), "bad", str(tmp_path / "root"))
  assert message in str(e.value)


@pytest.mark.parametrize("name, spec, gamma", [
    ("ring8", "runlocal", 0.1), ("grid25", "runlocal", 0.7), ("stacked_digits", "study", 0.0125),
    ("r3gan_stacked_mnist", "runlocal", 0.05)])
def test_losses_x_penalties_in_every_experiment_with_loss_sweeps(tmp_path, name, spec, gamma):
  sweep = sweep_lib.load_sweep(f"{experiment(name)}:{spec}", "losses_x_penalties", str(tmp_path))
  assert [(t.point["loss.name"], t.point["penalty"]) for t in sweep.trials] == [
      (loss, p) for loss in ("nonsaturating", "rpgan", "hinge", "rahinge") for p in ("none", "R1", "R1+R2")]
  assert {t.point["population"] for t in sweep.trials} == {5}
  assert [(t.overrides["reg.r1"], t.overrides["reg.r2"]) for t in sweep.trials[:3]] == [
      (0.0, 0.0), (gamma, 0.0), (gamma, gamma)]
  assert sweep.trials[5].name == "loss.name-rpgan__penalty-R1+R2__population-5"
