"""One-class anomaly detection on MNIST (Ruff et al. 2018 protocol), AE and VAE scores.

The config lives in ``vae_jax/configs/anomaly_mnist.py`` (installed with the package).
"""

from vae_jax.configs.anomaly_mnist import get_config  # noqa: F401
