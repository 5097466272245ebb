"""Objective of the VQ-VAE (``models.vqvae``); van den Oord, Vinyals & Kavukcuoglu 2017,
eq. 3:

    L = ||x - g(z_q(x))||^2 + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2,

per example: the squared error summed over the D pixels (the -log p(x|z_q) of a
Gaussian decoder up to its scale and constant), the codebook and commitment terms
summed over the N code vectors (``vector_quantize``), beta = ``objective.commitment``
(0.25 in the paper, §4.1). The decoder sees z_q through the straight-through estimator,
so the reconstruction trains the encoder and decoder, the codebook term the codebook
alone, the commitment term the encoder alone. Sonnet's ``VectorQuantizer`` and the
authors' later code average each term over its elements and divide the squared error
by the data's variance instead, which reweighs the three terms against each other.

Batch-level metrics (no penalty: ``batch_penalty.with_batch_penalty`` with a zero
term): ``perplexity`` exp(H) of the batch's codebook use and ``dead_codes``, the
share of entries unused in the batch (``vector_quantize.usage_statistics``). Each
costs one extra encoder pass per step, without gradients.

``objective.codebook_update`` = "gradient" learns the codebook by the codebook term's
gradients, as above; "ema" by the paper's exponential moving averages (App. A.1,
``vector_quantize.ema_codebook`` with g = ``objective.ema_decay``): the loss drops
the codebook term (still reported as ``codebook_loss``) and the batch term adds

    T = sum_j <e_j - sg[e_j], sg[s_j]> + sum_j (p_j - sg[p_j]) sg[n_j] = 0,

n_j, s_j the number and the sum of the batch's B N code vectors z_e assigned to entry
j (``vector_quantize.assignment_statistics``), p the model's zero ``count_probe``
[M]. No other term reaches e or p (straight-through and commitment see e under sg),
so the step's gradients w.r.t. them are exactly s and n: batch sums, not means (T is
a batch term, outside the mean over B), so N counts code vectors and Sonnet's eps
keeps its meaning. ``optim.make_optimizer(..., codebook_ema_decay=g)`` routes e and
p to the EMA transform, which keeps N and m in the optimizer state and sets e to
m / N~. The step's ``grad_norm`` then includes ||(s, n)||.
``loss_one`` is ``(params, x [D], key, hparams) -> (scalar, metrics)``; ``hparams``
(the VAEs' beta) is unused: ``config_problems`` rejects objective.beta != 1.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import vector_quantize as vq
from vae_jax.batch_penalty import with_batch_penalty

NAMES = ("vq",)
CODEBOOK_UPDATES = ("gradient", "ema")  # objective.codebook_update


def vq_per_example(
    params, x, key, hparams, *, model: nn.Module, commitment, codebook_term=True
):
    """||x - g(z_q)||^2 + ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2 (eq. 3), without
    the codebook term if not ``codebook_term`` (EMA codebook). Reports ``squared_error`` (summed over pixels), ``mse`` (its mean per pixel),
    ``codebook_loss`` and ``commitment_loss`` (unweighted).
    x: [D] -> (scalar, {"squared_error", "mse", "codebook_loss", "commitment_loss"})."""
    del key, hparams
    z_e, z_q, _, x_hat = model.forward(params, x)  # [N, C], [N, C], [N], [D]
    squared_error = jnp.sum(jnp.square(x - x_hat))
    codebook_loss = vq.codebook_loss(z_e, z_q)
    commitment_loss = vq.commitment_loss(z_e, z_q)
    value = squared_error + commitment * commitment_loss
    if codebook_term:
        value = value + codebook_loss
    return value, {
        "squared_error": squared_error,
        "mse": squared_error / x.shape[-1],
        "codebook_loss": codebook_loss,
        "commitment_loss": commitment_loss,
    }


def codebook_usage(params, xs, key, hparams, *, model: nn.Module):
    """A zero batch term carrying the batch's codebook use: (0, {"perplexity",
    "dead_codes"}) of the indices of all B * N code vectors. xs: [B, D]."""
    del key, hparams
    indices = model.code_indices(jax.lax.stop_gradient(params), xs)  # [B, N]
    return jnp.zeros((), jnp.float32), vq.usage_statistics(indices, model.codebook_size)


def codebook_statistics(params, xs, key, hparams, *, model: nn.Module):
    """The EMA codebook's batch term: (T = 0, {"perplexity", "dead_codes"}), T the
    ``vector_quantize.statistics_carrier`` of the batch's n [M] and s [M, C], whose
    gradients w.r.t. the codebook and the count probe are s and n. xs: [B, D]."""
    del key, hparams
    frozen = jax.lax.stop_gradient(params)
    z_e = model.code_vectors(frozen, xs)  # [B, N, C]
    _, indices = vq.quantize(z_e, model.codebook_of(frozen))  # [B, N]
    counts, sums = vq.assignment_statistics(z_e, indices, model.codebook_size)
    carrier = vq.statistics_carrier(
        model.codebook_of(params), model.count_probe_of(params), counts, sums
    )
    return carrier, vq.usage_statistics(indices, model.codebook_size)


def vq_for(obj: ml_collections.ConfigDict | None, model: nn.Module, level):
    """The ``vq`` objective: ``vq_per_example`` with beta = ``commitment``, plus the
    usage metrics of ``codebook_usage``; with ``obj.codebook_update == "ema"`` no
    codebook term and ``codebook_statistics`` as the batch term instead."""
    ema = obj is not None and obj.codebook_update == "ema"
    loss_one = functools.partial(
        vq_per_example,
        model=model,
        commitment=level("commitment"),
        codebook_term=not ema,
    )
    batch_term = codebook_statistics if ema else codebook_usage
    return with_batch_penalty(loss_one, functools.partial(batch_term, model=model))


def with_count_probe(obj: ml_collections.ConfigDict, model: nn.Module) -> nn.Module:
    """``model`` with the zero parameter the EMA codebook needs (``count_probe``) if
    ``obj.codebook_update == "ema"``, else ``model`` itself."""
    return model.clone(count_probe=True) if obj.codebook_update == "ema" else model


def codebook_ema_decay(obj: ml_collections.ConfigDict) -> float | None:
    """g for ``optim.make_optimizer(..., codebook_ema_decay=g)``: ``obj.ema_decay``
    with the EMA codebook, else None (every parameter by the optimizer)."""
    return float(obj.ema_decay) if obj.codebook_update == "ema" else None


BUILDERS = {"vq": vq_for}  # config.objective.name -> builder(obj, model, level)


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of the ``vq`` objective that do not go together, and ema_decay in
    (0, 1) (``config_checks`` lists them with the rest; it checks N, C, M > 0,
    commitment >= 0 and codebook_update in ``CODEBOOK_UPDATES``)."""
    obj, problems = config.objective, []
    if obj.codebook_update == "ema" and obj.name not in NAMES:
        problems.append(
            f"objective.codebook_update='ema' updates a VQ-VAE's codebook: it needs "
            f"objective.name in {NAMES} (got {obj.name!r})"
        )
    if not 0 < obj.ema_decay < 1:
        problems.append(
            f"config.objective.ema_decay={obj.ema_decay!r} (the EMA codebook's gamma) "
            "must lie in (0, 1)"
        )
    if obj.name in NAMES and (obj.beta != 1 or obj.kl_warmup_steps > 0):
        message = (
            f"objective.name={obj.name!r} weighs the commitment term by "
            "objective.commitment and ignores objective.beta and "
            "objective.kl_warmup_steps: set beta=1 and kl_warmup_steps=0 (got "
            f"beta={obj.beta!r}, kl_warmup_steps={obj.kl_warmup_steps!r})"
        )
        problems.append(message)
    return problems
