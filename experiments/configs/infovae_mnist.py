"""InfoVAE with MMD (MMD-VAE), MLP 784-400-20 on MNIST (Zhao et al. 2017).

The config lives in ``vae_jax/configs/infovae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.infovae_mnist import get_config  # noqa: F401
