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

from vae_jax import (
    ae_objectives,
    iwae_objectives,
    mmd_objectives,
    rae_objectives,
    tc_objectives,
    vq_objectives,
)
from vae_jax import distributions as dist
from vae_jax.batch_penalty import with_batch_penalty

Metrics = dict[str, jax.Array]
LossOne = Callable[
    [Any, jax.Array, jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Metrics]
]


def squared_error(params, x, key, hparams, *, model: nn.Module):
    """Autoencoder loss ||x - g(f(x))||^2 / D (mean squared error per pixel). x: [D]."""
    del key, hparams
    mse = jnp.mean(jnp.square(x - model.reconstruct(params, x)))
    return mse, {"mse": mse}


def negative_elbo(params, x, key, hparams, *, model: nn.Module, num_samples: int = 1):
    """-ELBO = -E_q[log p(x|z)] + beta KL(q(z|x) || p(z)) with S reparameterised z ~ q.

    Kingma & Welling 2013, eq. 10 (SGVB estimator B) where the family has a
    closed-form KL (App. B; Doersch 2016, eq. 7 for a full covariance), eq. 6
    (estimator A, sampled KL) where it has none: the model's ``elbo_terms``. ``beta``
    from ``hparams`` weighs the KL (beta-VAE; KL warm-up anneals it from 0); the
    reported ``elbo`` always uses beta = 1. x: [D] -> (scalar, {"recon", "kl", "elbo"}).
    """
    recon, kl = model.elbo_terms(params, x, key, num_samples)
    return recon + hparams["beta"] * kl, {
        "recon": recon,
        "kl": kl,
        "elbo": -(recon + kl),
    }


def negative_elbo_for(model: nn.Module, num_samples: int = 1) -> LossOne:
    """``negative_elbo`` bound to ``model`` and S = ``num_samples``: a ``loss_one``."""
    return functools.partial(negative_elbo, model=model, num_samples=num_samples)


def free_bits_penalty(params, xs, key, hparams, *, model: nn.Module, free_bits: float):
    """beta sum_j max(0, lambda - mean_x KL_j): added to the batch's -ELBO_beta it gives
    the free-bits objective recon + beta sum_j max(lambda, mean_x KL_j) (Kingma et al.
    2016, IAF, "free bits", one group per latent dim; the max is over the batch mean).
    xs: [B, D] -> (scalar, {"free_bits_clamped": share of dims with mean KL < lambda}).
    """
    del key
    kl = jnp.mean(model.kl_per_dimension(params, xs), axis=0)  # [K]
    penalty = hparams["beta"] * jnp.sum(jax.nn.relu(free_bits - kl))
    clamped = jnp.mean((kl < free_bits).astype(jnp.float32))
    return penalty, {"free_bits_clamped": clamped}


def with_free_bits(loss_one: LossOne, *, model: nn.Module, free_bits: float) -> LossOne:
    """The per-example -ELBO with ``free_bits_penalty``: no KL pressure on a dim whose
    batch-mean KL is below ``free_bits`` (lambda, nats)."""
    return with_batch_penalty(
        loss_one,
        functools.partial(free_bits_penalty, model=model, free_bits=free_bits),
    )


def negative_iwae_bound(params, x, key, hparams, *, model: nn.Module, num_samples: int):
    """-L_k(x) = -log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q, k = num_samples.

    Burda et al. 2015, eq. 8 (the IWAE objective; k = 1 is the single-sample ELBO with
    a sampled KL), from the model's ``log_weights``. ``hparams`` is unused (no beta;
    ``config_checks`` rejects objective.beta != 1 or kl_warmup_steps > 0 with it).
    Reported ``elbo`` is the mean of the k log-weights, ``kl`` = mean of log q(z|x) -
    log p(z) (estimates KL >= 0).
    x: [D] -> (scalar, {"iwae_bound", "elbo", "recon", "kl"}), nats per example.
    """
    del hparams
    log_w, log_px = model.log_weights(params, x, key, num_samples)  # [S], [S]
    bound = dist.log_mean_exp(log_w)
    recon = -jnp.mean(log_px)
    aux = {"iwae_bound": bound, "elbo": jnp.mean(log_w), "recon": recon}
    return -bound, {**aux, "kl": jnp.mean(log_px - log_w)}


def _squared_error_for(obj, model, level) -> LossOne:
    del obj, level
    return functools.partial(squared_error, model=model)


def _denoising_for(obj, model, level) -> LossOne:
    return functools.partial(
        ae_objectives.denoising_squared_error,
        model=model,
        corruption=obj.corruption,
        level=level("noise_level"),
    )


def _robust_for(obj, model, level) -> LossOne:
    return functools.partial(
        ae_objectives.robust_squared_error,
        model=model,
        scale=level("robust_scale"),
        shape=float(obj.robust_shape),
    )


def _sparse_for(obj, model, level) -> LossOne:
    penalty = ae_objectives.sparsity_penalty_for(
        model=model, target=level("sparsity_target"), weight=level("sparsity_weight")
    )
    return with_batch_penalty(functools.partial(squared_error, model=model), penalty)


def _trimmed_for(obj, model, level) -> LossOne:
    del level  # alpha is static (top_k's k): not a vmappable level
    penalty = ae_objectives.trimming_penalty_for(
        model=model, trim_fraction=float(obj.trim_fraction)
    )
    return with_batch_penalty(functools.partial(squared_error, model=model), penalty)


def _elbo_for(obj, model, level) -> LossOne:
    del level
    loss = negative_elbo_for(model, obj.num_samples)
    if float(obj.free_bits) > 0:  # Kingma et al. 2016
        return with_free_bits(loss, model=model, free_bits=float(obj.free_bits))
    return loss


def _iwae_for(obj, model, level) -> LossOne:
    del level
    return functools.partial(
        negative_iwae_bound, model=model, num_samples=obj.num_samples
    )


# ``config.objective.name`` -> builder(objective_config, model, level) -> loss_one, where
# level(field) is the field's value, or its traced replacement in a vmapped sweep.
OBJECTIVES: dict[str, Callable[..., LossOne]] = {
    "mse": _squared_error_for,
    "denoising_mse": _denoising_for,  # Vincent et al. 2008
    "sparse_mse": _sparse_for,  # + a batch-level KL penalty (Ng 2011)
    "robust_mse": _robust_for,  # Cauchy loss of the example's MSE (Barron 2019)
    "trimmed_mse": _trimmed_for,  # MSE without the batch's worst (Shen & Sanghavi 2019)
    "elbo": _elbo_for,  # Kingma & Welling 2013 (+ free bits, Kingma et al. 2016)
    "iwae": _iwae_for,  # Burda et al. 2015
    **iwae_objectives.BUILDERS,  # miwae, ciwae, piwae, iwae_dreg (Rainforth, Tucker)
    **mmd_objectives.BUILDERS,  # wae_mmd (Tolstikhin et al. 2018), info_vae (Zhao)
    **rae_objectives.BUILDERS,  # rae_l2, rae_gp (Ghosh et al. 2020, eq. 11)
    **vq_objectives.BUILDERS,  # vq (van den Oord et al. 2017, eq. 3)
    **tc_objectives.BUILDERS,  # beta_tcvae (Chen et al. 2018, eq. 4)
}


def register_objective(name: str, builder: Callable[..., LossOne]) -> None:
    """Adds objective ``name`` (``config.objective.name``); ``builder(objective_config,
    model, level) -> loss_one`` as in ``OBJECTIVES``."""
    OBJECTIVES[name] = builder


def make_objective(
    config: ml_collections.ConfigDict, model: nn.Module, levels=None
) -> LossOne:
    """Binds ``config.objective`` and the model into a per-example ``loss_one``.

    ``levels``: optional {"noise_level", "sparsity_target", "sparsity_weight", ...}
    that replace the config's values (may be traced arrays, as in a vmapped sweep).
    """
    name = config.objective.name
    if name not in OBJECTIVES:
        raise ValueError(
            f"Unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}."
        )
    obj = config.objective
    level = lambda field: float(obj[field]) if levels is None else levels[field]
    return OBJECTIVES[name](obj, model, level)


def make_hparams(
    config: ml_collections.ConfigDict, levels=None
) -> Callable[[jax.Array], Metrics]:
    """Returns hparams(step) -> {"beta": ...}: linear KL warm-up from 0 to beta over
    ``kl_warmup_steps`` (Bowman et al. 2016; Sønderby et al. 2016), constant after.

    ``levels``: optional {"beta", "kl_warmup_steps"} that replace the config's values
    (may be traced arrays, as in a vmapped sweep).
    """
    obj = config.objective
    beta = float(obj.beta) if levels is None else levels["beta"]
    warmup = int(obj.kl_warmup_steps) if levels is None else levels["kl_warmup_steps"]

    def hparams(step):
        ramp = jnp.minimum(1.0, step.astype(jnp.float32) / jnp.maximum(warmup, 1))
        return {"beta": beta * jnp.where(warmup > 0, ramp, 1.0)}

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

    If ``loss_one`` has a ``batch_penalty(params, xs, key, hparams) -> (scalar,
    metrics)`` (a batch-level term: the sparse AE's KL on mean activations, an MMD
    between q(z) and p(z), ...) it is added; its key is ``fold_in(key, 1)``, apart
    from the per-example keys ``split(key, B)``. A ``code_penalty`` (``batch_penalty.
    with_code_penalty``) takes the B codes of ``loss_one.with_code`` in place of xs.
    """
    with_code = getattr(loss_one, "with_code", None)
    lifted = per_example(loss_one if with_code is None else with_code)
    penalty = getattr(loss_one, "batch_penalty", None)
    code_penalty = getattr(loss_one, "code_penalty", None)

    def loss(params, xs, key, hparams):
        values, aux, *codes = lifted(params, xs, key, hparams)
        value, aux = values.mean(), jax.tree.map(jnp.mean, aux)
        penalty_key, extras = jax.random.fold_in(key, 1), []
        if penalty is not None:
            extras.append(penalty(params, xs, penalty_key, hparams))
        if code_penalty is not None:
            extras.append(code_penalty(params, codes[0], penalty_key, hparams))
        for extra, extra_aux in extras:
            value, aux = value + extra, {**aux, **extra_aux}
        return value, aux

    return loss
