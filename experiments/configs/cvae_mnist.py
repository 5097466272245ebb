"""Conditional VAE 784(+10)-400-20 on MNIST.

The config lives in ``vae_jax/configs/cvae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.cvae_mnist import get_config  # noqa: F401
