"""Optimizers and learning-rate schedules from ``config.optim`` (optax).

"burda" is the 8-stage schedule of Burda et al. 2015, §5 (yburda/iwae ``experiments.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax

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


def make_schedule(
    optim: ml_collections.ConfigDict,
    total_steps: int,
    steps_per_epoch: int | None = None,
) -> optax.Schedule:
    """Learning-rate schedule: constant, cosine decay, linear warm-up + cosine, or
    "burda" (Burda et al. 2015's 8 stages; needs ``steps_per_epoch``)."""
    lr = optim.learning_rate
    if optim.schedule == "burda":
        if not steps_per_epoch:
            raise ValueError("optim.schedule='burda' needs steps_per_epoch.")
        return burda_schedule(lr, steps_per_epoch)
    if optim.schedule == "constant":
        return optax.constant_schedule(lr)
    if optim.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, max(total_steps, 1))
    if optim.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, optim.warmup_steps, max(total_steps, optim.warmup_steps + 1)
        )
    raise ValueError(f"Unknown schedule {optim.schedule!r}.")


def make_optimizer(
    optim: ml_collections.ConfigDict,
    total_steps: int,
    steps_per_epoch: int | None = None,
):
    """optax optimizer from ``config.optim``, with optional global-norm clipping."""
    schedule = make_schedule(optim, total_steps, steps_per_epoch)
    if optim.name == "adam":
        tx = optax.adam(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps)
    elif optim.name == "adamw":
        tx = optax.adamw(
            schedule,
            b1=optim.b1,
            b2=optim.b2,
            eps=optim.eps,
            weight_decay=optim.weight_decay,
        )
    elif optim.name == "sgd":
        tx = optax.sgd(schedule, momentum=optim.momentum or None)
    else:
        raise ValueError(
            f"Unknown optimizer {optim.name!r}; choose adam, adamw or sgd."
        )
    if optim.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), tx)
    return tx
