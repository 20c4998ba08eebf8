import pytest

from gan_jax import cli
from gan_jax.config import base_config, parse_arg, validate
from gan_jax.errors import ConfigError
from gan_jax.models import MODELS

# Experiments whose get_config takes loss=NAME; every experiment is checked with "" and runlocal.
LOSS_ARG = ["ring8", "grid25", "dcgan_digits", "dcgan_mnist", "dcgan_cifar10", "dcgan_celeba64", "stacked_digits"]
EXPERIMENTS = cli.experiment_names()
CONTRACT_KEYS = ["seed", "total_steps", "batch_size", "loss.name", "log_every", "ckpt_every",
                 "sample_every", "wandb.mode"]


@pytest.mark.parametrize("name,arg", [(n, a) for n in EXPERIMENTS for a in ("", ":runlocal")] +
                         [(n, ":loss=hinge") for n in LOSS_ARG])
def test_every_experiment_has_the_contract_keys_and_validates(load_config, name, arg):
  c = load_config(f"experiments/{name}.py{arg}")
  for key in CONTRACT_KEYS:
    node = c
    for part in key.split("."):
      node = node[part]
  validate(c)
  if arg == ":loss=hinge":
    assert c.loss.name == "hinge"


def test_the_stacked_digit_studies_count_modes_on_10k_samples_with_unrolled_members(load_config):
  """R3GAN's toy study: runlocal's network and recipe, 10,000 samples per mode count (1000 would cap a
  perfect generator at ~632 modes), members unrolled, and `steps` moving the cosine ramps with the length."""
  c = load_config("experiments/r3gan_stacked_mnist.py:study,steps=1500")
  local = load_config("experiments/r3gan_stacked_mnist.py:runlocal")
  assert (c.total_steps, c.eval.num_samples, c.population_impl) == (1500, 10_000, "unroll")
  assert c.schedule.kimg == 1500 * c.batch_size / 1000 and c.model.widths == local.model.widths
  assert (local.total_steps, local.eval.num_samples, local.population_impl) == (300, 1000, "vmap")
  digits = load_config("experiments/stacked_digits.py:study")
  assert (digits.eval.num_samples, digits.population_impl) == (10_000, "unroll")


def test_experiment_list_excludes_helpers():
  names = cli.experiment_names()
  assert set(LOSS_ARG) <= set(names) and not any(n.startswith("_") for n in names)


def test_parse_arg_types():
  a = parse_arg("runlocal,steps=5,lr=0.5,name=x", runlocal=False, steps=1, lr=1.0, name="")
  assert (a.runlocal, a.steps, a.lr, a.name) == (True, 5, 0.5, "x")
  with pytest.raises(ConfigError, match="valid args: lr, runlocal"):
    parse_arg("bogus=1", runlocal=False, lr=1.0)
  with pytest.raises(ConfigError, match="must be int"):
    parse_arg("steps=abc", steps=1)


@pytest.mark.parametrize("key,value,message", [
    ("loss.name", "bogus", "unknown loss 'bogus'; valid choices: hinge, least_squares, minimax"),
    ("data.name", "bogus", "unknown dataset 'bogus'; valid choices: "),
    ("wandb.mode", "sometimes", "valid choices: auto, online, offline, disabled"),
    ("total_steps", 0, "total_steps must be an integer >= 1"),
    ("data.channels", 2, "data.channels must be 0, 1 or 3"),
    ("optim.d.clip_norm", -1.0, "optim.d.clip_norm must be >= 0"),
    ("reg.drift_form", "mean", "unknown reg.drift_form 'mean'; valid choices: mean_square, square_mean"),
    ("model.fake_labels", "paired", "unknown model.fake_labels 'paired'; valid choices: uniform, real"),
    ("model.state_updates", "both", "unknown model.state_updates 'both'; valid choices: own, all"),
    ("ema.start_step", -1, "ema.start_step must be >= 0"),
    ("population_impl", "pmap", "unknown population_impl 'pmap'; valid choices: vmap, unroll"),
])
def test_validate_rejects(key, value, message):
  c = base_config()
  section, _, leaf = key.rpartition(".")
  (c[section] if section else c)[leaf] = value
  with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
    validate(c)


def test_model_name_checked():
  c = base_config()
  c.model.name = "nope"
  with pytest.raises(ConfigError, match="unknown model 'nope'; valid choices: " + ", ".join(MODELS.names())):
    validate(c)


def test_missing_experiment_file_lists_experiments():
  with pytest.raises(ConfigError, match="experiments/ring8.py"):
    cli.load_experiment("experiments/nope.py")
