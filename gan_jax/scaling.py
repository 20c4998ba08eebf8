"""The scaling plan: what each paper baseline costs, and a model of its step time on accelerators
we cannot measure here.

Measured (on the abstract program, nothing runs): parameters of G and D, and XLA's FLOP count
of one full train step (every D update, the G update, penalties, EMA, optimizers) lowered at two
batch sizes, which gives the FLOPs per training image (the slope) and the batch-independent
part (optimizer and EMA updates). The model then states its assumptions:

- compute time = step FLOPs / (chips x peak x MFU), with `peak` the chip's dense bf16 rate (the
  rate mixed precision would run at) and MFU 40 %, a typical figure for convolutional GANs;
- the gradient all-reduce of data parallelism moves 2 (n - 1) / n x the gradient bytes per chip
  (ring model; float32 gradients of D for each of its updates and of G once per step), at the
  chip's interconnect bandwidth, not overlapped with compute (a conservative bound);
- scaling efficiency = compute time / (compute time + all-reduce time).
Every figure is a plan, not a measurement: the hardware table below gives the peak and bandwidth
assumed for each platform.
"""
from __future__ import annotations

import dataclasses
import os

import jax

from gan_jax import cli


@dataclasses.dataclass(frozen=True)
class Platform:
  name: str
  chips: int
  peak_tflops: float     # dense bf16 per chip
  link_gbytes: float     # interconnect bandwidth per chip and direction, GB/s
  source: str


PLATFORMS = (
    Platform("TPU v4, 16 chips (v4-32)", 16, 275.0, 300.0,
             "Google Cloud TPU v4 spec: 275 TFLOP/s bf16, 2400 Gbps ICI"),
    Platform("TPU v5p, 64 chips (v5p-128)", 64, 459.0, 600.0,
             "Google Cloud TPU v5p spec: 459 TFLOP/s bf16, 4800 Gbps ICI"),
    Platform("8x H100 SXM (one node)", 8, 989.0, 450.0,
             "NVIDIA H100 SXM: 989 TFLOP/s dense bf16, NVLink 900 GB/s both ways"),
)
MFU = 0.40
BASELINES = ("dcgan_cifar10", "dcgan_celeba64", "sngan_cifar10", "sngan_stl10", "sagan_imagenet128", "biggan_cifar10",
             "biggan_imagenet128", "stylegan2_ffhq256", "r3gan_cifar10", "r3gan_ffhq64", "r3gan_ffhq256",
             "r3gan_imagenet32", "r3gan_imagenet64")


def _step_flops(gan, state, spec, step_key, batch: int) -> float:
  """XLA's FLOP count of the lowered (not compiled) train step at `batch`."""
  from gan_jax.benchmark import abstract_batch, cost_flops
  step = jax.jit(gan.step_for(gan.phase_at(0)))
  return cost_flops(step.lower(state, abstract_batch(gan, spec, batch_size=batch), step_key))


def count(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def baseline_costs(name: str) -> dict:
  """Parameters, FLOPs per image and per step, gradient bytes per step of experiment `name` at
  its paper configuration and batch size."""
  from gan_jax.benchmark import data_spec
  from gan_jax.train.loop import setup
  config = cli.load_experiment(os.path.join(cli.EXPERIMENTS_DIR, f"{name}.py"))
  spec, _ = data_spec(config)
  gan, _, init, init_key, step_key, _ = setup(config, spec)
  state = jax.eval_shape(init, init_key)
  f2, f4 = (_step_flops(gan, state, spec, step_key, b) for b in (2, 4))
  per_image = (f4 - f2) / 2              # per image of the batch (all n_critic D batches included)
  fixed = f2 - 2 * per_image
  params_g, params_d = count(state.g_params), count(state.d_params)
  d_updates = config.n_critic
  return {"experiment": name, "model": config.model.name, "resolution": spec.shape[0], "batch": config.batch_size,
          "params_g": params_g, "params_d": params_d, "d_updates_per_step": d_updates,
          "flops_per_image": per_image, "flops_fixed": fixed,
          "flops_per_step": fixed + per_image * config.batch_size,
          "allreduce_bytes_per_step": 4 * (params_d * d_updates + params_g)}


def model_step(costs: dict, platform: Platform, mfu: float = MFU) -> dict:
  n = platform.chips
  compute = costs["flops_per_step"] / (n * platform.peak_tflops * 1e12 * mfu)
  comm = 2 * (n - 1) / n * costs["allreduce_bytes_per_step"] / (platform.link_gbytes * 1e9)
  return {"platform": platform.name, "per_chip_batch": costs["batch"] / n, "compute_ms": compute * 1e3,
          "allreduce_ms": comm * 1e3, "step_ms": (compute + comm) * 1e3, "efficiency": compute / (compute + comm),
          "images_per_s": costs["batch"] / (compute + comm)}


def markdown(rows: list[dict]) -> str:
  lines = ["| experiment | res | batch | params G / D | GFLOP per image (train step) | all-reduce MB per step | " +
           " | ".join(f"{p.name}: step ms (efficiency)" for p in PLATFORMS) + " |",
           "|---" * (6 + len(PLATFORMS)) + "|"]
  for r in rows:
    models = [model_step(r, p) for p in PLATFORMS]
    lines.append(f"| {r['experiment']} | {r['resolution']} | {r['batch']} | {r['params_g'] / 1e6:.1f}M / "
                 f"{r['params_d'] / 1e6:.1f}M | {r['flops_per_image'] / 1e9:.1f} | "
                 f"{r['allreduce_bytes_per_step'] / 2**20:.0f} | " +
                 " | ".join(f"{m['step_ms']:.1f} ({m['efficiency']:.0%})" for m in models) + " |")
  return "\n".join(lines)
