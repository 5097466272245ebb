"""Regularised autoencoder objectives: denoising and robust (per example), sparse
and trimmed (per batch).

Same per-example signature as ``objectives``: ``loss_one(params, x [D], key, hparams)
-> (scalar, metrics)``. The sparse AE's penalty depends on the whole batch (the mean
activation of each unit), so its ``loss_one`` carries a ``batch_penalty(params, xs
[B, D], key, hparams) -> (scalar, metrics)`` that ``objectives.batch_mean`` adds to the
vmapped mean (so does the trimmed MSE: minus the batch's largest errors);
evaluation (``objectives.per_example``) reports the per-example part.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import corruptions


def denoising_squared_error(
    params, x, key, hparams, *, model: nn.Module, corruption: str, level: float
):
    """||x - g(f(x_tilde))||^2 / D with x_tilde ~ q(x_tilde|x) fresh for every key.

    Vincent et al. 2008, §2.3 / 2010, eq. 6 (squared error). x: [D] -> (scalar, {"mse"}).
    """
    del hparams
    x_tilde = corruptions.corrupt(corruption, key, x, level)
    mse = jnp.mean(jnp.square(x - model.reconstruct(params, x_tilde)))
    return mse, {"mse": mse}


def robust_loss(error, scale, shape=0.0):
    """rho(e) = s log(1 + e / s) at alpha = 0 (Cauchy/Lorentzian), else
    (2 s / alpha) ((1 + e / s)^(alpha / 2) - 1), on a squared error e >= 0.

    Barron 2019, eq. 1 (the general loss rho(x, alpha, c); alpha = 0 is its limit
    log(1 + (x/c)^2 / 2)) with x^2 = e and c^2 = s / |alpha - 2|, times
    2 s / |alpha - 2| so that rho(e) -> e for e << s (the squared error; alpha = 2 is
    e itself). As an M-estimator (Black & Rangarajan 1996) its weight is drho/de =
    (1 + e / s)^(alpha / 2 - 1): 1 / (1 + e / s) for the Cauchy loss, the square of
    that for Geman-McClure (alpha = -2). ``scale`` s > 0 may be traced; ``shape``
    alpha <= 2 is a Python float. Elementwise on any shape.
    """
    if shape == 0:
        return scale * jnp.log1p(error / scale)
    return (2 * scale / shape) * jnp.expm1(0.5 * shape * jnp.log1p(error / scale))


def robust_squared_error(
    params, x, key, hparams, *, model: nn.Module, scale, shape: float = 0.0
):
    """rho(||x - g(f(x))||^2 / D) with rho = ``robust_loss`` (s = ``scale``, alpha =
    ``shape``): the example's mean squared error through Barron 2019's loss, so
    examples the model reconstructs badly (outliers, contaminants) are down-weighted.
    x: [D] -> (scalar, {"mse", "robust_weight": drho/de = (1 + e / s)^(alpha/2 - 1)}).
    """
    del key, hparams
    mse = jnp.mean(jnp.square(x - model.reconstruct(params, x)))
    weight = (1.0 + jax.lax.stop_gradient(mse) / scale) ** (0.5 * shape - 1.0)
    return robust_loss(mse, scale, shape), {"mse": mse, "robust_weight": weight}


def bernoulli_kl(rho, rho_hat):
    """KL(Bern(rho) || Bern(rho_hat)) = rho log(rho/rho_hat) + (1-rho) log((1-rho)/(1-rho_hat)).

    Ng 2011, "Sparse autoencoder" notes, §3. Elementwise on [K] (or scalars).
    """
    return rho * (jnp.log(rho) - jnp.log(rho_hat)) + (1 - rho) * (
        jnp.log1p(-rho) - jnp.log1p(-rho_hat)
    )


def sparsity_penalty(
    params, xs, key, hparams, *, model: nn.Module, target: float, weight: float
):
    """beta sum_j KL(rho || rho_hat_j), rho_hat_j = (1/B) sum_b f_j(x_b): mean activation
    of code unit j over the batch (Ng 2011, §3). xs: [B, D] -> (scalar, metrics).
    """
    del key, hparams
    codes = jax.vmap(lambda x: model.code(params, x))(xs)  # [B, K]
    rho_hat = jnp.clip(jnp.mean(codes, axis=0), 1e-6, 1 - 1e-6)  # [K]
    kl = jnp.sum(bernoulli_kl(target, rho_hat))
    return weight * kl, {"sparsity_kl": kl, "mean_activation": jnp.mean(rho_hat)}


def sparsity_penalty_for(*, model: nn.Module, target: float, weight: float):
    """``sparsity_penalty`` with rho = target, beta = weight bound (Ng 2011, §3): a
    ``batch_penalty`` for ``objectives.with_batch_penalty``."""
    return functools.partial(
        sparsity_penalty, model=model, target=target, weight=weight
    )


def num_trimmed(batch_size: int, trim_fraction: float) -> int:
    """k = floor(alpha B): how many of a batch's B examples the trimmed loss drops (a
    1e-9 slack absorbs float error in alpha B, e.g. 0.29 * 100 = 28.999...)."""
    return math.floor(trim_fraction * batch_size + 1e-9)


def trimming_penalty(params, xs, key, hparams, *, model: nn.Module, trim_fraction):
    """-(1/B) sum_{b in T} e_b, T the k = floor(alpha B) examples of the batch with
    the largest MSE e_b = ||x_b - g(f(x_b))||^2 / D (``jax.lax.top_k`` on stop-gradient
    e, so T is a constant of the step; ties: lower index).

    Added to the batch mean (1/B) sum_b e_b it leaves (1/B) sum_{b not in T} e_b: the
    per-minibatch iterative trimmed loss of Shen & Sanghavi 2019 (ITLM, Alg. 1 with one
    gradient step per re-selection), i.e. the mean over the kept B - k examples times
    (B - k) / B ~ 1 - alpha, a constant factor with the same minimiser. Dropped
    examples get no gradient (up to float32 cancellation of the two equal terms). k = 0
    (alpha B < 1) trims nothing. xs: [B, D] -> (scalar, {"kept_mse", "trim_threshold":
    the smallest dropped e, or the largest e when k = 0}).
    """
    del key, hparams
    mse = lambda x: jnp.mean(jnp.square(x - model.reconstruct(params, x)))
    errors = jax.vmap(mse)(xs)  # [B], recomputed: the per-example part is vmapped apart
    batch = xs.shape[0]
    k = num_trimmed(batch, trim_fraction)
    if k == 0:
        return jnp.zeros(()), {
            "kept_mse": errors.mean(),
            "trim_threshold": errors.max(),
        }
    top, dropped = jax.lax.top_k(jax.lax.stop_gradient(errors), k)  # [k], [k]
    removed = jnp.sum(errors[dropped])
    kept_mse = (jnp.sum(errors) - removed) / (batch - k)
    return -removed / batch, {"kept_mse": kept_mse, "trim_threshold": top[-1]}


def trimming_penalty_for(*, model: nn.Module, trim_fraction: float):
    """``trimming_penalty`` with alpha = ``trim_fraction`` bound (a Python float: k is
    a static shape of ``top_k``): a ``batch_penalty`` for the MSE's
    ``objectives.with_batch_penalty`` (Shen & Sanghavi 2019)."""
    return functools.partial(
        trimming_penalty, model=model, trim_fraction=float(trim_fraction)
    )
