"""MLP autoencoder 784-512-256-32 on MNIST with mean squared reconstruction.

The config lives in ``vae_jax/configs/ae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.ae_mnist import get_config  # noqa: F401
