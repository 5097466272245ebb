"""The one-layer VampPrior VAE of Tomczak & Welling 2018 on MNIST at the setting of the
authors' code (gated 300-300, K = 40, C = 500, AdamNormGrad 5e-4, batch 100).

The config lives in ``vae_jax/configs/vamp_paper_mnist.py`` (installed with the package).
"""

from vae_jax.configs.vamp_paper_mnist import get_config  # noqa: F401
