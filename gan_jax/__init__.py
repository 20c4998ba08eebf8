"""gan_jax: GAN experiments in JAX/Flax, from a 2-core laptop to a TPU pod."""

__version__ = "0.1.0"
