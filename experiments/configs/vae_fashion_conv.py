"""Convolutional VAE on Fashion-MNIST (conv 32-64, K = 16), Bernoulli likelihood on
dynamically binarized images, Adam 1e-3, batch 128.

The config lives in ``vae_jax/configs/vae_fashion_conv.py`` (installed with the package).
"""

from vae_jax.configs.vae_fashion_conv import get_config  # noqa: F401
