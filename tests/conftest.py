"""Test-wide settings: explicit broadcasting only; logging and the plot backend as
the entry points set them."""

import jax

from vae_jax import runtime

jax.config.update("jax_numpy_rank_promotion", "raise")
runtime.configure()
