"""Evaluation over whole datasets: per-example metrics [B] -> masked means.

Numbers are per example: nats per image for VAE terms (``loss`` = negative ELBO,
single-sample estimate unless the objective uses S > 1; ``kl`` >= 0), squared error
per pixel for autoencoders.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data as data_lib
from vae_jax import objectives


def make_eval_fn(loss_one: objectives.LossOne, hparams: Mapping[str, Any]) -> Callable:
    """Jitted evaluate(params, xb [nb, B, D], mask [nb, B], key) -> metric means.

    Per-example values are summed with a mask, so padded rows of the last batch
    count for nothing and every example counts once; ``loss`` is the objective.
    """
    lifted = objectives.per_example(loss_one)
    hparams = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}

    def evaluate(params, xb, mask, key):
        def body(sums, inputs):
            x, m, i = inputs
            values, aux = lifted(params, x, jax.random.fold_in(key, i), hparams)
            batch_sums = {k: jnp.sum(v * m) for k, v in {"loss": values, **aux}.items()}
            return jax.tree.map(jnp.add, sums, batch_sums), None

        template = jax.eval_shape(lifted, params, xb[0], key, hparams)
        zeros = {k: jnp.zeros((), jnp.float32) for k in ("loss", *template[1])}
        inputs = (xb, mask, jnp.arange(xb.shape[0]))
        sums, _ = jax.lax.scan(body, zeros, inputs)
        return jax.tree.map(lambda s: s / jnp.sum(mask), sums)

    return jax.jit(evaluate)


def evaluate_dataset(
    eval_fn: Callable, params, x: np.ndarray, batch_size: int, key: jax.Array
) -> dict[str, float]:
    """Means of the per-example metrics over all rows of ``x: [N, D]`` (one host sync)."""
    xb, mask = data_lib.pad_to_batches(np.asarray(x), min(batch_size, len(x)))
    return {k: float(v) for k, v in jax.device_get(eval_fn(params, xb, mask, key)).items()}


def fixed_binarization(x: np.ndarray, key: jax.Array) -> np.ndarray:
    """One Bernoulli sample of the intensities ``x: [N, D]``, fixed by ``key``: the
    evaluation set of a dynamically binarized run."""
    return np.asarray(jax.jit(data_lib.dynamic_binarize)(key, jnp.asarray(x)))
