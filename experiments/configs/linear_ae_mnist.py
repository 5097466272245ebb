"""Linear autoencoder 784-K-784 on centred MNIST: converges to the PCA subspace.

The config lives in ``vae_jax/configs/linear_ae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.linear_ae_mnist import get_config  # noqa: F401
