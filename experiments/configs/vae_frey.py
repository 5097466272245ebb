"""VAE on Frey faces with a Gaussian likelihood (Kingma & Welling 2013, §5).

The config lives in ``vae_jax/configs/vae_frey.py`` (installed with the package).
"""

from vae_jax.configs.vae_frey import get_config  # noqa: F401
