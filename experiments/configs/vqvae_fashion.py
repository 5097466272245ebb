"""Convolutional VQ-VAE on Fashion-MNIST: 16 code vectors from 256 codebook entries.

The config lives in ``vae_jax/configs/vqvae_fashion.py`` (installed with the package).
"""

from vae_jax.configs.vqvae_fashion import get_config  # noqa: F401
