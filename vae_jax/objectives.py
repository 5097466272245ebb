"""Per-example training objectives and their lifting to batches.

Every objective is written for ONE example and has the signature
``loss_one(params, x, key, hparams) -> (scalar, dict_of_scalars)`` with ``x: [D]``;
``hparams`` is a dict of traced scalars (e.g. ``{"beta": ...}``) so schedules and
vmapped sweeps need no recompilation. ``batch_mean`` lifts it with ``jax.vmap``.
All values are in nats per example (or squared error per pixel for the MSE).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import distributions as dist

Metrics = dict[str, jax.Array]
LossOne = Callable[[Any, jax.Array, jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Metrics]]


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
    return recon + hparams["beta"] * kl, {"recon": recon, "kl": kl, "elbo": -(recon + kl)}


OBJECTIVES = {"mse": squared_error, "elbo": negative_elbo}


def make_objective(config: ml_collections.ConfigDict, model: nn.Module) -> LossOne:
    """Binds ``config.objective`` and the model into a per-example ``loss_one``."""
    name = config.objective.name
    if name not in OBJECTIVES:
        raise ValueError(f"Unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}.")
    if name == "elbo":
        return functools.partial(
            negative_elbo, model=model, num_samples=config.objective.num_samples
        )
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
    """Lifts loss_one to (params, xs [B, D], key, hparams) -> (mean, metric means)."""
    lifted = per_example(loss_one)

    def loss(params, xs, key, hparams):
        values, aux = lifted(params, xs, key, hparams)
        return values.mean(), jax.tree.map(jnp.mean, aux)

    return loss
