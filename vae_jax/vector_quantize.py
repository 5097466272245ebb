"""Vector quantisation of the VQ-VAE; van den Oord, Vinyals & Kavukcuoglu 2017,
"Neural Discrete Representation Learning", §3.1-3.2.

N code vectors z_e [N, C] of an example are each replaced by their nearest entry of a
codebook e [M, C] (eq. 1-2); gradients pass the quantiser unchanged (straight-through,
§3.2); the codebook is moved towards the codes and the codes towards the codebook by
the two stop-gradient terms of eq. 3, or, in place of the codebook term, by
exponential moving averages of the codes assigned to each entry (App. A.1:
``ema_codebook``, an optax transform fed exact batch statistics through
``statistics_carrier``). Shapes: any leading dims ``...`` before [N, C]; M = codebook
size.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


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


# ------------------------------------------------ exponential-moving-average codebook
CODEBOOK = "codebook"  # the codebook's parameter name, e: [M, C]
COUNT_PROBE = "count_probe"  # a zero parameter p: [M] that carries n by its gradient
LAPLACE_EPSILON = 1e-5  # epsilon of the smoothed counts (Sonnet's VectorQuantizerEMA)


def assignment_statistics(
    z_e: jax.Array, indices: jax.Array, codebook_size: int
) -> tuple[jax.Array, jax.Array]:
    """(n [M], s [M, C]) of all code vectors pooled: n_j = #{i : k_i = j}, the number
    assigned to entry j, and s_j = sum_{i : k_i = j} z_e,i, their sum (App. A.1).
    z_e: [..., N, C], indices: int [..., N] (from ``quantize``)."""
    flat = z_e.reshape(-1, z_e.shape[-1])  # [B * N, C]
    segments = indices.reshape(-1)
    counts = jax.ops.segment_sum(
        jnp.ones_like(segments, z_e.dtype), segments, num_segments=codebook_size
    )
    sums = jax.ops.segment_sum(flat, segments, num_segments=codebook_size)
    return counts, sums


def statistics_carrier(
    codebook: jax.Array, count_probe: jax.Array, counts: jax.Array, sums: jax.Array
) -> jax.Array:
    """T = sum_j <e_j - sg[e_j], sg[s_j]> + sum_j (p_j - sg[p_j]) sg[n_j]: zero in value
    (x - sg[x] = 0 exactly), with dT/de_j = s_j and dT/dp_j = n_j exactly (each the
    product's other factor times 1). Added to the loss, it hands the batch's
    ``assignment_statistics`` to the optimizer as gradients (``ema_codebook``).
    codebook, sums: [M, C]; count_probe, counts: [M] -> scalar."""
    sg = jax.lax.stop_gradient
    return jnp.sum((codebook - sg(codebook)) * sg(sums)) + jnp.sum(
        (count_probe - sg(count_probe)) * sg(counts)
    )


class EmaCodebookState(NamedTuple):
    """The moving averages of App. A.1: N [M] of the counts, m [M, C] of the sums."""

    counts: jax.Array  # N
    sums: jax.Array  # m


def _leaf(tree, name: str) -> jax.Array:
    """The one leaf of ``tree`` whose path ends in the key ``name``."""
    found = [
        leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        if getattr(path[-1], "key", None) == name
    ]
    if len(found) != 1:
        raise ValueError(f"ema_codebook needs one parameter named {name!r}.")
    return found[0]


def ema_codebook(
    decay: float, epsilon: float = LAPLACE_EPSILON
) -> optax.GradientTransformation:
    """The codebook's exponential-moving-average update, van den Oord et al. 2017,
    App. A.1, with Sonnet's Laplace-smoothed counts (``VectorQuantizerEMA``):

        N_j <- g N_j + (1 - g) n_j,    m_j <- g m_j + (1 - g) s_j,
        N~_j = (N_j + eps) / (sum_k N_k + M eps) sum_k N_k,    e_j <- m_j / N~_j,

    g = ``decay``. For the parameters ``CODEBOOK`` e [M, C] and ``COUNT_PROBE`` p [M]
    of a (masked) tree: the gradients must be exactly s and n, the batch's
    ``assignment_statistics`` (``statistics_carrier`` in the loss does that), and
    the update is e_new - e_old (so ``optax.apply_updates`` sets e to m / N~) and 0
    for p. N and m start at 0 (Sonnet's hidden averages; no debiasing here, which
    rescales m and N alike), so an entry the first batch leaves unused moves to 0.
    """

    def init(params):
        codebook = _leaf(params, CODEBOOK)
        return EmaCodebookState(
            counts=jnp.zeros(codebook.shape[:1], codebook.dtype),
            sums=jnp.zeros_like(codebook),
        )

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("ema_codebook needs params (the current codebook).")
        counts = decay * state.counts + (1 - decay) * _leaf(updates, COUNT_PROBE)
        sums = decay * state.sums + (1 - decay) * _leaf(updates, CODEBOOK)
        total = jnp.sum(counts)
        smoothed = (counts + epsilon) / (total + counts.shape[0] * epsilon) * total
        codebook = sums / smoothed[:, None]  # [M, C]

        def step(path, leaf, param):
            if getattr(path[-1], "key", None) == CODEBOOK:
                return codebook - param
            return jnp.zeros_like(param)  # the count probe stays 0

        updates = jax.tree_util.tree_map_with_path(step, updates, params)
        return updates, EmaCodebookState(counts=counts, sums=sums)

    return optax.GradientTransformation(init, update)


def ema_labels(params) -> object:
    """ "ema" on the ``CODEBOOK`` and ``COUNT_PROBE`` leaves of ``params``, "optimizer"
    elsewhere: the ``param_labels`` of ``optax.multi_transform``."""

    def label(path, leaf):
        del leaf
        name = getattr(path[-1], "key", None)
        return "ema" if name in (CODEBOOK, COUNT_PROBE) else "optimizer"

    return jax.tree_util.tree_map_with_path(label, params)
