"""beta-TCVAE, MLP 784-400-10 on MNIST, beta = 6 (Chen et al. 2018).

The config lives in ``vae_jax/configs/tcvae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.tcvae_mnist import get_config  # noqa: F401
