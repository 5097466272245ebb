"""Test-wide JAX settings: explicit broadcasting only."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
