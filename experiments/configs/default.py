"""Default configuration: every field the runner knows, with its symbol and unit.

The config lives in ``vae_jax/configs/default.py`` (installed with the package).
"""

from vae_jax.configs.default import get_config  # noqa: F401
