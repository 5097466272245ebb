"""Vector quantisation of the VQ-VAE; van den Oord, Vinyals & Kavukcuoglu 2017,
"Neural Discrete Representation Learning", §3.1-3.2.

N code vectors z_e [N, C] of an example are each replaced by their nearest entry of a
codebook e [M, C] (eq. 1-2); gradients pass the quantiser unchanged (straight-through,
§3.2); the codebook is moved towards the codes and the codes towards the codebook by
the two stop-gradient terms of eq. 3. Shapes: any leading dims ``...`` before
[N, C]; M = codebook size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def squared_distances(z_e: jax.Array, codebook: jax.Array) -> jax.Array:
    """||z_e,n - e_j||^2 for every code vector n and codebook entry j, by the difference
    itself (exact; not ||z||^2 - 2 z.e + ||e||^2, which cancels in float32).
    z_e: [..., N, C], codebook: [M, C] -> [..., N, M]."""
    codebook = codebook.reshape((1,) * (z_e.ndim - 1) + codebook.shape)
    diff = z_e[..., :, None, :] - codebook  # [..., N, M, C]
    return jnp.sum(jnp.square(diff), axis=-1)


def quantize(z_e: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(z_q, k): k_n = argmin_j ||z_e,n - e_j||^2 (eq. 1; ties to the lowest j) and
    z_q,n = e_{k_n} (eq. 2). z_e: [..., N, C], codebook: [M, C] -> ([..., N, C],
    int [..., N]). No gradient flows through k; z_q depends on the codebook only."""
    indices = jnp.argmin(squared_distances(z_e, codebook), axis=-1)
    return jnp.take(codebook, indices, axis=0), indices


def straight_through(z_e: jax.Array, z_q: jax.Array) -> jax.Array:
    """z_e + sg[z_q - z_e]: the value of z_q, the gradient of z_e (the straight-through
    estimator of §3.2: the decoder's gradient w.r.t. its input is copied to the
    encoder's output; the codebook gets none from the reconstruction). [..., N, C]."""
    return z_e + jax.lax.stop_gradient(z_q - z_e)


def codebook_loss(z_e: jax.Array, z_q: jax.Array) -> jax.Array:
    """||sg[z_e] - e||^2 summed over the N code vectors (eq. 3, second term): moves
    the chosen codebook entries towards the encoder's outputs, not the encoder.
    z_e, z_q: [..., N, C] -> [...]."""
    return jnp.sum(jnp.square(jax.lax.stop_gradient(z_e) - z_q), axis=(-2, -1))


def commitment_loss(z_e: jax.Array, z_q: jax.Array) -> jax.Array:
    """||z_e - sg[e]||^2 summed over the N code vectors (eq. 3, third term, before its
    weight beta): keeps the encoder's outputs near their codebook entries, without
    moving the codebook. z_e, z_q: [..., N, C] -> [...]."""
    return jnp.sum(jnp.square(z_e - jax.lax.stop_gradient(z_q)), axis=(-2, -1))


def usage_statistics(indices: jax.Array, codebook_size: int) -> dict[str, jax.Array]:
    """Codebook use over a batch of indices: ``perplexity`` = exp(H(p)), p_j the share
    of the code vectors assigned to entry j (M if all are used equally, 1 if one
    takes all; 0 log 0 = 0), and ``dead_codes`` = the share of the M entries no code
    vector of the batch chose. indices: int [...] (all pooled) -> scalars."""
    one_hot = jax.nn.one_hot(indices.reshape(-1), codebook_size)  # [B*N, M]
    usage = jnp.mean(one_hot, axis=0)  # [M], sums to 1
    safe = jnp.where(usage > 0, usage, 1.0)  # log 1 = 0 where usage = 0
    entropy = -jnp.sum(usage * jnp.log(safe))
    return {
        "perplexity": jnp.exp(entropy),
        "dead_codes": jnp.mean((usage == 0).astype(jnp.float32)),
    }
