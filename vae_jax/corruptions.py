"""Input corruptions of the denoising autoencoder, as per-example pure functions.

``corrupt(name, key, x, level)``: x: [D] -> x_tilde: [D]; the same key gives the same
output. Vincent et al. 2008, §2.3 (masking, salt-and-pepper), Vincent et al. 2010,
§4.2 (additive isotropic Gaussian). Vmap with split keys for a batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def additive_gaussian(key: jax.Array, x: jax.Array, level) -> jax.Array:
    """x_tilde = x + sigma * eps, eps ~ N(0, I), sigma = level (not clipped). x: [D]."""
    return x + level * jax.random.normal(key, x.shape, x.dtype)


def masking(key: jax.Array, x: jax.Array, level) -> jax.Array:
    """Each pixel independently set to 0 with probability level (expected fraction
    zeroed). x: [D]."""
    hit = jax.random.bernoulli(key, level, x.shape)
    return jnp.where(hit, jnp.zeros_like(x), x)


def salt_and_pepper(key: jax.Array, x: jax.Array, level) -> jax.Array:
    """Each pixel with probability level set to 0 or 1 (a fair coin). x: [D]."""
    hit_key, value_key = jax.random.split(key)
    hit = jax.random.bernoulli(hit_key, level, x.shape)
    value = jax.random.bernoulli(value_key, 0.5, x.shape).astype(x.dtype)
    return jnp.where(hit, value, x)


CORRUPTIONS = {
    "gaussian": additive_gaussian,
    "masking": masking,
    "salt_and_pepper": salt_and_pepper,
}


def corrupt(name: str, key: jax.Array, x: jax.Array, level) -> jax.Array:
    """x_tilde ~ q(x_tilde | x) for the named corruption. x: [D] -> [D]."""
    if name not in CORRUPTIONS:
        raise ValueError(
            f"Unknown corruption {name!r}; choose one of {sorted(CORRUPTIONS)}."
        )
    return CORRUPTIONS[name](key, x, level)


def psnr(x: jax.Array, y: jax.Array, peak: float = 1.0) -> jax.Array:
    """Peak signal-to-noise ratio 10 log10(peak^2 / mean((x - y)^2)) in dB. x, y: [D]."""
    return 10.0 * jnp.log10(peak**2 / jnp.mean(jnp.square(x - y)))
