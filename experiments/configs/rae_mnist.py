"""RAE-L2 784-512-256-20 on MNIST: squared error + 1e-4 ||z||^2 / 2 + 1e-7 ||theta_dec||^2.

The config lives in ``vae_jax/configs/rae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.rae_mnist import get_config  # noqa: F401
