"""Reconstructions and prior samples as images (means of p(x|z))."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import models


def likelihood_mean(decoded: Mapping[str, jax.Array] | jax.Array) -> jax.Array:
    """E[x|z]: sigmoid(logits) for Bernoulli, the mean for Gaussian, the output for an AE."""
    if isinstance(decoded, Mapping):
        return (
            jax.nn.sigmoid(decoded["logits"])
            if "logits" in decoded
            else decoded["mean"]
        )
    return decoded


def reconstruct(model: nn.Module, params, x: jax.Array) -> jax.Array:
    """x: [B, D] -> E[x | z = code(x)]: [B, D] (the VAE decodes the posterior mean)."""
    if isinstance(model, models.VAE):
        mean, _ = model.apply(params, x, method="encode")
        return likelihood_mean(model.apply(params, mean, method="decode"))
    return model.apply(params, x)


def sample_prior(
    model: models.VAE, params, key: jax.Array, num_samples: int
) -> jax.Array:
    """Means of p(x|z) for z ~ N(0, I): [num_samples, D]."""
    z = jax.random.normal(key, (num_samples, model.latent_dim))
    return likelihood_mean(model.apply(params, z, method="decode"))


def decode_latents(model: nn.Module, params, z: jax.Array) -> jax.Array:
    """Means of p(x|z) (or AE outputs) for given codes z: [B, K] -> [B, D]."""
    return likelihood_mean(model.apply(params, jnp.asarray(z), method="decode"))
