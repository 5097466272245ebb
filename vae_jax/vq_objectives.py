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
costs one extra encoder pass per step, without gradients. The codebook is learned by
gradients; the paper's exponential-moving-average updates (App. A.1) are not built.
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


def vq_per_example(params, x, key, hparams, *, model: nn.Module, commitment):
    """||x - g(z_q)||^2 + ||sg[z_e] - z_q||^2 + beta ||z_e - sg[z_q]||^2 (eq. 3).
    Reports ``squared_error`` (summed over pixels), ``mse`` (its mean per pixel),
    ``codebook_loss`` and ``commitment_loss`` (unweighted).
    x: [D] -> (scalar, {"squared_error", "mse", "codebook_loss", "commitment_loss"})."""
    del key, hparams
    z_e, z_q, _, x_hat = model.forward(params, x)  # [N, C], [N, C], [N], [D]
    squared_error = jnp.sum(jnp.square(x - x_hat))
    codebook_loss = vq.codebook_loss(z_e, z_q)
    commitment_loss = vq.commitment_loss(z_e, z_q)
    value = squared_error + codebook_loss + commitment * commitment_loss
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


def vq_for(obj: ml_collections.ConfigDict, model: nn.Module, level):
    """The ``vq`` objective: ``vq_per_example`` with beta = ``commitment``, plus the
    usage metrics of ``codebook_usage``."""
    del obj
    loss_one = functools.partial(
        vq_per_example, model=model, commitment=level("commitment")
    )
    return with_batch_penalty(loss_one, functools.partial(codebook_usage, model=model))


BUILDERS = {"vq": vq_for}  # config.objective.name -> builder(obj, model, level)


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of the ``vq`` objective that do not go together (``config_checks``
    lists them with the rest; it checks N, C, M > 0 and commitment >= 0)."""
    obj = config.objective
    if obj.name in NAMES and (obj.beta != 1 or obj.kl_warmup_steps > 0):
        message = (
            f"objective.name={obj.name!r} weighs the commitment term by "
            "objective.commitment and ignores objective.beta and "
            "objective.kl_warmup_steps: set beta=1 and kl_warmup_steps=0 (got "
            f"beta={obj.beta!r}, kl_warmup_steps={obj.kl_warmup_steps!r})"
        )
        return [message]
    return []
