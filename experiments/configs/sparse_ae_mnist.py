"""Sparse autoencoder 784-196-784 on MNIST: sigmoid code, target activation rho = 0.05.

The config lives in ``vae_jax/configs/sparse_ae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.sparse_ae_mnist import get_config  # noqa: F401
