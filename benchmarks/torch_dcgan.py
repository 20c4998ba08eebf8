"""PyTorch CPU twin of the project's DCGAN train step, for timing against the JAX implementation.

Mirrors gan_jax/models/dcgan.py layer for layer (NCHW, float32) and one iteration of
gan_jax.train.kinds.gan.train_step with n_critic = 1, no EMA and no regularizer:

G: Linear(z_dim, 4*4*c, no bias), c = width * 2**(n-1), n = log2(resolution / 4) -> [B, c, 4, 4]
   -> BN -> ReLU, then n stride-2 ConvTranspose2d (no bias) halving the channels, the last one
   to `channels`, BN + ReLU after each but the last, tanh at the end.
D: n stride-2 Conv2d (no bias) with width, 2*width, ... channels, BN on every layer but the first
   (before the LeakyReLU(0.2)), flatten, Linear(4*4*c_last, 1, no bias) -> logits [B].
Weights ~ N(0, 0.02), BN weight ~ N(1, 0.02), BN bias 0, BN eps 1e-5 and momentum 0.1 (torch's
convention; flax's momentum 0.9). z ~ U[-1, 1]. Non-saturating logistic loss, Adam(2e-4, 0.5, 0.999).
Two loops (`--loop`):
- `twin` (default): one iteration = one D update (fake from G in train mode without gradient) then
  one G update (fresh z, D's parameters frozen so only G's gradient is computed), as the JAX step
  does by default.
- `canonical`: the loop of the DCGAN example in pytorch/examples (main.py), which most PyTorch
  DCGAN code copies: one G forward per iteration; D's real and fake passes each with its own
  backward, the fake detached; D's update; then G's update through the updated D on the same fake,
  with G's graph kept from the first forward and D's parameters left trainable (so the G pass also
  computes D's weight gradients, which the next iteration's zero_grad discards). The JAX step with
  `train.reuse_fake` computes the same algorithm.
The real batch is one fixed random tensor: the benchmark measures compute, not input.

With k = 4 the padding equals flax's "SAME" exactly; with an odd kernel (the paper's 5) flax pads
asymmetrically (one more pixel after for Conv, before for ConvTranspose) where torch pads
symmetrically, so the output is shifted by a pixel: same shapes, parameters and FLOPs.

Run:  python benchmarks/torch_dcgan.py [--loop twin|canonical --resolution 64 --batch 64 --width 64
                                        --kernel-size 4 --steps 10 --warmup 3 --threads N --channels-last]
It prints one line of JSON on stdout (progress goes to stderr). scripts/benchmark.py
--compare-torch calls it in a subprocess. torch is a dependency of this script only, never of
the gan_jax package.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gan_jax.procinfo import peak_rss_mb, rss_stage  # noqa: E402  (standard library only: no JAX here)


def num_stages(resolution: int) -> int:
  n = math.log2(resolution / 4)
  if resolution < 8 or n != int(n):
    raise SystemExit(f"DCGAN needs a resolution of 4·2^n (8, 16, 32, 64, 128...), got {resolution}")
  return int(n)


def conv_padding(k: int) -> int:
  """Padding of a stride-2 Conv2d whose output is exactly half of an even input."""
  return (k - 1) // 2


def transpose_padding(k: int) -> tuple[int, int]:
  """(padding, output_padding) of a stride-2 ConvTranspose2d whose output is exactly twice its input:
  out = 2(n-1) - 2p + k + op = 2n  <=>  op = 2p + 2 - k."""
  p = (k - 1) // 2
  op = 2 * p + 2 - k
  assert 0 <= op < 2, (k, p, op)
  return p, op


def batch_norm(c: int) -> nn.BatchNorm2d:
  return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class Generator(nn.Module):

  def __init__(self, resolution: int, channels: int, width: int, kernel_size: int, z_dim: int,
               memory_format: torch.memory_format = torch.contiguous_format):
    super().__init__()
    n = num_stages(resolution)
    c = width * 2 ** (n - 1)
    self.c0 = c
    self.memory_format = memory_format
    self.fc = nn.Linear(z_dim, 4 * 4 * c, bias=False)
    self.bn0 = batch_norm(c)
    p, op = transpose_padding(kernel_size)
    layers: list[nn.Module] = []
    for i in range(n):
      c_out = c // 2 if i < n - 1 else channels
      layers.append(nn.ConvTranspose2d(c, c_out, kernel_size, stride=2, padding=p, output_padding=op, bias=False))
      if i < n - 1:
        layers += [batch_norm(c_out), nn.ReLU()]
      c = c_out
    self.convs = nn.Sequential(*layers)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    x = self.fc(z).reshape(-1, self.c0, 4, 4).contiguous(memory_format=self.memory_format)
    x = F.relu(self.bn0(x))
    return torch.tanh(self.convs(x))


class Discriminator(nn.Module):

  def __init__(self, resolution: int, channels: int, width: int, kernel_size: int):
    super().__init__()
    n = num_stages(resolution)
    p = conv_padding(kernel_size)
    layers: list[nn.Module] = []
    c_in = channels
    for i in range(n):
      c_out = width * 2**i
      layers.append(nn.Conv2d(c_in, c_out, kernel_size, stride=2, padding=p, bias=False))
      if i:
        layers.append(batch_norm(c_out))
      layers.append(nn.LeakyReLU(0.2))
      c_in = c_out
    self.convs = nn.Sequential(*layers)
    self.fc = nn.Linear(4 * 4 * c_in, 1, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    # reshape (not view): under channels_last the feature map is not contiguous in NCHW order.
    return self.fc(self.convs(x).reshape(x.shape[0], -1))[:, 0]


def init_weights(m: nn.Module) -> None:
  if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.normal_(m.weight, 0.0, 0.02)
  elif isinstance(m, nn.BatchNorm2d):
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)


def count_params(m: nn.Module) -> int:
  return sum(p.numel() for p in m.parameters())


def check_shapes(g: Generator, d: Discriminator, args: argparse.Namespace) -> None:
  """Every ConvTranspose2d doubles and every Conv2d halves the spatial size, exactly."""
  with torch.no_grad():
    x = torch.zeros(2, g.c0, 4, 4)
    for layer in g.convs:
      y = layer(x)
      if isinstance(layer, nn.ConvTranspose2d):
        assert y.shape[-2:] == (2 * x.shape[-2], 2 * x.shape[-1]), (layer, x.shape, y.shape)
      x = y
    assert x.shape == (2, args.channels, args.resolution, args.resolution), x.shape
    for layer in d.convs:
      y = layer(x)
      if isinstance(layer, nn.Conv2d):
        assert y.shape[-2:] == (x.shape[-2] // 2, x.shape[-1] // 2), (layer, x.shape, y.shape)
      x = y
    assert x.shape[-2:] == (4, 4), x.shape


LOOPS = ("twin", "canonical")


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--loop", choices=LOOPS, default="twin",
                  help="twin: the JAX step's algorithm; canonical: pytorch/examples' DCGAN loop (one G forward)")
  ap.add_argument("--resolution", type=int, default=64)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--kernel-size", type=int, default=4)
  ap.add_argument("--z-dim", type=int, default=100)
  ap.add_argument("--channels", type=int, default=3)
  ap.add_argument("--steps", type=int, default=10, help="timed iterations")
  ap.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
  ap.add_argument("--threads", type=int, default=os.cpu_count())
  ap.add_argument("--channels-last", action="store_true", help="torch.channels_last for models and inputs")
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  if args.steps < 1:
    raise SystemExit("--steps must be at least 1")

  stages = {}
  rss_stage(stages, "start")   # the interpreter with torch imported
  torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  fmt = torch.channels_last if args.channels_last else torch.contiguous_format

  g = Generator(args.resolution, args.channels, args.width, args.kernel_size, args.z_dim, fmt)
  d = Discriminator(args.resolution, args.channels, args.width, args.kernel_size)
  g.apply(init_weights)
  d.apply(init_weights)
  check_shapes(g, d, args)
  g.to(memory_format=fmt).train()
  d.to(memory_format=fmt).train()
  g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = (torch.rand(args.batch, args.channels, args.resolution, args.resolution) * 2 - 1).to(memory_format=fmt)

  def latents() -> torch.Tensor:
    return torch.rand(args.batch, args.z_dim) * 2 - 1

  def canonical() -> tuple[float, float]:
    # pytorch/examples dcgan/main.py, with BCE on sigmoid outputs written as softplus on logits.
    d_opt.zero_grad(set_to_none=True)
    d_real = F.softplus(-d(real)).mean()
    d_real.backward()
    fake = g(latents())
    d_fake = F.softplus(d(fake.detach())).mean()
    d_fake.backward()
    d_opt.step()
    g_opt.zero_grad(set_to_none=True)
    g_loss = F.softplus(-d(fake)).mean()
    g_loss.backward()
    g_opt.step()
    return d_real.item() + d_fake.item(), g_loss.item()

  def twin() -> tuple[float, float]:
    # D step: G's forward in train mode (its BN running stats move, unlike JAX where they are
    # dropped; this costs nothing extra) without a graph.
    with torch.no_grad():
      fake = g(latents())
    d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    # G step: fresh z; D frozen so only G's weight gradients are computed.
    d.requires_grad_(False)
    g_loss = F.softplus(-d(g(latents()))).mean()
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    d.requires_grad_(True)
    return d_loss.item(), g_loss.item()

  iteration = canonical if args.loop == "canonical" else twin
  rss_stage(stages, "state")

  for i in range(args.warmup):
    t0 = time.perf_counter()
    iteration()
    print(f"warmup {i + 1}/{args.warmup}: {time.perf_counter() - t0:.3f}s", file=sys.stderr)
  times = []
  for i in range(args.steps):
    t0 = time.perf_counter()
    d_loss, g_loss = iteration()
    times.append(time.perf_counter() - t0)
    print(f"step {i + 1}/{args.steps}: {times[-1]:.3f}s", file=sys.stderr)
  rss_stage(stages, "steps")
  if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
    raise SystemExit(f"non-finite losses: d_loss={d_loss} g_loss={g_loss}")

  median = statistics.median(times)
  print(json.dumps({
      "framework": "torch",
      "loop": args.loop,
      "torch_version": torch.__version__,
      "threads": args.threads,
      "resolution": args.resolution,
      "batch": args.batch,
      "width": args.width,
      "kernel_size": args.kernel_size,
      "channels_last": args.channels_last,
      "step_times_s": times,
      "median_step_s": median,
      "images_per_s": args.batch / median,
      "peak_rss_mb": peak_rss_mb(),
      "rss_stages": stages,
      "g_params": count_params(g),
      "d_params": count_params(d),
      "d_loss": d_loss,
      "g_loss": g_loss,
  }))


if __name__ == "__main__":
  main()
