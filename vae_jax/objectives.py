"""Per-example training objectives and their lifting to batches.

Every objective is written for ONE example and has the signature
``loss_one(params, x, key, hparams) -> (scalar, dict_of_scalars)`` with ``x: [D]``;
``hparams`` is a dict of traced scalars (e.g. ``{"beta": ...}``) so schedules and
vmapped sweeps need no recompilation. ``batch_mean`` lifts it with ``jax.vmap``.
All values are in nats per example (or squared error per pixel for the MSE).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import ae_objectives
from vae_jax import distributions as dist

Metrics = dict[str, jax.Array]
LossOne = Callable[
    [Any, jax.Array, jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Metrics]
]


def log_likelihood(x: jax.Array, decoded: Mapping[str, jax.Array]) -> jax.Array:
    """log p(x|z) for the decoder's output: Bernoulli ``{"logits"}`` or Gaussian
    ``{"mean", "log_sigma"}`` (Kingma & Welling 2013, App. C). x: [D] -> scalar."""
    if "logits" in decoded:
        return dist.bernoulli_logpmf(x, decoded["logits"])
    return dist.gaussian_loglik(x, decoded["mean"], decoded["log_sigma"])


def squared_error(params, x, key, hparams, *, model: nn.Module):
    """Autoencoder loss ||x - g(f(x))||^2 / D (mean squared error per pixel). x: [D]."""
    del key, hparams
    mse = jnp.mean(jnp.square(x - model.apply(params, x)))
    return mse, {"mse": mse}


def negative_elbo(params, x, key, hparams, *, model: nn.Module, num_samples: int = 1):
    """-ELBO = -E_q[log p(x|z)] + beta KL(q(z|x) || p(z)) with S reparameterised z ~ q.

    Kingma & Welling 2013, eq. 10 (SGVB estimator B, analytic KL, App. B). ``beta``
    from ``hparams`` weighs the KL (beta-VAE; KL warm-up anneals it from 0). The
    reported ``elbo`` always uses beta = 1. x: [D] -> (scalar, {"recon", "kl", "elbo"}).
    """
    mean, logvar = model.apply(params, x, method="encode")  # [K], [K]
    z = dist.sample_diag_normal(key, mean, logvar, num_samples)  # [S, K]
    decoded = model.apply(params, z, method="decode")  # each [S, D]
    log_px = jax.vmap(log_likelihood, in_axes=(None, 0))(x, decoded)  # [S]
    recon = -jnp.mean(log_px)
    kl = dist.kl_diag_to_std_normal(mean, logvar)
    return recon + hparams["beta"] * kl, {
        "recon": recon,
        "kl": kl,
        "elbo": -(recon + kl),
    }


def vae_log_weights(params, x, key, num_samples: int, *, model: nn.Module):
    """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s ~ q(z|x), s = 1..S.

    Burda et al. 2015, eq. 8 (one stochastic layer). Draws z exactly as
    ``negative_elbo`` does for the same key. x: [D] -> (log_w [S], log p(x|z_s) [S]).
    """
    mean, logvar = model.apply(params, x, method="encode")  # [K], [K]
    z = dist.sample_diag_normal(key, mean, logvar, num_samples)  # [S, K]
    decoded = model.apply(params, z, method="decode")  # each [S, D]
    log_px = jax.vmap(log_likelihood, in_axes=(None, 0))(x, decoded)  # [S]
    log_pz = jax.vmap(dist.std_normal_logpdf)(z)
    log_qz = jax.vmap(dist.diag_normal_logpdf, in_axes=(0, None, None))(z, mean, logvar)
    return log_px + log_pz - log_qz, log_px


def log_weights_for(model: nn.Module) -> Callable:
    """The model's ``log_weights(params, x [D], key, S) -> (log_w [S], log_px [S])``."""
    from vae_jax.models import full_covariance, hierarchical  # lazy: they import models

    if isinstance(model, hierarchical.HierarchicalVAE):
        return functools.partial(hierarchical.log_weights, model=model)
    if isinstance(model, full_covariance.FullCovarianceVAE):
        return functools.partial(full_covariance.log_weights, model=model)
    return functools.partial(vae_log_weights, model=model)


def negative_elbo_for(model: nn.Module, num_samples: int = 1) -> LossOne:
    """The model's closed-form-KL ``negative_elbo`` (diagonal or full-covariance q)."""
    from vae_jax.models import (
        full_covariance,  # lazy: full_covariance imports this module
    )

    if isinstance(model, full_covariance.FullCovarianceVAE):
        elbo = full_covariance.negative_elbo
    else:
        elbo = negative_elbo
    return functools.partial(elbo, model=model, num_samples=num_samples)


def kl_per_dimension(params, xs: jax.Array, *, model: nn.Module) -> jax.Array:
    """KL(q(z_j|x) || N(0, 1)) for each example and latent dim j (diagonal q).

    Kingma & Welling 2013, App. B, term by term. xs: [B, D] -> [B, K].
    """
    mean, logvar = model.apply(params, xs, method="encode")  # [B, K] each
    kl_one = jax.vmap(jax.vmap(dist.kl_diag_to_std_normal))
    return kl_one(mean[..., None], logvar[..., None])  # [B, K]


def free_bits_penalty(params, xs, hparams, *, model: nn.Module, free_bits: float):
    """beta sum_j max(0, lambda - mean_x KL_j): added to the batch's -ELBO_beta it gives
    the free-bits objective recon + beta sum_j max(lambda, mean_x KL_j) (Kingma et al.
    2016, IAF, "free bits", one group per latent dim; the max is over the batch mean).
    xs: [B, D] -> (scalar, {"free_bits_clamped": share of dims with mean KL < lambda}).
    """
    kl = jnp.mean(kl_per_dimension(params, xs, model=model), axis=0)  # [K]
    penalty = hparams["beta"] * jnp.sum(jax.nn.relu(free_bits - kl))
    clamped = jnp.mean((kl < free_bits).astype(jnp.float32))
    return penalty, {"free_bits_clamped": clamped}


def with_free_bits(loss_one: LossOne, *, model: nn.Module, free_bits: float) -> LossOne:
    """A copy of the per-example -ELBO with ``.batch_penalty = free_bits_penalty``: no KL
    pressure on a dim whose batch-mean KL is below ``free_bits`` (lambda, nats)."""
    loss_one = functools.partial(loss_one)  # a new object: the caller's stays untouched
    loss_one.batch_penalty = functools.partial(
        free_bits_penalty, model=model, free_bits=free_bits
    )
    return loss_one


def negative_iwae_bound(
    params, x, key, hparams, *, log_weights: Callable, num_samples: int
):
    """-L_k(x) = -log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q, k = num_samples.

    Burda et al. 2015, eq. 8 (the IWAE objective; k = 1 is the single-sample ELBO with
    a sampled KL). ``hparams`` is unused (no beta). Reported ``elbo`` is the mean of
    the k log-weights, ``kl`` = mean of log q(z|x) - log p(z) (estimates KL >= 0).
    x: [D] -> (scalar, {"iwae_bound", "elbo", "recon", "kl"}), nats per example.
    """
    del hparams
    log_w, log_px = log_weights(params, x, key, num_samples)  # [S], [S]
    bound = dist.log_mean_exp(log_w)
    recon = -jnp.mean(log_px)
    aux = {"iwae_bound": bound, "elbo": jnp.mean(log_w), "recon": recon}
    return -bound, {**aux, "kl": jnp.mean(log_px - log_w)}


def negative_sampled_elbo(
    params, x, key, hparams, *, log_weights: Callable, num_samples: int
):
    """-ELBO = -(1/S) sum_s log w_s (sampled KL), for models without a closed-form KL.

    Kingma & Welling 2013, eq. 6 (SGVB estimator A); the two-layer VAE of Burda et al.
    2015, §5. ``beta`` weighs the KL estimate mean(log q - log p(z)).
    x: [D] -> (scalar, {"recon", "kl", "elbo"}), nats per example.
    """
    log_w, log_px = log_weights(params, x, key, num_samples)  # [S], [S]
    recon = -jnp.mean(log_px)
    kl = jnp.mean(log_px - log_w)
    return recon + hparams["beta"] * kl, {
        "recon": recon,
        "kl": kl,
        "elbo": -(recon + kl),
    }


OBJECTIVES = {"mse": squared_error, "elbo": negative_elbo, "iwae": negative_iwae_bound}
OBJECTIVES["denoising_mse"] = (
    ae_objectives.denoising_squared_error
)  # Vincent et al. 2008
OBJECTIVES["sparse_mse"] = squared_error  # + a batch-level KL penalty (Ng 2011)


def make_objective(
    config: ml_collections.ConfigDict, model: nn.Module, levels=None
) -> LossOne:
    """Binds ``config.objective`` and the model into a per-example ``loss_one``.

    ``levels``: optional {"noise_level", "sparsity_target", "sparsity_weight"} that
    replace the config's values (may be traced arrays, as in a vmapped sweep).
    """
    name = config.objective.name
    if name not in OBJECTIVES:
        raise ValueError(
            f"Unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}."
        )
    from vae_jax.models import hierarchical  # lazy: hierarchical imports models

    obj = config.objective
    level = lambda field: float(obj[field]) if levels is None else levels[field]
    if name == "denoising_mse":
        return functools.partial(
            ae_objectives.denoising_squared_error, model=model,
            corruption=obj.corruption, level=level("noise_level"),
        )  # fmt: skip
    if name == "sparse_mse":
        return ae_objectives.with_sparsity_penalty(
            functools.partial(squared_error, model=model), model=model,
            target=level("sparsity_target"), weight=level("sparsity_weight"),
        )  # fmt: skip
    two_layers = isinstance(model, hierarchical.HierarchicalVAE)
    if name == "iwae" or (name == "elbo" and two_layers):
        loss = negative_iwae_bound if name == "iwae" else negative_sampled_elbo
        k = config.objective.num_samples
        return functools.partial(
            loss, log_weights=log_weights_for(model), num_samples=k
        )
    if name == "elbo":
        loss = negative_elbo_for(model, config.objective.num_samples)
        free_bits = float(config.objective.get("free_bits", 0.0))
        if free_bits > 0:  # Kingma et al. 2016
            return with_free_bits(loss, model=model, free_bits=free_bits)
        return loss
    return functools.partial(squared_error, model=model)


def make_hparams(config: ml_collections.ConfigDict) -> Callable[[jax.Array], Metrics]:
    """Returns hparams(step) -> {"beta": ...}: linear KL warm-up from 0 to beta over
    ``kl_warmup_steps`` (Bowman et al. 2016; Sønderby et al. 2016), constant after."""
    beta = float(config.objective.beta)
    warmup = int(config.objective.kl_warmup_steps)

    def hparams(step):
        if warmup <= 0:
            return {"beta": jnp.asarray(beta, jnp.float32)}
        ramp = jnp.minimum(1.0, step.astype(jnp.float32) / warmup)
        return {"beta": beta * ramp}

    return hparams


def per_example(loss_one: LossOne) -> Callable:
    """Lifts loss_one to (params, xs [B, D], key, hparams) -> (values [B], metrics [B])."""

    def loss(params, xs, key, hparams):
        if jnp.ndim(xs) < 2:
            raise ValueError(
                f"Expected a batch xs: [B, D], got shape {jnp.shape(xs)}; "
                "for one example use xs[None] or call the per-example loss directly."
            )
        keys = jax.random.split(key, xs.shape[0])
        return jax.vmap(loss_one, in_axes=(None, 0, 0, None))(params, xs, keys, hparams)

    return loss


def batch_mean(loss_one: LossOne) -> Callable:
    """Lifts loss_one to (params, xs [B, D], key, hparams) -> (mean, metric means).

    If ``loss_one`` has a ``batch_penalty(params, xs, hparams) -> (scalar, metrics)``
    (a batch-level term, e.g. the sparse AE's KL on mean activations) it is added.
    """
    lifted = per_example(loss_one)
    penalty = getattr(loss_one, "batch_penalty", None)

    def loss(params, xs, key, hparams):
        values, aux = lifted(params, xs, key, hparams)
        value, aux = values.mean(), jax.tree.map(jnp.mean, aux)
        if penalty is not None:
            extra, extra_aux = penalty(params, xs, hparams)
            value, aux = value + extra, {**aux, **extra_aux}
        return value, aux

    return loss
