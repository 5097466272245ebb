"""Regularised autoencoder objectives: denoising and robust (per example), sparse
(per batch).

Same per-example signature as ``objectives``: ``loss_one(params, x [D], key, hparams)
-> (scalar, metrics)``. The sparse AE's penalty depends on the whole batch (the mean
activation of each unit), so its ``loss_one`` carries a ``batch_penalty(params, xs
[B, D], key, hparams) -> (scalar, metrics)`` that ``objectives.batch_mean`` adds to the
vmapped mean; evaluation (``objectives.per_example``) reports the per-example part.
"""

from __future__ import annotations

import functools

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
