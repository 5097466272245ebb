"""Optimizers and learning-rate schedules from ``config.optim`` (optax).

"burda" is the 8-stage schedule of Burda et al. 2015, §5 (yburda/iwae ``experiments.py``).
A VQ-VAE's codebook may instead follow the exponential moving averages of van den Oord
et al. 2017, App. A.1 (``codebook_ema_decay``; ``vector_quantize.ema_codebook``).
``normalize_gradients`` rescales each parameter's gradient to unit norm before the
optimizer, as the AdamNormGrad of Tomczak & Welling 2018 (jmtomczak/vae_vampprior
``utils/optimizer.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vae_jax import vector_quantize as vq

BURDA_STAGES = 8  # i = 0..7


def burda_stage_end(stage: int, steps_per_epoch: int) -> int:
    """Last step (exclusive) of stage i of Burda et al.'s schedule: sum_{j<=i} 3^j epochs."""
    return sum(3**j for j in range(stage + 1)) * steps_per_epoch


def burda_rates(learning_rate: float = 1e-3) -> list[float]:
    """Stage rates lr * round(10^(1 - i/7), 1) / 10, i = 0..7: 1e-3, 7.2e-4, 5.2e-4, 3.7e-4,
    2.7e-4, 1.9e-4, 1.4e-4, 1e-4 for lr = 1e-3 (yburda/iwae ``experiments.py``)."""
    return [
        learning_rate * round(10.0 ** (1 - i / 7), 1) / 10 for i in range(BURDA_STAGES)
    ]


def burda_schedule(learning_rate: float, steps_per_epoch: int) -> optax.Schedule:
    """Piecewise constant: stage i runs 3^i epochs at ``burda_rates(lr)[i]`` (3280 epochs
    in all; the last rate holds after). Burda et al. 2015, §5; yburda/iwae."""
    bounds = jnp.asarray(
        [burda_stage_end(i, steps_per_epoch) for i in range(BURDA_STAGES - 1)]
    )
    rates = jnp.asarray(burda_rates(learning_rate), jnp.float32)

    def schedule(step):
        return rates[jnp.searchsorted(bounds, step, side="right")]

    return schedule


NORMALIZE_EPS = 1e-7  # AdamNormGrad's: g / (||g||_2 + 1e-7)


def normalize_per_leaf(eps: float = NORMALIZE_EPS) -> optax.GradientTransformation:
    """Stateless: g <- g / (||g||_2 + eps) for every parameter tensor (leaf) apart,
    the Frobenius norm of the whole tensor (a kernel and its bias separately); as
    AdamNormGrad's step (jmtomczak/vae_vampprior ``utils/optimizer.py``). optax's
    ``normalize_by_update_norm`` and ``contrib.normalize`` divide by the global norm
    of all leaves together instead."""

    def update_fn(updates, state, params=None):
        del params

        def normalize(g):
            return g / (jnp.sqrt(jnp.sum(jnp.square(g))) + eps).astype(g.dtype)

        return jax.tree.map(normalize, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict, int], optax.Schedule]] = {
    "constant": lambda optim, total: optax.constant_schedule(optim.learning_rate),
    "cosine": lambda optim, total: optax.cosine_decay_schedule(
        optim.learning_rate, max(total, 1)
    ),
    "warmup_cosine": lambda optim, total: optax.warmup_cosine_decay_schedule(
        0.0,
        optim.learning_rate,
        optim.warmup_steps,
        max(total, optim.warmup_steps + 1),
    ),
    "burda": None,  # needs steps_per_epoch: ``burda_schedule``
}

OPTIMIZERS: dict[str, Callable[[ml_collections.ConfigDict, optax.Schedule], Any]] = {
    "adam": lambda optim, rate: optax.adam(
        rate, b1=optim.b1, b2=optim.b2, eps=optim.eps
    ),
    "adamw": lambda optim, rate: optax.adamw(
        rate, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay
    ),
    "sgd": lambda optim, rate: optax.sgd(rate, momentum=optim.momentum or None),
}


def make_schedule(
    optim: ml_collections.ConfigDict,
    total_steps: int,
    steps_per_epoch: int | None = None,
) -> optax.Schedule:
    """Learning-rate schedule by name (``SCHEDULES``): constant, cosine decay, linear
    warm-up + cosine, or "burda" (Burda et al. 2015's 8 stages; needs
    ``steps_per_epoch``)."""
    if optim.schedule not in SCHEDULES:
        raise ValueError(
            f"Unknown schedule {optim.schedule!r}; choose one of {sorted(SCHEDULES)}."
        )
    if optim.schedule == "burda":
        if not steps_per_epoch:
            raise ValueError("optim.schedule='burda' needs steps_per_epoch.")
        return burda_schedule(optim.learning_rate, steps_per_epoch)
    return SCHEDULES[optim.schedule](optim, total_steps)


def make_optimizer(
    optim: ml_collections.ConfigDict,
    total_steps: int,
    steps_per_epoch: int | None = None,
    *,
    codebook_ema_decay: float | None = None,
):
    """optax optimizer by name (``OPTIMIZERS``) from ``config.optim``, with optional
    global-norm clipping, then optional per-tensor gradient normalisation
    (``normalize_gradients``: ``normalize_per_leaf``, AdamNormGrad with "adam"); a
    clip before it changes nothing but the 1e-7 (``config_checks`` refuses both).
    ``codebook_ema_decay`` g: the VQ-VAE's codebook and count probe follow
    ``vector_quantize.ema_codebook(g)`` instead (its N and m in the optimizer state),
    every other parameter the optimizer, clipped by its own norm (and normalised
    tensor by tensor)."""
    if optim.name not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {optim.name!r}; choose one of {sorted(OPTIMIZERS)}."
        )
    tx = OPTIMIZERS[optim.name](
        optim, make_schedule(optim, total_steps, steps_per_epoch)
    )
    if optim.normalize_gradients:
        tx = optax.chain(normalize_per_leaf(), tx)
    if optim.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), tx)
    if codebook_ema_decay is not None:
        transforms = {"ema": vq.ema_codebook(codebook_ema_decay), "optimizer": tx}
        tx = optax.multi_transform(transforms, vq.ema_labels)
    return tx
