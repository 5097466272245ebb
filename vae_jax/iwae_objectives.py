"""Variants of the importance-weighted bound and the DReG gradient estimator.

MIWAE, CIWAE and PIWAE (Rainforth et al. 2018, "Tighter Variational Bounds are Not
Necessarily Better", section "New estimators", "NE" below), and IWAE with
doubly-reparameterised gradients, DReG (Tucker, Lawson, Gu & Maddison 2019, eq. 7).
Each is a per-example ``loss_one(params, x, key, hparams) -> (scalar, metrics)``
written against the model protocol's ``log_weights`` (x: [D]; log-weights [M * k]
reshaped to [M, k] where there are groups), lifted to batches by
``objectives.batch_mean`` like the others. Values are nats per example.

PIWAE and DReG give the decoder's parameters theta and the encoder's phi different
gradients. They evaluate the log-weights twice from the same key (the same draws,
the same values): once with phi under ``stop_gradient`` (theta's gradient) and once
with theta under it (phi's), the split given by the model's
``posterior_param_mask``; the loss is a surrogate whose value is the bound and whose
gradient is the estimator's.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist

sg = jax.lax.stop_gradient


def split_params(model: nn.Module, params):
    """(params with theta stopped, params with phi stopped): the same values, gradients
    to q's parameters phi only, or to p's theta only (``posterior_param_mask``)."""
    if not hasattr(model, "posterior_param_mask"):
        raise ValueError(
            "This objective trains q's and p's parameters on different estimators; "
            "the model family has no posterior_param_mask(params) to tell them apart."
        )
    mask = model.posterior_param_mask(params)  # static bools
    phi_live = jax.tree.map(lambda p, is_phi: p if is_phi else sg(p), params, mask)
    theta_live = jax.tree.map(lambda p, is_phi: sg(p) if is_phi else p, params, mask)
    return phi_live, theta_live


def _with_value(value: jax.Array, surrogate: jax.Array) -> jax.Array:
    """``value`` exactly, with ``surrogate``'s gradient (value + s - sg(s))."""
    return sg(value) + (surrogate - sg(surrogate))


def _metrics(log_w: jax.Array, log_px: jax.Array) -> dict[str, jax.Array]:
    """L_n of all n = log_w.size draws, their mean log-weight (an ELBO estimate), recon
    -mean log p(x|z) and kl = mean of log q - log p(z). log_w, log_px: [n]."""
    return {
        "iwae_bound": dist.log_mean_exp(log_w),
        "elbo": jnp.mean(log_w),
        "recon": -jnp.mean(log_px),
        "kl": jnp.mean(log_px - log_w),
    }


def miwae_bound(log_w: jax.Array) -> jax.Array:
    """MIWAE_{M,k} = (1/M) sum_m log (1/k) sum_i w_mi; Rainforth et al. 2018, NE.
    log_w: [M, k] -> scalar."""
    return jnp.mean(dist.log_mean_exp(log_w, axis=1))


def ciwae_bound(log_w: jax.Array, beta) -> jax.Array:
    """CIWAE_beta = beta ELBO + (1 - beta) IWAE_k from the same k draws: beta (1/k)
    sum_i log w_i + (1 - beta) log (1/k) sum_i w_i; Rainforth et al. 2018, NE.
    log_w: [k]; beta: scalar in [0, 1] -> scalar."""
    return beta * jnp.mean(log_w) + (1.0 - beta) * dist.log_mean_exp(log_w)


def negative_miwae(params, x, key, hparams, *, model, num_groups: int, num_samples):
    """-MIWAE_{M,k}(x), M = num_groups groups of k = num_samples draws z ~ q(z|x)
    (Rainforth et al. 2018, NE; M = 1 is IWAE_k, k = 1 the M-sample ELBO); draw
    m k + i of ``log_weights`` is sample i of group m.
    x: [D] -> (scalar, {"miwae_bound", "iwae_bound" (L_{Mk} of the same draws),
    "elbo", "recon", "kl"})."""
    del hparams
    log_w, log_px = model.log_weights(params, x, key, num_groups * num_samples)
    bound = miwae_bound(log_w.reshape(num_groups, num_samples))  # [M, k]
    return -bound, {"miwae_bound": bound, **_metrics(log_w, log_px)}


def negative_ciwae(params, x, key, hparams, *, model, num_samples: int, beta):
    """-CIWAE_beta(x) with k = num_samples draws z ~ q(z|x) (Rainforth et al. 2018,
    NE; beta = 1 the k-sample ELBO, beta = 0 IWAE_k). beta may be traced.
    x: [D] -> (scalar, {"ciwae_bound", "iwae_bound", "elbo", "recon", "kl"})."""
    del hparams
    log_w, log_px = model.log_weights(params, x, key, num_samples)  # [k], [k]
    bound = ciwae_bound(log_w, beta)
    return -bound, {"ciwae_bound": bound, **_metrics(log_w, log_px)}


def negative_piwae(params, x, key, hparams, *, model, num_groups: int, num_samples):
    """PIWAE (Rainforth et al. 2018, NE): theta ascends IWAE_{Mk}, phi ascends
    MIWAE_{M,k}, from the same M * k draws z ~ q(z|x) (grouped as ``negative_miwae``).

    Value -IWAE_{Mk}(x); gradient -d IWAE_{Mk} / d theta and -d MIWAE_{M,k} / d phi.
    x: [D] -> (scalar, {"iwae_bound" (L_{Mk}), "miwae_bound", "elbo", "recon", "kl"}).
    """
    del hparams
    phi_live, theta_live = split_params(model, params)
    n = num_groups * num_samples
    log_w, log_px = model.log_weights(theta_live, x, key, n)  # [Mk]: theta's path
    log_w_phi = model.log_weights(phi_live, x, key, n)[0]  # same values, phi's path
    iwae = dist.log_mean_exp(log_w)
    miwae = miwae_bound(log_w_phi.reshape(num_groups, num_samples))  # [M, k]
    metrics = {**_metrics(log_w, log_px), "miwae_bound": sg(miwae)}
    return -(iwae + _with_value(0.0, miwae)), metrics


def negative_iwae_dreg(params, x, key, hparams, *, model, num_samples: int):
    """-L_k(x) (Burda et al. 2015, eq. 8) with the doubly-reparameterised gradient
    (Tucker et al. 2019, eq. 7), k = num_samples draws z_i ~ q(z|x):

      d L_k / d phi   = sum_i w~_i^2 (d log w_i / d z_i) (d z_i / d phi),
      d L_k / d theta = sum_i w~_i d log w_i / d theta,   w~_i = w_i / sum_j w_j,

    the first from ``log_weights(..., stop_q_grad=True)`` with theta stopped, the
    second from the plain log-weights with phi stopped; w~ carries no gradient.
    Unbiased for the IWAE gradient; for phi it drops the score-function term, whose
    signal-to-noise ratio vanishes as k grows (Rainforth et al. 2018).
    x: [D] -> (scalar, {"iwae_bound", "elbo", "recon", "kl"}).
    """
    del hparams
    phi_live, theta_live = split_params(model, params)
    log_w, log_px = model.log_weights(theta_live, x, key, num_samples)  # [k]
    log_w_phi = model.log_weights(phi_live, x, key, num_samples, stop_q_grad=True)[0]
    normalised = sg(jax.nn.softmax(log_w))  # w~ [k]
    surrogate = jnp.sum(jnp.square(normalised) * log_w_phi) + jnp.sum(
        normalised * log_w
    )
    metrics = _metrics(log_w, log_px)
    return -_with_value(metrics["iwae_bound"], surrogate), metrics


# ---------------------------------------------------- builders for objectives.OBJECTIVES
def miwae_for(obj, model, level):
    del level
    return functools.partial(
        negative_miwae,
        model=model,
        num_groups=int(obj.num_groups),
        num_samples=int(obj.num_samples),
    )


def ciwae_for(obj, model, level):
    return functools.partial(
        negative_ciwae,
        model=model,
        num_samples=int(obj.num_samples),
        beta=level("ciwae_beta"),
    )


def piwae_for(obj, model, level):
    del level
    return functools.partial(
        negative_piwae,
        model=model,
        num_groups=int(obj.num_groups),
        num_samples=int(obj.num_samples),
    )


def iwae_dreg_for(obj, model, level):
    del level
    return functools.partial(
        negative_iwae_dreg, model=model, num_samples=int(obj.num_samples)
    )


BUILDERS = {  # config.objective.name -> builder(objective_config, model, level)
    "miwae": miwae_for,  # Rainforth et al. 2018
    "ciwae": ciwae_for,  # Rainforth et al. 2018
    "piwae": piwae_for,  # Rainforth et al. 2018
    "iwae_dreg": iwae_dreg_for,  # Tucker et al. 2019, eq. 7
}
