"""Batch-level terms of an objective, attached to its per-example loss.

Most objectives are sums over examples (``objectives.batch_mean`` vmaps them); some
add a term of the whole batch: the sparse AE's KL on mean activations (Ng 2011), free
bits (Kingma et al. 2016), an MMD between the batch's codes and prior draws (WAE,
InfoVAE), a decoder weight penalty (RAE). Such a term is a ``penalty(params, xs
[B, D], key, hparams) -> (scalar, metrics)`` carried by the loss as
``loss_one.batch_penalty``; evaluation (``objectives.per_example``) reports the
per-example part alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


def with_batch_penalty(loss_one: Callable, penalty: Callable) -> Callable:
    """A copy of ``loss_one`` carrying ``.batch_penalty = penalty``, which
    ``objectives.batch_mean`` adds to the vmapped per-example mean (the caller's
    ``loss_one`` stays untouched)."""
    loss_one = functools.partial(loss_one)  # a new object
    loss_one.batch_penalty = penalty
    return loss_one
