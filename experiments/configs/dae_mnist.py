"""Denoising autoencoder 784-256-64 on MNIST: reconstruct x from x + N(0, sigma^2 I).

The config lives in ``vae_jax/configs/dae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.dae_mnist import get_config  # noqa: F401
