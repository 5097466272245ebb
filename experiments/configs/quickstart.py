"""Quickstart: a VAE on scikit-learn's bundled digits; under a minute on 2 CPU cores.

The config lives in ``vae_jax/configs/quickstart.py`` (installed with the package).
"""

from vae_jax.configs.quickstart import get_config  # noqa: F401
