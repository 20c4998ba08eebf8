"""Class conditioning, noise streams and generator regularizers in the train step; sampling
with labels and truncation; the digit Fréchet distance."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import regularizers as regs
from gan_jax.losses import LOSSES
from gan_jax.metrics.frechet import frechet_distance, gaussian_stats
from gan_jax.sampling import class_grid
from gan_jax.train.kinds.gan import GAN, train_step


class CondGNamed(nn.Module):
  """A label-conditional generator with a noise input and mapping/synthesis halves."""

  def setup(self):
    self.map = nn.Dense(8)
    self.embed = nn.Embed(3, 8)
    self.synth = nn.Dense(16)
    self.synth2 = nn.Dense(16)

  def mapping(self, z, y=None, train=True):
    w = self.map(z) + (self.embed(y) if y is not None else 0.0)
    return jnp.repeat(w[:, None], 2, axis=1)

  def synthesis(self, ws, train=True):
    x = self.synth(ws[:, 0]) + self.synth2(jnp.tanh(ws[:, 1]))
    if train:
      x = x + 0.01 * jax.random.normal(self.make_rng("noise"), x.shape)
    return jnp.tanh(x).reshape(-1, 4, 4, 1)

  def __call__(self, z, y=None, train=True):
    return self.synthesis(self.mapping(z, y, train), train)


class CondD(nn.Module):
  """Projection discriminator (Miyato & Koyama 2018): psi(phi(x)) + <embed(y), phi(x)>."""

  @nn.compact
  def __call__(self, x, y=None, train=True):
    h = nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1)))
    out = nn.Dense(1)(h)[:, 0]
    if y is not None:
      out = out + jnp.sum(nn.Embed(3, 8)(y) * h, axis=-1)
    return out


def _gan(**kw):
  args = dict(generator=CondGNamed(), discriminator=CondD(), loss=LOSSES.get("hinge")(),
              g_tx=optax.adam(1e-3), d_tx=optax.adam(1e-3), z_dim=4, z_dist="normal", batch_size=6,
              num_classes=3)
  args.update(kw)
  return GAN(**args)


def _batch(labels=(0, 1, 2, 0, 1, 2)):
  x = jax.random.uniform(jax.random.PRNGKey(5), (1, 6, 4, 4, 1), minval=-1, maxval=1)
  return {"x": x, "label": jnp.asarray([labels], jnp.int32)}


def test_conditional_step_reads_the_real_labels():
  gan = _gan()
  state = gan.init(jax.random.PRNGKey(0), (4, 4, 1))
  assert "embed" in state.g_params and "Embed_0" in state.d_params
  key = jax.random.PRNGKey(1)
  a, ma = train_step(gan, state, _batch(), key)
  b, mb = train_step(gan, state, _batch((2, 2, 2, 2, 2, 2)), key)
  assert float(ma["d_real"]) != float(mb["d_real"])           # D saw the real labels
  # Same labels: same result (pure function); an unconditional GAN ignores the labels.
  a2, _ = train_step(gan, state, _batch(), key)
  np.testing.assert_array_equal(jax.tree.leaves(a.d_params)[0], jax.tree.leaves(a2.d_params)[0])
  plain = _gan(num_classes=0)
  s0 = plain.init(jax.random.PRNGKey(0), (4, 4, 1))
  assert "Embed_0" not in s0.d_params
  u1, _ = train_step(plain, s0, _batch(), key)
  u2, _ = train_step(plain, s0, _batch((2, 2, 2, 2, 2, 2)), key)
  np.testing.assert_array_equal(jax.tree.leaves(u1.d_params)[0], jax.tree.leaves(u2.d_params)[0])


def test_fake_labels_are_uniform_over_the_classes():
  gan = _gan()
  y = np.asarray(gan.labels(jax.random.PRNGKey(0), 30_000))
  counts = np.bincount(y, minlength=3)
  assert set(np.unique(y)) == {0, 1, 2}
  np.testing.assert_allclose(counts / 30_000, 1 / 3, atol=0.01)


def test_fake_labels_real_pairs_each_fake_with_its_reals_label():
  """model.fake_labels="real" (the official R3GAN loop): D's and G's fakes carry the labels of the
  real batch of their update. Equal to feeding those labels as draws; unequal to uniform labels."""
  batch, key = _batch(), jax.random.PRNGKey(1)
  labels = batch["label"]
  state = _gan().init(jax.random.PRNGKey(0), (4, 4, 1))
  paired, _ = train_step(_gan(fake_labels="real"), state, batch, key)
  fed, _ = train_step(_gan(), state, {**batch, "draws": {"d_labels": labels, "g_labels": labels[0]}}, key)
  uniform, _ = train_step(_gan(), state, batch, key)
  for a, b in zip(jax.tree.leaves((paired.g_params, paired.d_params)), jax.tree.leaves((fed.g_params, fed.d_params))):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(jax.tree.leaves(paired.g_params["embed"])[0], jax.tree.leaves(uniform.g_params["embed"])[0])


class PlainG(nn.Module):
  """A generator without noise inputs: its output depends on z alone."""

  @nn.compact
  def __call__(self, z, y=None, train=True):
    return jnp.tanh(nn.Dense(16)(z)).reshape(-1, 4, 4, 1)


def test_fed_latents_replace_the_keys_draws():
  """batch["draws"] d_z and g_z: with them the step no longer depends on the key (G has no other
  randomness); without them it does."""
  gan = _gan(generator=PlainG(), num_classes=0)
  state = gan.init(jax.random.PRNGKey(0), (4, 4, 1))
  z = jax.random.normal(jax.random.PRNGKey(7), (2, 6, 4))
  fed = {**_batch(), "draws": {"d_z": z[:1], "g_z": z[1]}}
  k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
  a, b = train_step(gan, state, fed, k1)[0], train_step(gan, state, fed, k2)[0]
  for x, y in zip(jax.tree.leaves(a.g_params), jax.tree.leaves(b.g_params)):
    np.testing.assert_array_equal(x, y)
  c, d = train_step(gan, state, _batch(), k1)[0], train_step(gan, state, _batch(), k2)[0]
  assert not np.array_equal(jax.tree.leaves(c.g_params)[0], jax.tree.leaves(d.g_params)[0])


def test_fed_path_length_noise_is_the_draw_it_replaces():
  synth = lambda w: jnp.tanh(w[:, :1, :16]).reshape(-1, 4, 4, 1)  # noqa: E731
  ws = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 16))
  key = jax.random.PRNGKey(4)
  y = jax.random.normal(key, (3, 4, 4, 1))
  np.testing.assert_array_equal(regs.path_lengths(synth, ws, key), regs.path_lengths(synth, ws, None, y))
  assert not np.allclose(regs.path_lengths(synth, ws, key), regs.path_lengths(synth, ws, None, 2 * y))


def test_orthogonal_regularization_gradient_is_biggans():
  """BigGAN-PyTorch adds 2 (W W^T ⊙ (1 - I)) W to each weight's gradient, W = [out, in]."""
  rng = np.random.RandomState(0)
  params = {"conv": {"kernel": rng.randn(3, 3, 4, 5).astype(np.float32), "bias": rng.randn(5).astype(np.float32)},
            "shared": {"embedding": rng.randn(10, 6).astype(np.float32)}}
  grads = jax.jit(jax.grad(regs.orthogonal))(params)
  w = params["conv"]["kernel"].reshape(-1, 5).T.astype(np.float64)            # [out, in]
  ref = 2 * ((w @ w.T) * (1 - np.eye(5))) @ w
  np.testing.assert_allclose(grads["conv"]["kernel"].reshape(-1, 5).T, ref, rtol=1e-4)
  assert not np.any(grads["conv"]["bias"]) and not np.any(grads["shared"]["embedding"])
  # Orthogonal rows cost nothing.
  q = np.linalg.qr(rng.randn(6, 6))[0][:, :4].T.astype(np.float32)           # 4 orthonormal rows
  assert float(jax.jit(regs.orthogonal)({"k": q.T})) < 1e-10


def test_path_lengths_of_a_linear_synthesis():
  """synthesis(ws) = einsum(ws, A): J^T y is known in closed form."""
  rng = np.random.RandomState(0)
  a = rng.randn(3, 5, 4 * 4).astype(np.float32)                                # [L, D, pixels]
  synth = lambda ws: jnp.einsum("bld,ldp->bp", ws, a).reshape(-1, 4, 4, 1)  # noqa: E731
  ws = jnp.asarray(rng.randn(2, 3, 5), jnp.float32)
  key = jax.random.PRNGKey(7)
  lengths = jax.jit(lambda ws, key: regs.path_lengths(synth, ws, key))(ws, key)
  y = np.asarray(jax.random.normal(key, (2, 4, 4, 1))).reshape(2, -1) / 4.0
  g = np.einsum("ldp,bp->bld", a, y)
  np.testing.assert_allclose(lengths, np.sqrt((g ** 2).sum(2).mean(1)), rtol=1e-5)


def test_path_length_penalty_is_lazy_and_tracks_the_mean_length():
  reg = regs.Regularization(pl_weight=2.0, pl_every=2, pl_decay=0.01, pl_batch_shrink=2)
  gan = _gan(reg=reg)
  state = gan.init(jax.random.PRNGKey(0), (4, 4, 1))
  assert float(state.reg_state["pl_mean"]) == 0.0
  step = jax.jit(lambda s, b, k: train_step(gan, s, b, k))
  s1, m1 = step(state, _batch(), jax.random.PRNGKey(1))      # step 0: penalty on
  assert float(m1["pl_length"]) > 0 and float(m1["pl_penalty"]) > 0
  np.testing.assert_allclose(s1.reg_state["pl_mean"], 0.01 * float(m1["pl_length"]), rtol=1e-5)
  s2, m2 = step(s1, _batch(), jax.random.PRNGKey(1))         # step 1: skipped, state kept
  assert float(m2["pl_penalty"]) == 0.0
  np.testing.assert_array_equal(s2.reg_state["pl_mean"], s1.reg_state["pl_mean"])
  # The penalty changes G's update (and only G's).
  plain = _gan()
  p1, _ = jax.jit(lambda s, b, k: train_step(plain, s, b, k))(plain.init(jax.random.PRNGKey(0), (4, 4, 1)), _batch(),
                                                             jax.random.PRNGKey(1))
  assert not np.allclose(p1.g_params["synth"]["kernel"], s1.g_params["synth"]["kernel"])
  np.testing.assert_allclose(p1.d_params["Dense_0"]["kernel"], s1.d_params["Dense_0"]["kernel"])


def test_truncated_latents_and_class_grid():
  gan = _gan(truncation_mode="z")
  z = np.asarray(gan.latents(jax.random.PRNGKey(0), 4000, truncation=0.5))
  assert np.abs(z).max() <= 0.5 and z.std() > 0.2
  assert np.abs(np.asarray(_gan().latents(jax.random.PRNGKey(0), 4000, truncation=0.5))).max() > 2   # no "z" mode
  labels, per_row = class_grid(64, 10)
  assert per_row == 6 and len(labels) == 60 and list(labels[:7]) == [0] * 6 + [1]
  labels, per_row = class_grid(64, 1000)
  assert per_row == 4 and labels.max() == 15


def test_frechet_distance_closed_forms():
  rng = np.random.RandomState(0)
  # Diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
  s1, s2 = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
  mu1, mu2 = rng.randn(6), rng.randn(6)
  ref = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  np.testing.assert_allclose(frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)), ref, rtol=1e-10)
  # A rotated pair keeps the distance (it only depends on the eigen-structure when they commute).
  q = np.linalg.qr(rng.randn(6, 6))[0]
  np.testing.assert_allclose(frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T), ref,
                             rtol=1e-8)
  # Same statistics: 0, also for a singular covariance (the eps fallback).
  x = rng.randn(50, 8)
  x[:, 0] = 0
  mu, sigma = gaussian_stats(x)
  assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
  with pytest.raises(ValueError, match="shape"):
    frechet_distance(mu, sigma, mu[:3], sigma[:3, :3])


def test_digit_fd_separates_real_digits_from_noise():
  from gan_jax.config import base_config
  from gan_jax.data import build_dataset
  c = base_config("dcgan")
  c.data.resolution = 16
  ds = build_dataset(c.data)
  real = np.stack([ds.source[i]["x"] for i in range(0, 1797, 2)])
  noise = np.random.RandomState(0).uniform(-1, 1, real.shape).astype(np.float32)
  fd_real, fd_noise = ds.evaluate(real)["digit_fd"], ds.evaluate(noise)["digit_fd"]
  assert fd_real < 0.02 * fd_noise, (fd_real, fd_noise)
  # Colour samples are averaged over channels: a grey RGB copy scores the same.
  np.testing.assert_allclose(ds.evaluate(np.repeat(real, 3, axis=-1))["digit_fd"], fd_real, rtol=1e-5)


def test_digit_accuracy_counts_samples_read_as_their_label():
  """Given the labels samples were drawn for, digit_accuracy is the fraction the classifier reads as
  them: real digits with their own labels score the classifier's accuracy (trained on the other half
  plus these, so near 1), with labels shifted by one class 0 (a hand count: every label is wrong)
  unless misread as exactly that digit, with random labels about 0.1."""
  from gan_jax.config import base_config
  from gan_jax.data import build_dataset
  from gan_jax.data.digits import digit_images
  from gan_jax.metrics import digit_classifier
  c = base_config("dcgan")
  c.data.resolution = 16
  ds = build_dataset(c.data)
  assert ds.conditional_eval_metrics == ("digit_accuracy",)
  idx = np.arange(0, 1797, 2)
  real = np.stack([ds.source[i]["x"] for i in idx])
  labels = np.asarray([ds.source[i]["label"] for i in idx])
  out = ds.evaluate(real, labels=labels)
  assert set(out) == {"digit_fd", "digit_accuracy"}
  predict, _ = digit_classifier.cached_classifier("digits_16", lambda: digit_images(16))
  read = predict(real)
  assert out["digit_accuracy"] == np.mean(read == labels) > 0.95
  shifted = (labels + 1) % 10
  assert ds.evaluate(real, labels=shifted)["digit_accuracy"] == np.mean(read == shifted) < 0.05
  rand = np.random.RandomState(0).randint(0, 10, len(idx))
  assert abs(ds.evaluate(real, labels=rand)["digit_accuracy"] - 0.1) < 0.04   # binomial sd 0.01 at n = 899
  assert "digit_accuracy" not in ds.evaluate(real)
  with pytest.raises(ValueError, match="one label per sample"):
    ds.evaluate(real, labels=labels[:10])


def test_reuse_fake_step_is_the_one_forward_algorithm():
  """train.reuse_fake: D updates on G(z) (fed z and labels), then G's gradient is that forward's
  vjp of the gradient of G's loss through the *updated* D, at the same fakes. Compared with the
  direct computation: d_update on the same draws, then jax.grad of G's loss of the composite."""
  from gan_jax.train.kinds.gan import d_update
  batch, key = _batch(), jax.random.PRNGKey(3)
  z = jax.random.normal(jax.random.PRNGKey(7), (6, 4))
  y = jnp.asarray([2, 0, 1, 1, 0, 2], jnp.int32)
  fed = {**batch, "draws": {"d_z": z[None], "d_labels": y[None]}}
  plain = _gan(generator=PlainG(), loss=LOSSES.get("nonsaturating")())
  reuse = _gan(generator=PlainG(), loss=LOSSES.get("nonsaturating")(), reuse_fake=True)
  state = plain.init(jax.random.PRNGKey(0), (4, 4, 1))
  new, metrics = train_step(reuse, state, fed, key)

  after_d, _ = d_update(plain, state, batch["x"][0], jax.random.PRNGKey(11), real_labels=batch["label"][0],
                        draws={"z": z, "labels": y})
  for a, b in zip(jax.tree.leaves(new.d_params), jax.tree.leaves(after_d.d_params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

  def g_loss(g_params):
    fake = plain.generate(g_params, state.g_vars, z, y)[0]
    logits = plain.discriminate(after_d.d_params, after_d.d_vars, fake, y)[0]
    return plain.loss.g(jnp.zeros_like(logits), logits)

  loss, grads = jax.value_and_grad(g_loss)(state.g_params)
  updates, _ = plain.g_tx.update(grads, state.g_opt, state.g_params)
  expected = optax.apply_updates(state.g_params, updates)
  np.testing.assert_allclose(float(metrics["g_loss"]), float(loss), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(new.g_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # A second computation: the default step, whose G update makes a second forward, fed the same
  # latents and labels for G: for a G without noise or batch statistics that is the same algorithm.
  # (By default it draws fresh latents for G: a different algorithm.)
  default, _ = train_step(plain, state, {**fed, "draws": {**fed["draws"], "g_z": z, "g_labels": y}}, key)
  for a, b in zip(jax.tree.leaves(default.g_params), jax.tree.leaves(new.g_params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  fresh, _ = train_step(plain, state, fed, key)
  assert not np.allclose(jax.tree.leaves(fresh.g_params)[0], jax.tree.leaves(new.g_params)[0], rtol=1e-5)


@pytest.mark.parametrize("model,overrides,message", [
    ("stylegan2", {"reg.pl_weight": 2.0}, "train.reuse_fake does not combine with reg.pl_weight"),
    ("dcgan", {"grad_accum": 2}, "does not combine with grad_accum=2"),
])
def test_reuse_fake_refuses_what_it_cannot_compute(model, overrides, message):
  from gan_jax.config import base_config, validate
  from gan_jax.errors import ConfigError
  c = base_config(model)
  c.train.reuse_fake = True
  for k, v in overrides.items():
    section, _, leaf = k.rpartition(".")
    (c[section] if section else c)[leaf] = v
  with pytest.raises(ConfigError, match=message):
    validate(c)
  p = base_config("progan")
  assert "train" not in p   # progressive growing has no reuse_fake
