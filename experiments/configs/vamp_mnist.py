"""MLP VAE 784-400-20 with a VampPrior (500 pseudo-inputs) on MNIST.

The config lives in ``vae_jax/configs/vamp_mnist.py`` (installed with the package).
"""

from vae_jax.configs.vamp_mnist import get_config  # noqa: F401
