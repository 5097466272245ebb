"""Anomaly scores from autoencoders and VAEs, and one-class models trained in one program.

Scores are per example (higher = more anomalous): the AE's squared reconstruction
error, the VAE's negative ELBO, and the importance-weighted NLL -L_k (Burda et al.
2015). The one-class protocol (Ruff et al. 2018, §4.1) trains one model per class on
that class's training images only; here the C models are ONE XLA program:
``jax.vmap`` over stacked train states and per-class data of a scan-fused chunk.
"""

from __future__ import annotations

import functools
import pathlib
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from vae_jax import batching, checkpoint, evaluate, loop, objectives, optim, train
from vae_jax.studies.clustering import batch_indices_at, epochs_spanned


# ------------------------------------------------------------------ per-example scores
def reconstruction_score(params, x, key, *, model: nn.Module) -> jax.Array:
    """||x - g(f(x))||^2, summed over pixels (the DCAE score; Ruff et al. 2018, §4).
    x: [D] -> scalar; ``key`` is unused."""
    del key
    return jnp.sum(jnp.square(x - model.apply(params, x)))


def negative_elbo_score(params, x, key, *, model: nn.Module, num_samples: int = 1):
    """-ELBO(x) with S reparameterised samples (Kingma & Welling 2013, eq. 10; the
    model's own KL, closed form where it has one), nats. x: [D] -> scalar.

    On grey levels x in [0, 1] (the anomaly protocol here: no binarization) a
    Bernoulli p(x|z) gives the binary cross-entropy sum_d -x_d log s_d - (1 - x_d)
    log(1 - s_d), not a log density: its normaliser as a density on [0, 1] depends on
    the decoder output s (the continuous Bernoulli; Loaiza-Ganem & Cunningham 2019).
    So the score is "cross-entropy reconstruction error + KL", not -log p(x) up to a
    constant. AUROC uses only the ranking, so it stays a valid anomaly score; the
    models train and score on grey levels (as the AE's squared error does) rather than
    on binarized images, which would discard grey-level detail.
    """
    return objectives.negative_elbo(
        params, x, key, {"beta": jnp.float32(1.0)}, model=model, num_samples=num_samples
    )[0]


def iwae_nll_score(params, x, key, *, model: nn.Module, num_samples: int = 100):
    """-L_k(x), the importance-weighted NLL bound (Burda et al. 2015, eq. 8), nats.
    x: [D] -> scalar. On grey levels with a Bernoulli p(x|z), not an NLL bound of a
    normalised density (see ``negative_elbo_score``), only an anomaly score."""
    return -evaluate.iwae_bound(model.log_weights, params, x, key, num_samples)


def make_score_fn(model: nn.Module, name: str, num_samples: int = 1) -> Callable:
    """Per-example score(params, x [D], key) -> scalar: "recon" | "elbo" | "iwae"."""
    scores = {
        "recon": reconstruction_score,
        "elbo": negative_elbo_score,
        "iwae": iwae_nll_score,
    }
    if name not in scores:
        raise ValueError(f"Unknown score {name!r}; choose one of {sorted(scores)}.")
    if name == "recon":
        return functools.partial(reconstruction_score, model=model)
    return functools.partial(scores[name], model=model, num_samples=num_samples)


def make_score_all(score_one: Callable, batch_size: int = 500) -> Callable:
    """(stacked params [C, ...], x [N, D], key) -> scores [N, C] of every row under every
    class model. Padded batches are scanned on device; example i of batch b uses key
    split(fold_in(key, b), B)[i], the same for every class (common random numbers)."""
    per_class = jax.vmap(score_one, in_axes=(0, None, None))  # over C models
    per_batch = jax.vmap(per_class, in_axes=(None, 0, 0))  # over B examples

    @jax.jit
    def score_batches(params, xb, key):  # xb: [nb, B, D] -> [nb, B, C]
        def body(_, inputs):
            x, b = inputs
            return None, per_batch(
                params, x, jax.random.split(jax.random.fold_in(key, b), len(x))
            )

        return jax.lax.scan(body, None, (xb, jnp.arange(xb.shape[0])))[1]

    def score_all(params, x, key):
        xb, _ = batching.pad_to_batches(np.asarray(x), min(batch_size, len(x)))
        scores = np.asarray(score_batches(params, xb, key))
        return scores.reshape(-1, scores.shape[-1])[: len(x)]

    return score_all


# ------------------------------------------------------------------ one-class training
def stack_by_class(
    x: np.ndarray, y: np.ndarray, classes
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class training sets zero-padded to a common size: x: [N, D], y: [N] ->
    (xs [C, M, D], counts [C]) with M = the largest class; rows >= counts[c] are unused."""
    return pad_stack([x[y == c] for c in classes])


def pad_stack(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """C arrays [n_c, D] zero-padded to [C, max n_c, D], with counts [C]."""
    counts = np.array([len(p) for p in parts], np.int32)
    xs = np.zeros((len(parts), counts.max(), parts[0].shape[1]), parts[0].dtype)
    for i, part in enumerate(parts):
        xs[i, : len(part)] = part
    return xs, counts


def init_stacked_states(
    model, tx, example_x, init_keys, train_keys
) -> train.TrainState:
    """C independent TrainStates stacked along a leading axis (one per class model).
    init_keys, train_keys: [C] keys; example_x: [D]."""
    create = lambda ik, tk: train.create_train_state(model, tx, example_x, ik, tk)
    return jax.vmap(create)(init_keys, train_keys)


def make_one_class_chunk(
    step_fn: Callable, *, num_steps: int, batch_size: int, min_count: int | None = None
) -> Callable:
    """chunk(state, x_c [M, D], count, data_key) -> (state, metrics [T] each): T steps of
    one class model in a lax.scan, batches from the first ``count`` rows of ``x_c``
    (``batch_indices_at``; ``min_count``: the smallest class, default B). Un-jitted:
    ``jax.vmap`` it over classes (``vmap_chunk``)."""
    spanned = epochs_spanned(num_steps, min_count or batch_size, batch_size)

    def chunk(state, x_c, count, data_key):
        steps = state.step + jnp.arange(num_steps)
        idx = batch_indices_at(
            data_key, steps, count, batch_size, x_c.shape[0], spanned
        )  # [T, B]
        return jax.lax.scan(lambda s, i: step_fn(s, x_c[i]), state, idx)

    return chunk


def vmap_chunk(chunk: Callable) -> Callable:
    """The C one-class chunks as one jitted program over stacked (state, xs, counts, keys)."""
    return jax.jit(jax.vmap(chunk), donate_argnums=0)


def train_one_class_models(
    config: ml_collections.ConfigDict,
    model: nn.Module,
    xs,
    counts,
    num_epochs: int,
    workdir=None,
):
    """Trains C one-class models on ``xs: [C, M, D]`` (``counts: [C]``) for
    ``num_epochs`` x (M // B) steps each (``loop.run_loop``, one vmapped chunk per
    epoch); checkpoints into ``workdir`` after each epoch and resumes from it.
    Non-finite steps are skipped (``train.make_step_fn``). Returns (state, s/epoch)."""
    num_classes, capacity, dim = xs.shape
    steps_per_epoch = capacity // config.train.batch_size
    tx = optim.make_optimizer(
        config.optim, num_epochs * steps_per_epoch, steps_per_epoch
    )
    keys = train.split_root_key(config.seed)
    classes = jnp.arange(num_classes)
    class_keys = lambda k: jax.vmap(lambda c: jax.random.fold_in(k, c))(classes)
    state = init_stacked_states(
        model,
        tx,
        jnp.zeros((dim,)),
        class_keys(keys["init"]),
        class_keys(keys["train"]),
    )
    manager = None
    if workdir is not None:
        manager = checkpoint.make_manager(pathlib.Path(workdir) / "checkpoints", 2)
        state = checkpoint.restore_latest(manager, state) or state
    loss_one = objectives.make_objective(config, model)
    step_fn = train.make_step_fn(loss_one, objectives.make_hparams(config))
    chunk = vmap_chunk(
        make_one_class_chunk(
            step_fn,
            num_steps=steps_per_epoch,
            batch_size=config.train.batch_size,
            min_count=int(np.min(counts)),
        )
    )
    xs, counts, data_keys = (
        jnp.asarray(xs),
        jnp.asarray(counts),
        class_keys(keys["data"]),
    )
    seconds, start = [], [time.time()]  # start: the epoch's, after the last save

    def log(window, step):
        seconds.append(time.time() - start[0])
        loss = np.concatenate([w["objective"] for w in window], axis=1).mean(axis=1)
        logging.info(  # loss: [C], each class model's training objective
            "one-class epoch %d/%d objective per class %s (%.1f s)",
            step // steps_per_epoch,
            num_epochs,
            np.array2string(loss, precision=4),
            seconds[-1],
        )

    def save(state, step):
        if manager is not None:
            checkpoint.save(manager, state, step)
        start[0] = time.time()

    saved_in = str(manager.directory) if manager is not None else "no workdir"
    hooks = loop.LoopHooks(
        check=lambda metrics, step: None, log=log, save=save, saved_in=saved_in
    )
    runner = _EpochRunner(lambda s: chunk(s, xs, counts, data_keys), steps_per_epoch)
    total, cadence = num_epochs * steps_per_epoch, loop.Cadence.epochs(steps_per_epoch)
    state = loop.run_loop(state, int(state.step[0]), total, cadence, runner, hooks)
    return state, seconds


class _EpochRunner:
    """``loop.Runner`` of ``chunk(state) -> (state, metrics)``: one epoch per call."""

    def __init__(self, chunk: Callable, steps_per_epoch: int):
        self.chunk, self.steps_per_epoch = chunk, steps_per_epoch

    def max_steps(self, step: int) -> int:
        return self.steps_per_epoch - step % self.steps_per_epoch

    def __call__(self, state, step: int, num_steps: int):
        if step % self.steps_per_epoch or num_steps != self.steps_per_epoch:
            raise ValueError(f"{num_steps} steps from step {step} are not one epoch.")
        return self.chunk(state)


def one_class_aurocs(
    scores: np.ndarray, labels: np.ndarray, classes
) -> dict[int, float]:
    """AUROC of model c's scores (``scores[:, i]`` for classes[i]) for "label != c"
    over all test rows; Ruff et al. 2018's protocol. scores: [N, C]; labels: [N]."""
    from vae_jax.studies import cluster_metrics  # lazy: sklearn import

    return {
        int(c): cluster_metrics.auroc(labels != c, scores[:, i])
        for i, c in enumerate(classes)
    }


# ------------------------------------------------------------------ figures
def extreme_indices(
    scores: np.ndarray, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows with the k lowest and the k highest scores among rows where ``mask``.
    scores: [N], mask: [N] bool -> (least [k] by ascending, most [k] by descending
    score); fewer than k when fewer rows qualify. Ties keep row order."""
    rows = np.arange(len(scores)) if mask is None else np.flatnonzero(mask)
    order = rows[np.argsort(scores[rows], kind="stable")]
    return order[:k], order[::-1][:k]


def write_extremes_figure(
    scores: np.ndarray,
    labels: np.ndarray,
    images: np.ndarray,
    classes,
    show,
    path,
    *,
    k: int = 8,
    score_name: str = "score",
) -> dict[int, dict]:
    """Per class c in ``show``: the k least and k most anomalous test images of class c
    under model c (Ruff et al. 2018, Fig. 2) and histograms of model c's scores on
    normal (label c) vs anomalous test images (``plots.extremes_and_histograms``).

    scores: [N, C], column i from the model of classes[i]; labels: [N];
    images: [N, H, W]. Returns {c: {"least": [k] rows, "most": [k] rows, "auroc"}}.
    """
    from vae_jax import plots  # lazy: sklearn and matplotlib imports
    from vae_jax.studies import cluster_metrics

    rows, picked = [], {}
    for c in show:
        s, normal = scores[:, list(classes).index(c)], labels == c
        least, most = extreme_indices(s, k, normal)
        auroc = cluster_metrics.auroc(~normal, s)
        picked[int(c)] = {
            "least": least.tolist(),
            "most": most.tolist(),
            "auroc": auroc,
        }
        rows.append(
            {
                "name": f"class {c}",
                "least": images[least],
                "most": images[most],
                "least_scores": s[least],
                "most_scores": s[most],
                "normal": s[normal],
                "anomalous": s[~normal],
                "auroc": auroc,
            }
        )
    plots.extremes_and_histograms(rows, path, score_name=score_name)
    return picked
