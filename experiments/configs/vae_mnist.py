"""MLP VAE 784-400-20 on MNIST, Bernoulli likelihood, Adam 1e-3, batch 128.

The config lives in ``vae_jax/configs/vae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.vae_mnist import get_config  # noqa: F401
