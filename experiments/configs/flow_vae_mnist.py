"""MLP VAE 784-400-20 on MNIST with a planar-flow posterior of L = 10 steps.

The config lives in ``vae_jax/configs/flow_vae_mnist.py`` (installed with the package).
"""

from vae_jax.configs.flow_vae_mnist import get_config  # noqa: F401
