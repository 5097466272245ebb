"""Objectives of the regularised autoencoder (``models.rae``); Ghosh et al. 2020, eq. 11.

    L_RAE = ||x - g(z)||_2^2 + beta ||z||_2^2 / 2 + lambda L_REG,   z = f(x),

the squared error summed over the D pixels (their L_REC), beta = ``objective.
code_penalty`` on L_Z = ||z||^2 / 2 (the paper's L_Z^RAE; it bounds the code space so
that a density can be fitted to it after training), and L_REG (§2.2):

``rae_l2``: lambda ||theta||_2^2, theta = the decoder's kernels (``decoder_kernels``),
  lambda = ``objective.decoder_weight_decay``. It does not depend on x, so it is a
  batch-level term (``batch_penalty.with_batch_penalty``): added once to the batch mean,
  as Keras adds a ``kernel_regularizer`` (the authors' code); evaluation
  (``objectives.per_example``) reports the per-example part.
``rae_gp``: gamma ||J_g(z)||_F^2 per example, J_g = dg/dz [D, K] at z = f(x),
  gamma = ``objective.gradient_penalty`` (``jacobian_norm2``): exactly by K
  forward-mode products, or with ``objective.gradient_penalty_probes`` = m > 0 by
  Hutchinson's unbiased estimate from m (m < K: cheaper) random products.

Weights for MNIST (the authors' ``configurations/config.py``, ParthaEth/
Regularized_autoencoders-RAE-): RAE-L2 beta = 1e-4, lambda = 1e-7; RAE-GP beta = 1e-4,
gamma = 0.5e-7 (Pythae's ``RAE_L2`` / ``RAE_GP`` defaults: beta 1e-4, 1e-7). We follow
the paper's forms, which differ from both codes in small ways: the authors' code uses
mean_k z_k^2 = ||z||^2 / K for L_Z and regularises only the decoder's transposed-conv
kernels; Pythae uses ||z||^2 / 2 and puts lambda as Adam's (coupled) weight decay on
every decoder parameter, biases included (the gradient of (lambda / 2) ||theta||^2).
Every ``loss_one`` here is ``(params, x [D], key, hparams) -> (scalar, metrics)``;
``hparams`` (the VAEs' beta) is unused: ``config_problems`` rejects objective.beta != 1.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.batch_penalty import with_batch_penalty

NAMES = ("rae_l2", "rae_gp")


def rae_per_example(params, x, key, hparams, *, model: nn.Module, code_penalty):
    """||x - g(z)||^2 + beta ||z||^2 / 2 with z = f(x): L_REC + beta L_Z^RAE (Ghosh et
    al. 2020, eq. 11 without L_REG). Reports ``squared_error`` (summed over pixels),
    ``mse`` (its mean per pixel) and ``code_norm2`` = ||z||^2.
    x: [D] -> (scalar, {"squared_error", "mse", "code_norm2"})."""
    del key, hparams
    z = model.code(params, x)  # [K]
    squared_error = jnp.sum(jnp.square(x - model.decode_mean(params, z)))
    code_norm2 = jnp.sum(jnp.square(z))
    value = squared_error + code_penalty * 0.5 * code_norm2
    return value, {
        "squared_error": squared_error,
        "mse": squared_error / x.shape[-1],
        "code_norm2": code_norm2,
    }


def decoder_weight_penalty(params, xs, key, hparams, *, model: nn.Module, weight):
    """lambda ||theta||_2^2 = lambda sum_W sum_ij W_ij^2 over the decoder's kernels
    (``model.decoder_kernels``): the Tikhonov L_REG of RAE-L2 (Ghosh et al. 2020,
    §2.2), once per batch. xs: [B, D] (unused) -> (scalar, {"decoder_weight_norm2"})."""
    del xs, key, hparams
    norm2 = sum(jnp.sum(jnp.square(w)) for w in model.decoder_kernels(params))
    return weight * norm2, {"decoder_weight_norm2": norm2}


def decoder_jacobian_norm2(params, z, *, model: nn.Module, key=None, probes: int = 0):
    """(g(z), ||J_g(z)||_F^2 = sum_dk (dg_d / dz_k)^2): the decoder's output and the
    squared Frobenius norm of its Jacobian [D, K] at z by forward-mode products J v
    (``jax.linearize``, then ``vmap`` over the v's). ``probes`` = 0: exactly, v = the
    basis e_1..e_K (K decoder passes, cheap for the small K of an autoencoder).
    ``probes`` = m > 0: Hutchinson's estimate (1/m) sum_i ||J v_i||^2 with Rademacher
    v_i ~ U{-1, 1}^K drawn with ``key`` (E[v v^T] = I, so its expectation is
    tr(J^T J) = ||J||_F^2): m decoder passes. z: [K] -> ([D], scalar)."""
    x_hat, jvp = jax.linearize(lambda v: model.decode_mean(params, v), z)
    k = z.shape[-1]
    if probes:
        directions = jax.random.rademacher(key, (probes, k), dtype=z.dtype)  # [m, K]
    else:
        directions = jnp.eye(k, dtype=z.dtype)  # [K, K]
    products = jax.vmap(jvp)(directions)  # [m or K, D]: J v per direction
    return x_hat, jnp.sum(jnp.square(products)) / (probes or 1)


def rae_gp_per_example(
    params,
    x,
    key,
    hparams,
    *,
    model: nn.Module,
    code_penalty,
    gradient_penalty,
    probes: int = 0,
):
    """||x - g(z)||^2 + beta ||z||^2 / 2 + gamma ||J_g(z)||_F^2, z = f(x): RAE-GP
    (Ghosh et al. 2020, eq. 11 with L_GP = ||grad D(E(x))||_2^2, §2.2).

    The paper writes the decoder's gradient; for D outputs that is the Jacobian J_g
    [D, K], and the norm taken is its squared Frobenius norm, computed exactly
    (``decoder_jacobian_norm2``; ``probes`` > 0: its unbiased estimate from that
    many random products, with ``key``). The gradient of the loss reaches the encoder
    through z and the decoder through J_g (second derivatives). The authors' code
    penalises ||grad_z sum_d g_d(z)^2||^2 / K = ||2 J^T g||^2 / K instead, Pythae
    ||grad_x sum_d g_d(f(x))||^2 (a vector-Jacobian product through the encoder).
    x: [D] -> (scalar, {"squared_error", "mse", "code_norm2", "jacobian_norm2"}).
    """
    del hparams
    z = model.code(params, x)  # [K]
    x_hat, jacobian_norm2 = decoder_jacobian_norm2(
        params, z, model=model, key=key, probes=probes
    )
    squared_error = jnp.sum(jnp.square(x - x_hat))
    code_norm2 = jnp.sum(jnp.square(z))
    value = (
        squared_error
        + code_penalty * 0.5 * code_norm2
        + gradient_penalty * jacobian_norm2
    )
    return value, {
        "squared_error": squared_error,
        "mse": squared_error / x.shape[-1],
        "code_norm2": code_norm2,
        "jacobian_norm2": jacobian_norm2,
    }


def rae_l2_for(obj: ml_collections.ConfigDict, model: nn.Module, level):
    """The ``rae_l2`` objective: ``rae_per_example`` (beta = ``code_penalty``) + the
    batch-level ``decoder_weight_penalty`` (lambda = ``decoder_weight_decay``)."""
    del obj
    loss_one = functools.partial(
        rae_per_example, model=model, code_penalty=level("code_penalty")
    )
    penalty = functools.partial(
        decoder_weight_penalty, model=model, weight=level("decoder_weight_decay")
    )
    return with_batch_penalty(loss_one, penalty)


def rae_gp_for(obj: ml_collections.ConfigDict, model: nn.Module, level):
    """The ``rae_gp`` objective: ``rae_gp_per_example`` with beta = ``code_penalty``,
    gamma = ``gradient_penalty``, ``probes`` = ``gradient_penalty_probes``."""
    return functools.partial(
        rae_gp_per_example,
        model=model,
        code_penalty=level("code_penalty"),
        gradient_penalty=level("gradient_penalty"),
        probes=int(obj.gradient_penalty_probes),
    )


BUILDERS = {  # config.objective.name -> builder(objective_config, model, level)
    "rae_l2": rae_l2_for,  # Ghosh et al. 2020, RAE-L2
    "rae_gp": rae_gp_for,  # Ghosh et al. 2020, RAE-GP
}


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of the RAE objectives that do not go together (``config_checks``
    lists them with the rest)."""
    obj = config.objective
    if obj.name in NAMES and (obj.beta != 1 or obj.kl_warmup_steps > 0):
        message = (
            f"objective.name={obj.name!r} weighs ||z||^2 / 2 by objective.code_penalty "
            "and ignores objective.beta and objective.kl_warmup_steps: set beta=1 and "
            f"kl_warmup_steps=0 (got beta={obj.beta!r}, "
            f"kl_warmup_steps={obj.kl_warmup_steps!r})"
        )
        return [message]
    return []
