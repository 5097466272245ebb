"""Deep Embedded Clustering (Xie, Girshick & Farhadi 2016) and IDEC (Guo et al. 2017).

Pipeline: pretrain an autoencoder d-500-500-2000-10 (``pretrain_autoencoder``,
resumable), k-means on its codes gives the centroids mu_j (``kmeans_init``), then
``fit_dec`` alternates (a) a target P from the soft assignments Q of the whole data
and (b) ``update_interval`` = T SGD steps on KL(P || Q), fused into one ``lax.scan``,
until fewer than ``tol`` of the hard assignments change between refreshes. IDEC adds
the reconstruction error: L = L_r + gamma L_c (Guo et al. 2017, eq. 5).
Per-example maths below; ``jax.vmap`` is applied at the call sites.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state

from vae_jax import build, checkpoint, loop, writer
from vae_jax import data as data_lib


# ------------------------------------------------------------------ per-example maths
def log_soft_assignment(
    z: jax.Array, centroids: jax.Array, alpha: float = 1.0
) -> jax.Array:
    """log q_j, q_j ∝ (1 + ||z - mu_j||^2 / alpha)^(-(alpha + 1) / 2): Student's t kernel,
    Xie et al. 2016, eq. 1. z: [K]; centroids: [C, K] -> [C] (logsumexp = 0)."""
    sq_dist = jnp.sum(jnp.square(z[None, :] - centroids), axis=-1)  # [C]
    return jax.nn.log_softmax(-0.5 * (alpha + 1.0) * jnp.log1p(sq_dist / alpha))


def soft_assignment(
    z: jax.Array, centroids: jax.Array, alpha: float = 1.0
) -> jax.Array:
    """q_j of ``log_soft_assignment``: [K], [C, K] -> [C], sums to 1."""
    return jnp.exp(log_soft_assignment(z, centroids, alpha))


def target_distribution(q: jax.Array) -> jax.Array:
    """p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij; Xie et al. 2016,
    eq. 3. A dataset-level statistic (f_j sums over i): q: [N, C] -> [N, C]."""
    weight = jnp.square(q) / jnp.sum(q, axis=0)[None, :]
    return weight / jnp.sum(weight, axis=1, keepdims=True)


def kl_to_assignment(p: jax.Array, log_q: jax.Array) -> jax.Array:
    """KL(p || q) = sum_j p_j (log p_j - log q_j), 0 log 0 = 0; Xie et al. 2016, eq. 2.
    p, log_q: [C] -> scalar."""
    safe_p = jnp.where(p > 0, p, 1.0)
    return jnp.sum(jnp.where(p > 0, p * (jnp.log(safe_p) - log_q), 0.0))


def clustering_loss(
    params, x, p, *, model: nn.Module, alpha: float, gamma: float, reconstruct: bool
) -> tuple[jax.Array, dict]:
    """DEC: L_c = KL(p || q(x)) (Xie et al. 2016, eq. 2); IDEC: L_r + gamma L_c with
    L_r = ||x - g(f(x))||^2 / D (Guo et al. 2017, eq. 5; their code's per-pixel MSE).

    params: {"ae": autoencoder params, "centroids": [C, K]}; x: [D]; p: [C] (target).
    Returns (scalar, {"kl", "mse"}); "mse" is 0 for DEC (no decoder pass).
    """
    z = model.apply(params["ae"], x, method="encode")  # [K]
    kl = kl_to_assignment(p, log_soft_assignment(z, params["centroids"], alpha))
    if not reconstruct:
        return gamma * kl, {"kl": kl, "mse": jnp.zeros_like(kl)}
    mse = jnp.mean(jnp.square(x - model.apply(params["ae"], z, method="decode")))
    return mse + gamma * kl, {"kl": kl, "mse": mse}


def changed_fraction(labels: np.ndarray, previous: np.ndarray) -> float:
    """delta_label = (1/N) #{i : labels_i != previous_i}; DEC stops when < tol."""
    return float(np.mean(np.asarray(labels) != np.asarray(previous)))


def should_stop(labels: np.ndarray, previous: np.ndarray | None, tol: float) -> bool:
    """DEC's stopping rule (Xie et al. 2016, §3.1.3): fewer than ``tol`` of the points
    changed cluster since the last target refresh (never at the first refresh)."""
    return previous is not None and changed_fraction(labels, previous) < tol


# ------------------------------------------------------------------ batching (jittable)
def epochs_spanned(num_steps: int, min_count: int, batch_size: int) -> int:
    """Most epochs that ``num_steps`` consecutive steps can touch when an epoch has at
    least ``min_count // batch_size`` steps: the ``max_epochs`` of ``batch_indices_at``."""
    return -(-num_steps // max(min_count // batch_size, 1)) + 1


def batch_indices_at(
    key, steps, count, batch_size: int, capacity: int, max_epochs: int | None = None
) -> jax.Array:
    """Example indices [T, B] of consecutive global steps ``steps: [T]`` over the first
    ``count`` of ``capacity`` rows (``count`` may be traced, e.g. per class under vmap).

    Epoch e = s // (count // B) reads a permutation of the ``count`` rows drawn with
    ``fold_in(key, e)``; its ragged tail is dropped. Depends only on (key, s, count).
    One permutation per epoch touched, at most ``max_epochs`` (static; see
    ``epochs_spanned``; needed when ``count`` is traced), not one per step.
    """
    if max_epochs is None:
        if isinstance(count, jax.core.Tracer):
            raise ValueError("batch_indices_at: pass max_epochs when count is traced.")
        max_epochs = epochs_spanned(len(steps), int(count), batch_size)
    steps_per_epoch = jnp.maximum(count // batch_size, 1)
    epochs = steps // steps_per_epoch  # [T]

    def permutation(epoch):
        noise = jax.random.uniform(jax.random.fold_in(key, epoch), (capacity,))
        return jnp.argsort(jnp.where(jnp.arange(capacity) < count, noise, 2.0))

    perms = jax.vmap(permutation)(epochs[0] + jnp.arange(max_epochs))  # [E, capacity]

    def one(epoch, step):
        start = (step % steps_per_epoch) * batch_size
        row = perms[epoch - epochs[0]]
        return jax.lax.dynamic_slice(row, (start,), (batch_size,)).astype(jnp.int32)

    return jax.vmap(one)(epochs, steps)


def make_apply_all(fn_one: Callable, batch_size: int) -> Callable:
    """Lifts fn_one(params, x [D]) -> [...] to (params, x [N, D]) -> [N, ...] in
    zero-padded batches scanned on device: one compile per N, no dropped rows, and a
    device-resident ``x`` never leaves the device."""

    @jax.jit
    def apply_all(params, x):
        n = x.shape[0]
        b = min(batch_size, n)
        nb = -(-n // b)
        padding = [(0, nb * b - n)] + [(0, 0)] * (x.ndim - 1)
        xb = jnp.pad(x, padding).reshape(nb, b, *x.shape[1:])  # [nb, B, D]
        out = jax.lax.map(lambda v: jax.vmap(fn_one, in_axes=(None, 0))(params, v), xb)
        return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:n], out)

    return apply_all


# ------------------------------------------------------------------ stage 1: pretraining
def pretraining_dataset(x: np.ndarray) -> data_lib.Dataset:
    """All rows of ``x: [N, D]`` as the training split (no labels, no other split): what
    ``pretrain_autoencoder`` trains on."""
    return data_lib.Dataset(
        "pretrain", x, x[:0], x[:0], None, None, None, (x.shape[1], 1)
    )


def pretrain_autoencoder(
    config: ml_collections.ConfigDict, x: np.ndarray, workdir, num_epochs: int
) -> tuple[nn.Module, dict, list[float]]:
    """Trains ``config``'s autoencoder on all rows of ``x: [N, D]`` for ``num_epochs``
    epochs (``loop.run_loop``, one scan-fused chunk each), checkpointing into
    ``workdir`` after every epoch; a rerun resumes there. Non-finite steps are skipped
    (``train.make_step_fn``). Writes ``config.json`` there too, so the autoencoder
    loads as a run: ``runs.load_run(workdir, dataset=pretraining_dataset(x))``.
    Returns (model, params, seconds per new epoch)."""
    config = config.copy_and_resolve_references()
    config.train.num_epochs = num_epochs
    exp = build.build_experiment(config, pretraining_dataset(x))
    state = exp.init_state()
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    writer.write_config(workdir, config)
    manager = checkpoint.make_manager(pathlib.Path(workdir) / "checkpoints", 2)
    state = checkpoint.restore_latest(manager, state) or state
    seconds, start = [], [time.time()]  # start: the epoch's, after the last save

    def log(window, step):
        seconds.append(time.time() - start[0])
        mse, epoch = loop.window_means(window)["mse"], step // exp.steps_per_epoch
        logging.info(
            "pretrain epoch %d/%d mse %.5f (%.1f s)",
            epoch,
            num_epochs,
            mse,
            seconds[-1],
        )

    def save(state, step):
        checkpoint.save(manager, state, step)
        start[0] = time.time()

    hooks = loop.LoopHooks(
        check=lambda metrics, step: None,
        log=log,
        save=save,
        saved_in=str(manager.directory),
    )
    cadence = loop.Cadence.epochs(exp.steps_per_epoch)
    state = loop.run_loop(
        state, int(state.step), exp.total_steps, cadence, exp.chunk_runner(), hooks
    )
    return exp.model, state.params, seconds


# ------------------------------------------------------------------ stage 2: DEC / IDEC
def kmeans_init(codes: np.ndarray, num_clusters: int, n_init: int = 20, seed: int = 0):
    """k-means on the codes z: [N, K] (scikit-learn, ``n_init`` restarts): returns
    (centroids [C, K] float32, labels [N]); Xie et al. 2016, §3.2."""
    from sklearn.cluster import KMeans  # lazy: importing sklearn is slow

    km = KMeans(num_clusters, n_init=n_init, random_state=seed).fit(
        np.asarray(codes, np.float64)
    )
    return km.cluster_centers_.astype(np.float32), km.labels_


def make_dec_chunk(
    loss_one: Callable, *, num_steps: int, batch_size: int, data_key
) -> Callable:
    """Jitted chunk(state, x [N, D], p [N, C]) -> (state, metrics [T] each): T = num_steps
    SGD steps on the batch mean of ``loss_one(params, x [D], p [C])`` in one lax.scan.
    Batches follow ``batch_indices_at(data_key, step, N)``, so they depend on the step only."""

    def batch_loss(params, xb, pb):
        values, aux = jax.vmap(loss_one, in_axes=(None, 0, 0))(params, xb, pb)
        return values.mean(), jax.tree.map(jnp.mean, aux)

    def chunk(state, x, p):
        def step(state, idx):
            grad_fn = jax.value_and_grad(batch_loss, has_aux=True)
            (loss, aux), grads = grad_fn(state.params, x[idx], p[idx])
            return state.apply_gradients(grads=grads), {"loss": loss, **aux}

        steps = state.step + jnp.arange(num_steps)
        spanned = epochs_spanned(num_steps, x.shape[0], batch_size)
        idx = batch_indices_at(
            data_key, steps, x.shape[0], batch_size, x.shape[0], spanned
        )  # [T, B]
        return jax.lax.scan(step, state, idx)

    return jax.jit(chunk, donate_argnums=0)


def init_dec_state(ae_params, centroids, tx: optax.GradientTransformation):
    """TrainState over {"ae": autoencoder params, "centroids": mu [C, K]}: both trained.
    The params are copied: the DEC chunk donates its state, not the caller's arrays."""
    params = {
        "ae": jax.tree.map(jnp.copy, ae_params),
        "centroids": jnp.asarray(centroids, jnp.float32),
    }
    return train_state.TrainState.create(apply_fn=None, params=params, tx=tx)


def make_assign_all(
    model: nn.Module, alpha: float = 1.0, batch_size: int = 1000
) -> Callable:
    """(params, x [N, D]) -> q [N, C]: soft assignments of every row (eq. 1)."""

    def assign_one(params, x):
        z = model.apply(params["ae"], x, method="encode")
        return soft_assignment(z, params["centroids"], alpha)

    return make_apply_all(assign_one, batch_size)


def _read_history(path: pathlib.Path) -> list[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []


def fit_dec(
    state,
    x: np.ndarray,
    *,
    assign_all: Callable,
    chunk: Callable,
    tol: float,
    max_steps: int,
    labels_true: np.ndarray | None = None,
    workdir=None,
    save_every: int = 10,
):
    """DEC's outer loop (Xie et al. 2016, §3.1; DEC-keras ``DEC.fit``): refresh P from
    Q on all of ``x: [N, D]``, stop if < ``tol`` of the labels changed or after
    ``max_steps`` SGD steps, else run one T-step ``chunk``.

    With ``workdir``, the state and the previous labels are checkpointed every
    ``save_every`` refreshes and when it stops, and a rerun resumes from there: batches
    and targets depend on the step and the state only, so a resumed fit ends as an
    uninterrupted one does. Returns (state, hard labels [N], history: one dict per
    refresh, ``wall_s`` counting every process).
    """
    from vae_jax.studies import (
        cluster_metrics as metrics_lib,  # only for the optional progress log
    )

    x_device, previous, history, manager = jnp.asarray(x), None, [], None
    if workdir is not None:
        history_path = pathlib.Path(workdir) / "history.json"
        manager = checkpoint.make_manager(pathlib.Path(workdir) / "checkpoints", 2)
        template = {"state": state, "previous": np.zeros(len(x), np.int32)}
        restored = checkpoint.restore_latest(manager, template)
        if restored is not None:
            state, previous = restored["state"], np.asarray(restored["previous"])
            history = _read_history(history_path)
            logging.info("dec: resumed at step %d", int(state.step))

    def save(state, previous, history):
        # A stop right after a periodic save (or at the step a rerun resumed from)
        # finds this step on disk already, with the same state and labels.
        if manager is not None and previous is not None:
            if manager.latest_step() != int(state.step):
                tree = {"state": state, "previous": np.asarray(previous, np.int32)}
                checkpoint.save(manager, tree, int(state.step))
            writer.write_text_atomic(history_path, json.dumps(history))

    start = time.time() - (history[-1]["wall_s"] if history else 0.0)
    while True:
        q = assign_all(state.params, x_device)  # [N, C]
        labels = np.asarray(jnp.argmax(q, axis=-1))
        record = {"step": int(state.step)}
        if previous is not None:
            record["delta_label"] = changed_fraction(labels, previous)
        if labels_true is not None:
            record.update(metrics_lib.clustering_scores(labels_true, labels))
        record["wall_s"] = time.time() - start
        logging.info("dec %s", " ".join(f"{k} {v:.4g}" for k, v in record.items()))
        if should_stop(labels, previous, tol) or int(state.step) >= max_steps:
            save(state, previous, history)  # a rerun recomputes this last record
            return state, labels, [*history, record]
        history.append(record)
        state, step_metrics = chunk(state, x_device, target_distribution(q))
        history[-1]["loss"] = float(np.mean(jax.device_get(step_metrics["loss"])))
        previous = labels
        if len(history) % save_every == 0:
            save(state, previous, history)


def run_clustering(
    model: nn.Module,
    ae_params,
    x: np.ndarray,
    cfg: ml_collections.ConfigDict,
    *,
    idec: bool,
    seed: int,
    labels_true=None,
    workdir=None,
):
    """k-means init + ``fit_dec`` for DEC (SGD, KL only) or IDEC (Adam, L_r + gamma L_c).

    cfg: ``config.clustering`` (num_clusters, alpha, gamma, update_interval, tol,
    max_steps, batch_size, kmeans_n_init, dec_learning_rate, dec_momentum,
    idec_learning_rate). ``workdir``: checkpoints of the clustering stage (``fit_dec``).
    Returns dict(state, labels [N], kmeans_labels [N], codes [N, K] before, history).
    """
    encode_all = make_apply_all(functools.partial(model.apply, method="encode"), 1000)
    codes = np.asarray(encode_all(ae_params, x))
    centroids, km_labels = kmeans_init(codes, cfg.num_clusters, cfg.kmeans_n_init, seed)
    if idec:
        tx = optax.adam(cfg.idec_learning_rate)
    else:
        tx = optax.sgd(cfg.dec_learning_rate, momentum=cfg.dec_momentum)
    loss_one = functools.partial(
        clustering_loss,
        model=model,
        alpha=cfg.alpha,
        gamma=cfg.gamma if idec else 1.0,
        reconstruct=idec,
    )
    chunk = make_dec_chunk(
        loss_one,
        num_steps=cfg.update_interval,
        batch_size=cfg.batch_size,
        data_key=jax.random.key(seed),
    )
    state, labels, history = fit_dec(
        init_dec_state(ae_params, centroids, tx),
        x,
        assign_all=make_assign_all(model, cfg.alpha),
        chunk=chunk,
        tol=cfg.tol,
        max_steps=cfg.max_steps,
        labels_true=labels_true,
        workdir=workdir,
    )
    return {
        "state": state,
        "labels": labels,
        "kmeans_labels": km_labels,
        "codes": codes,
        "history": history,
    }
