"""WAE-MMD, MLP 784-400-20 on MNIST grey levels (Tolstikhin et al. 2018).

The config lives in ``vae_jax/configs/wae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.wae_mnist import get_config  # noqa: F401
