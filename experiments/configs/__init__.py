"""Config files for ``python -m experiments.run --config=...``: re-exports of ``vae_jax.configs``."""
