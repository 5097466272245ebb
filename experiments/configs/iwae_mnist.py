"""Burda, Grosse & Salakhutdinov 2015 (IWAE), §5: MNIST, dynamically binarized.

The config lives in ``vae_jax/configs/iwae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.iwae_mnist import get_config  # noqa: F401
