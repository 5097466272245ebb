"""Batch-level terms of an objective, attached to its per-example loss.

Most objectives are sums over examples (``objectives.batch_mean`` vmaps them); some
add a term of the whole batch: the sparse AE's KL on mean activations (Ng 2011), free
bits (Kingma et al. 2016), an MMD between the batch's codes and prior draws (WAE,
InfoVAE), a decoder weight penalty (RAE). Such a term is a ``penalty(params, xs
[B, D], key, hparams) -> (scalar, metrics)`` carried by the loss as
``loss_one.batch_penalty``; evaluation (``objectives.per_example``) reports the
per-example part alone.

A penalty on what the per-example loss already computed (the codes f(x_b), the draws
z_b ~ q(z|x_b) and q's parameters) reads them instead of running the encoder again:
``with_code_penalty``. One encoder pass then serves both terms, forward and backward
(a second pass would cost its own weight gradients, which XLA does not merge).
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


def with_code_penalty(loss_one_and_code: Callable, penalty: Callable) -> Callable:
    """A per-example ``loss_one`` whose batch penalty reads the codes it computed.

    ``loss_one_and_code(params, x [D], key, hparams) -> (value, metrics, code)``, the
    code a pytree of arrays for one example (z_b, q's mean and logvar);
    ``penalty(params, codes, key, hparams) -> (scalar, metrics)`` with every leaf of
    ``codes`` stacked over the batch, [B, ...]. The returned ``loss_one`` gives
    (value, metrics) for one example; ``objectives.batch_mean`` calls its
    ``.with_code`` once per example and adds ``.code_penalty`` on the B codes.
    """

    def loss_one(params, x, key, hparams):
        value, metrics, _ = loss_one_and_code(params, x, key, hparams)
        return value, metrics

    loss_one.with_code = loss_one_and_code
    loss_one.code_penalty = penalty
    return loss_one
