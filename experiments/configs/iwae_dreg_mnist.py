"""IWAE with DReG gradients (Tucker et al. 2019) on MNIST; the IWAE variants of
Rainforth et al. 2018 with --config.objective.name=miwae | piwae | ciwae.

The config lives in ``vae_jax/configs/iwae_dreg_mnist.py`` (installed with the package).
"""

from vae_jax.configs.iwae_dreg_mnist import get_config  # noqa: F401
