"""Evaluation over whole datasets: per-example metrics [B] -> masked means.

Numbers are per example: nats per image for VAE terms (``loss`` = negative ELBO,
single-sample estimate unless the objective uses S > 1; ``kl`` >= 0), squared error
per pixel for autoencoders. ``iwae_bound`` / ``evaluate_log_likelihood`` give the
importance-weighted bound L_k and the test NLL = -mean L_k (Burda et al. 2015, k =
5000), ``active_units`` the count of units with Var_x E_q[z_u|x] >= 0.01;
``evaluate_model`` both for a trained experiment. ``make_per_example_fn`` /
``per_example_values`` give the per-example values behind ``make_eval_fn``'s means
(for standard errors, ``mean_and_stderr``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from vae_jax import batching, objectives


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


def make_per_example_fn(
    loss_one: objectives.LossOne, hparams: Mapping[str, Any]
) -> Callable:
    """Jitted fn(params, xb [nb, B, D], key, first_batch=0) -> {"loss", aux...}, each
    [nb, B]: the per-example values whose masked means ``make_eval_fn`` returns, with
    its keys (batch b: ``fold_in(key, first_batch + b)`` split B ways), for standard
    errors and per-example scores."""
    lifted = objectives.per_example(loss_one)
    hparams = {k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()}

    def values(params, xb, key, first_batch=0):
        def body(_, inputs):
            x, i = inputs
            loss, aux = lifted(params, x, jax.random.fold_in(key, i), hparams)
            return None, {"loss": loss, **aux}

        index = first_batch + jnp.arange(xb.shape[0])
        return jax.lax.scan(body, None, (xb, index))[1]

    return jax.jit(values)


def per_example_values(
    fn: Callable, params, x: np.ndarray, batch_size: int, key: jax.Array
) -> dict[str, np.ndarray]:
    """``make_per_example_fn``'s values for every row of ``x: [N, D]``: {name: [N]}
    (float32; padded rows dropped; one host sync)."""
    xb, mask = batching.pad_to_batches(np.asarray(x), min(batch_size, len(x)))
    out = jax.device_get(fn(params, xb, key))
    return {k: np.asarray(v).reshape(-1)[mask.reshape(-1) > 0] for k, v in out.items()}


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    """(mean, std / sqrt(N)) of ``values: [N]`` in float64; stderr 0 for N = 1: the
    spread over examples, not a Monte-Carlo error."""
    values = np.asarray(values, np.float64)
    stderr = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(values.mean()), float(stderr)


def evaluate_dataset(
    eval_fn: Callable, params, x: np.ndarray, batch_size: int, key: jax.Array
) -> dict[str, float]:
    """Means of the per-example metrics over all rows of ``x: [N, D]`` (one host sync)."""
    xb, mask = batching.pad_to_batches(np.asarray(x), min(batch_size, len(x)))
    return {
        k: float(v) for k, v in jax.device_get(eval_fn(params, xb, mask, key)).items()
    }


def fixed_binarization(x: np.ndarray, key: jax.Array) -> np.ndarray:
    """One Bernoulli sample of the intensities ``x: [N, D]``, fixed by ``key``: the
    evaluation set of a dynamically binarized run."""
    return np.asarray(jax.jit(batching.dynamic_binarize)(key, jnp.asarray(x)))


# ------------------------------------------------ importance-weighted bound, NLL, active units
def iwae_bound(
    log_weights: Callable,
    params,
    x: jax.Array,
    key: jax.Array,
    num_samples: int,
    chunk_size: int = 500,
) -> jax.Array:
    """L_k(x) = log (1/k) sum_{i<=k} p(x, z_i) / q(z_i|x), z_i ~ q; Burda et al. 2015, eq. 8.

    Nats, <= log p(x), increasing in k in expectation. Samples are drawn ``chunk_size``
    at a time (chunk c with ``fold_in(key, c)``; draws past k masked out) and folded
    into a running logsumexp by ``lax.scan``: memory O(chunk_size), not O(k).

    Args:
      log_weights: ``(params, x [D], key, S) -> (log_w [S], ...)``, e.g.
        the model's ``log_weights``.
      params, x: the model's parameters and one example ``x: [D]``.
      key, num_samples, chunk_size: PRNG key, k, and samples per chunk.

    Returns:
      Scalar L_k(x) in nats (a log-likelihood estimate: higher is better).
    """
    chunk = min(chunk_size, num_samples)
    num_chunks = -(-num_samples // chunk)

    def body(acc, c):
        log_w = log_weights(params, x, jax.random.fold_in(key, c), chunk)[0]  # [chunk]
        log_w = jnp.where(c * chunk + jnp.arange(chunk) < num_samples, log_w, -jnp.inf)
        return jnp.logaddexp(acc, jax.scipy.special.logsumexp(log_w)), None

    init = jnp.asarray(-jnp.inf, jnp.float32)
    total, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    return total - jnp.log(jnp.float32(num_samples))


def make_log_likelihood_fn(
    log_weights: Callable, num_samples: int = 5000, chunk_size: int = 500
) -> Callable:
    """Jitted fn(params, xb [nb, B, D], key, first_batch=0) -> L_k of every row [nb, B]
    (nats).

    Batches go through ``lax.scan``; within a batch ``iwae_bound`` is vmapped over
    examples, each with its own key (``fold_in(key, first_batch + b)`` split B ways), so
    a split into consecutive groups of batches gives the same numbers.
    """
    bound_one = functools.partial(
        iwae_bound, log_weights, num_samples=num_samples, chunk_size=chunk_size
    )

    def log_likelihoods(params, xb, key, first_batch=0):
        def body(_, inputs):
            x, i = inputs  # [B, D], batch index
            keys = jax.random.split(jax.random.fold_in(key, i), x.shape[0])
            return None, jax.vmap(bound_one, in_axes=(None, 0, 0))(params, x, keys)

        index = first_batch + jnp.arange(xb.shape[0])
        _, bounds = jax.lax.scan(body, None, (xb, index))
        return bounds  # [nb, B]

    return jax.jit(log_likelihoods)


def log_likelihoods(
    ll_fn: Callable,
    params,
    x: np.ndarray,
    batch_size: int,
    key: jax.Array,
    log_every: int = 0,
) -> np.ndarray:
    """L_k(x) of every row of ``x: [N, D]`` with ``ll_fn`` (``make_log_likelihood_fn``):
    [N] float64, nats. One host sync, or with ``log_every`` > 0 one per ``log_every``
    batches with a progress line (images done, running NLL, ETA) and the same numbers;
    padded rows are dropped by the mask."""
    xb, mask = batching.pad_to_batches(np.asarray(x), min(batch_size, len(x)))
    group = log_every if log_every > 0 else len(xb)
    parts, start = [], time.time()
    for first in range(0, len(xb), group):
        part = ll_fn(params, xb[first : first + group], key, first)
        parts.append(np.asarray(jax.device_get(part), np.float64))
        if log_every > 0:
            done = min(first + group, len(xb))
            so_far = np.concatenate(parts)[mask[:done] > 0]
            eta = (time.time() - start) * (len(xb) - done) / done
            logging.info(
                "L_k: %d / %d images, NLL so far %.3f nats, ETA %.0f s",
                len(so_far),
                int(mask.sum()),
                -so_far.mean(),
                eta,
            )
    return np.concatenate(parts)[mask > 0]  # [N]


def evaluate_log_likelihood(
    ll_fn: Callable,
    params,
    x: np.ndarray,
    batch_size: int,
    key: jax.Array,
    num_samples: int | None = None,
    log_every: int = 0,
    per_example: bool = False,
) -> dict[str, Any]:
    """Test log-likelihood estimate over ``x: [N, D]`` (Burda et al. 2015, §5: k = 5000).

    ``log_likelihoods`` (``log_every``: progress lines), summarised. Returns, in nats
    per image: ``log_likelihood`` = mean_x L_k(x) (<= 0 for binary data), ``nll`` =
    -that (the paper's "test NLL", lower is better), ``nll_stderr`` = std_x L_k(x) /
    sqrt(N) (spread over the test set, not the Monte-Carlo error), ``num_examples`` = N
    and ``num_samples`` = k when given; with ``per_example``, ``log_likelihoods`` = the
    [N] float64 array of L_k(x) (for paired comparisons of models on one test set).
    """
    bounds = log_likelihoods(ll_fn, params, x, batch_size, key, log_every)
    mean, stderr = mean_and_stderr(bounds)
    out = {"log_likelihood": mean, "nll": -mean, "nll_stderr": stderr}
    out["num_examples"] = float(len(bounds))
    if num_samples is not None:
        out["num_samples"] = float(num_samples)
    if per_example:
        out["log_likelihoods"] = bounds
    return out


def active_units(
    means_fn: Callable,
    params,
    x: np.ndarray,
    key: jax.Array,
    num_examples: int = 500,
    threshold: float = 1e-2,
) -> dict[str, Any]:
    """A_u = Var_x(E_q[z_u | x]) >= threshold over the first ``num_examples`` rows of x.

    Burda et al. 2015, §5.2 (threshold 1e-2; their code uses 500 training examples).
    ``means_fn`` is per example (the model's ``posterior_means``), vmapped here.
    x: [N, D]. Returns {"active_units": [count per layer], "variances": [[K_l] arrays]}.
    """
    x = jnp.asarray(x[:num_examples])
    keys = jax.random.split(key, x.shape[0])
    means = jax.jit(jax.vmap(means_fn, in_axes=(None, 0, 0)))(params, x, keys)
    variances = [np.asarray(jnp.var(m, axis=0)) for m in jax.device_get(means)]  # [K_l]
    counts = [int(np.sum(v >= threshold)) for v in variances]
    return {"active_units": counts, "variances": variances}


def evaluate_model(
    exp,
    params,
    x: np.ndarray,
    num_samples: int = 5000,
    *,
    chunk_size: int = 500,
    batch_size: int = 20,
    active_examples: int = 500,
    key: jax.Array | None = None,
    log_every: int = 0,
    per_example: bool = False,
) -> dict[str, Any]:
    """Test NLL = -mean_x L_k(x) over ``x: [N, D]`` and active units of a latent-variable
    model (Burda et al. 2015, Table 1 and §5.2).

    ``exp``: a ``build.Experiment`` (its model's ``log_weights`` and
    ``posterior_means``, its ``eval`` key, training data and binarization). L_k uses
    k = ``num_samples`` drawn ``chunk_size`` at a time, ``batch_size`` images per vmap;
    active units use the first ``active_examples`` training images (one fixed
    binarization if the run binarizes dynamically). ``key``: default
    ``fold_in(exp.keys["eval"], 5000)``; the units use ``fold_in(key, 1)`` (binarization)
    and ``fold_in(key, 2)``. ``log_every``, ``per_example``: see
    ``evaluate_log_likelihood``.

    Returns ``evaluate_log_likelihood``'s dict (nats per image: ``nll``,
    ``nll_stderr``, ...) plus ``active_units`` [count per stochastic layer],
    ``unit_variances`` ([K_l] arrays of Var_x E_q[z_u|x]) and ``seconds`` (wall time of
    the L_k estimate).
    """
    if key is None:
        key = jax.random.fold_in(exp.keys["eval"], 5000)
    ll_fn = make_log_likelihood_fn(exp.model.log_weights, num_samples, chunk_size)
    start = time.time()
    out = evaluate_log_likelihood(
        ll_fn,
        params,
        x,
        batch_size,
        key,
        num_samples,
        log_every=log_every,
        per_example=per_example,
    )
    seconds = time.time() - start
    units = experiment_active_units(exp, params, key, active_examples)
    out.update(active_units=units["active_units"], unit_variances=units["variances"])
    out["seconds"] = seconds
    return out


def experiment_active_units(
    exp, params, key: jax.Array | None = None, active_examples: int = 500
) -> dict[str, Any]:
    """``active_units`` of a trained experiment as ``evaluate_model`` counts them: its
    first ``active_examples`` training images (one fixed binarization, keyed
    ``fold_in(key, 1)``, if the run binarizes dynamically), ``fold_in(key, 2)`` for the
    posterior draws; ``key`` defaults to ``fold_in(exp.keys["eval"], 5000)``."""
    if key is None:
        key = jax.random.fold_in(exp.keys["eval"], 5000)
    train_x = exp.dataset.train[:active_examples]
    if exp.binarize:
        train_x = fixed_binarization(train_x, jax.random.fold_in(key, 1))
    return active_units(
        exp.model.posterior_means,
        params,
        train_x,
        jax.random.fold_in(key, 2),
        num_examples=active_examples,
    )
