"""Jittable batching: epoch permutations and batches, dynamic binarisation, and
zero-padded fixed-shape evaluation batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def epoch_permutation(key: jax.Array, epoch, num_examples: int) -> jax.Array:
    """Example order of ``epoch``: permutation(fold_in(key, epoch), N) -> [N] int32."""
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
    return perm.astype(jnp.int32)


def epoch_batches(
    key: jax.Array, epoch, num_examples: int, batch_size: int
) -> jax.Array:
    """The batches of ``epoch``: its permutation cut into [N // B, B] (tail dropped).

    Row j is the example indices of global step ``epoch * (N // B) + j``. ``epoch``
    may be traced.
    """
    steps_per_epoch = num_examples // batch_size
    perm = epoch_permutation(key, epoch, num_examples)
    return perm[: steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size)


def dynamic_binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """x ~ Bernoulli(x) per pixel (Salakhutdinov & Murray 2008); same shape, float32."""
    return jax.random.bernoulli(key, x).astype(jnp.float32)


def pad_to_batches(x: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """x: [N, D] -> (xb [nb, B, D] zero-padded, mask [nb, B] float32), nb = ceil(N/B).

    Fixed-shape batches for evaluation: no recompiles, no dropped examples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    num_batches, rest = -(-len(x) // batch_size), x.shape[1:]
    padded = np.zeros((num_batches * batch_size, *rest), x.dtype)
    padded[: len(x)] = x
    mask = (np.arange(num_batches * batch_size) < len(x)).astype(np.float32)
    xb = padded.reshape(num_batches, batch_size, *rest)
    return xb, mask.reshape(num_batches, batch_size)
