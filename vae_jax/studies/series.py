"""Autoencoders on time series: one-class anomaly detection against simple baselines,
synthetic anomalies, and 2-D latent maps (conv1d AE and VAE on UCR series).

The one-class protocol (Ruff et al. 2018, §4.1): train on the training series of one
class, score the test split, AUROC for "label != normal class". Baselines fitted on the
same normal series: mean distance to the k nearest training series (Ramaswamy et al.
2000 use the k-th) and an Isolation Forest (Liu et al. 2008). Each study returns plain
rows (dicts) and, with a ``workdir``, writes its figures there.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import data as data_lib
from vae_jax.configs import default
from vae_jax.studies import anomaly, autoencoders, cluster_metrics
from vae_jax.studies import codes as codes_lib

KINDS = ("spike", "level_shift", "noise_burst")
SPIKE, SHIFT, BURST = 4.0, 1.0, 1.0  # sizes in units of the series' own std
SCORES = {"mse": "recon", "elbo": "elbo"}  # objective name -> anomaly score name


# ------------------------------------------------------------------ synthetic anomalies
def inject_one(key, x, kind, magnitude: float = 1.0) -> jax.Array:
    """One anomaly of type ``KINDS[kind]`` in a series x: [T] -> [T]. With sigma =
    std(x), s = +-1 and a window w of W = ceil(T / 4) steps at a uniform start t0:
    spike x_t += s * 4 sigma at t = t0 + W // 2 only; level_shift x_t += s * sigma on w;
    noise_burst x_t += sigma * eps_t, eps_t ~ N(0, 1), on w; all times ``magnitude``."""
    length = x.shape[0]
    width = -(-length // 4)
    pos_key, sign_key, noise_key = jax.random.split(key, 3)
    start = jax.random.randint(pos_key, (), 0, length - width + 1)
    sign = jnp.where(jax.random.bernoulli(sign_key), 1.0, -1.0)
    t = jnp.arange(length)
    window = (t >= start) & (t < start + width)
    sigma = magnitude * jnp.std(x)
    noise = jax.random.normal(noise_key, (length,))
    added = jnp.stack(
        [
            jnp.where(t == start + width // 2, sign * SPIKE * sigma, 0.0),
            jnp.where(window, sign * SHIFT * sigma, 0.0),
            jnp.where(window, BURST * sigma * noise, 0.0),
        ]
    )  # [len(KINDS), T]
    return x + added[kind]


_inject_all = jax.jit(jax.vmap(inject_one, in_axes=(0, 0, 0, None)))  # [N] of each


def injected_anomalies(
    x: np.ndarray, key, fraction: float, kinds=KINDS, magnitude: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly round(fraction * N) rows of x: [N, T], drawn without replacement, each
    given one anomaly (``inject_one``), kinds in turn over the drawn rows; the other
    rows are returned unchanged. ``key``: a jax key or an int seed.
    Returns (x_anomalous [N, T] float32, is_anomaly [N] bool)."""
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"Unknown kinds {sorted(unknown)}; choose from {KINDS}.")
    key = jax.random.key(key) if isinstance(key, int) else key
    row_key, inject_key = jax.random.split(key)
    num = round(fraction * len(x))
    rows = np.asarray(jax.random.permutation(row_key, len(x)))[:num]
    kind = np.zeros(len(x), np.int32)
    kind[rows] = [KINDS.index(kinds[i % len(kinds)]) for i in range(num)]
    keys = jax.random.split(inject_key, len(x))
    changed = _inject_all(keys, jnp.asarray(x, jnp.float32), kind, magnitude)
    is_anomaly = np.zeros(len(x), bool)
    is_anomaly[rows] = True
    out = np.where(is_anomaly[:, None], np.asarray(changed), x)
    return out.astype(np.float32), is_anomaly


# ------------------------------------------------------------------ baselines
def knn_distance_scores(train_x: np.ndarray, x: np.ndarray, k: int = 5) -> np.ndarray:
    """(1/k) sum_{j <= k} ||x_n - t_(j)||_2 over the k nearest training series t:
    train_x: [M, T], x: [N, T] -> [N] (higher = more anomalous)."""
    from sklearn.neighbors import NearestNeighbors  # lazy: sklearn import

    k = min(k, len(train_x))
    distances, _ = NearestNeighbors(n_neighbors=k).fit(train_x).kneighbors(x)
    return distances.mean(axis=1)


def isolation_forest_scores(
    train_x: np.ndarray, x: np.ndarray, seed: int = 0, num_trees: int = 200
) -> np.ndarray:
    """s(x) = 2^(-E h(x) / c(psi)) of an Isolation Forest fitted on train_x: [M, T]
    (Liu et al. 2008, eq. 2; minus scikit-learn's score_samples): higher = more
    anomalous. x: [N, T] -> [N]."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=num_trees, random_state=seed).fit(train_x)
    return -forest.score_samples(x)


def knn_probe_accuracy(train_x, train_y, test_x, test_y, k: int = 5) -> float:
    """Test accuracy of a k-NN classifier (Euclidean, majority vote) fitted on
    (train_x [N, F], train_y [N]): how well F features separate the classes."""
    from sklearn.neighbors import KNeighborsClassifier

    probe = KNeighborsClassifier(n_neighbors=min(k, len(train_x)))
    return float(probe.fit(train_x, train_y).score(test_x, test_y))


# ------------------------------------------------------------------ models
def model_configs(
    dataset_name: str,
    *,
    num_steps: int,
    seed: int = 0,
    latent_dim: int = 8,
    conv_features: int = 16,
    batch_size: int = 16,
) -> dict[str, ml_collections.ConfigDict]:
    """{"ae": conv1d AE trained by MSE, "vae": conv1d VAE with Gaussian p(x|z) and one
    learned sigma (z-normalised series are not in [0, 1])}, from ``default``."""
    configs = {}
    for name, kind, objective in (("ae", "ae", "mse"), ("vae", "vae", "elbo")):
        config = default.get_config()
        config.seed = seed
        config.data.name = dataset_name
        config.model.update(kind=kind, architecture="conv1d", latent_dim=latent_dim)
        config.model.conv_features = conv_features
        config.objective.update(name=objective, likelihood="gaussian", sigma=0.0)
        config.train.update(num_steps=num_steps, batch_size=batch_size)
        config.train.steps_per_dispatch = min(num_steps, 500)  # one compiled chunk
        configs[name] = config
    return configs


def score_and_mse(exp, params, x: np.ndarray, key, num_samples: int = 16):
    """Per-series anomaly score (``SCORES`` of the objective: ||x - g(f(x))||^2 or
    -ELBO with S samples) and reconstruction MSE ||x - E[x|E_q z]||^2 / T.
    x: [N, T] -> ([N], [N])."""
    name = exp.config.objective.name
    if name not in SCORES:
        raise ValueError(f"No anomaly score for objective {name!r}; have {SCORES}.")
    score_one = anomaly.make_score_fn(exp.model, SCORES[name], num_samples)
    stacked = jax.tree.map(lambda p: p[None], params)  # one model: [1, ...]
    scores = anomaly.make_score_all(score_one)(stacked, x, key)[:, 0]
    return scores, np.mean(
        np.square(x - autoencoders.reconstructions(exp.model, params, x)), axis=1
    )


def anomaly_sets(
    dataset, c, key, fraction: float = 0.5, kinds=KINDS, magnitudes=(1.0,)
) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Test sets for normal class c as (description, x [N, T], is_anomaly [N]):
    "classes" (the whole test split, anomalous = label != c; magnitude NaN), then per
    kind and magnitude the class-c test series with ``fraction`` of them injected.
    A kind's key, ``fold_in(key, its index)``, is shared by its magnitudes: the same
    rows, places and signs at every size."""
    x, y = dataset.test, dataset.test_labels
    sets = [({"anomalies": "classes", "magnitude": float("nan")}, x, y != c)]
    for i, kind in enumerate(kinds):
        for m in magnitudes:
            injected = injected_anomalies(
                x[y == c], jax.random.fold_in(key, i), fraction, (kind,), m
            )
            sets.append(({"anomalies": kind, "magnitude": float(m)}, *injected))
    return sets


def detector_scores(configs, train_set, x, key, knn_k: int = 5, seed: int = 0):
    """Anomaly scores of x: [N, T] by the baselines ("knn", "iforest") and by each
    model of ``configs`` (``autoencoders.fit``), all fitted on ``train_set.train``
    [M, T]; and each model's reconstruction MSE. Returns ({name: [N]}, {model: [N]})."""
    scores = {
        "knn": knn_distance_scores(train_set.train, x, knn_k),
        "iforest": isolation_forest_scores(train_set.train, x, seed),
    }
    mses = {}
    for name, config in configs.items():
        exp, params, _ = autoencoders.fit(config, train_set)
        scores[name], mses[name] = score_and_mse(exp, params, x, key)
    return scores, mses


# ------------------------------------------------------------------ studies
def series_anomaly_study(
    dataset_name: str = "gunpoint",
    *,
    num_steps: int = 1000,
    seed: int = 0,
    normal_classes=None,
    kinds=KINDS,
    magnitudes=(0.5, 1.0),
    fraction: float = 0.5,
    knn_k: int = 5,
    configs: dict | None = None,
    workdir=None,
) -> list[dict]:
    """One-class detection (Ruff et al. 2018, §4.1) on ``dataset_name`` per normal
    class c (default: every class): models (``configs``, default ``model_configs``)
    and baselines fitted on the training series of class c, scored on each of
    ``anomaly_sets``. With ``workdir``: series_injected_<data>.png (2 injected test
    series of the first class per kind at the last magnitude, clean ones dashed).

    Returns one row per (c, set): dataset, normal_class, anomalies, magnitude,
    anomaly_rate, auroc_<detector> (knn, iforest and the models) and
    mse_<model>_normal / _anomalous (mean reconstruction MSE of each part).
    """
    dataset = data_lib.load_dataset(dataset_name, valid_size=0, seed=seed)
    configs = configs or model_configs(dataset_name, num_steps=num_steps, seed=seed)
    labels = dataset.train_labels
    classes = np.unique(labels) if normal_classes is None else normal_classes
    inject_key, score_key = jax.random.split(jax.random.key(seed))
    rows = []
    for c in classes:
        key = jax.random.fold_in(inject_key, c)
        sets = anomaly_sets(dataset, c, key, fraction, kinds, magnitudes)
        x_all = np.concatenate([x for _, x, _ in sets])  # scored in one go
        bounds = np.cumsum([0] + [len(x) for _, x, _ in sets])
        keep = labels == c
        train_set = dataclasses.replace(
            dataset, train=dataset.train[keep], train_labels=labels[keep]
        )
        scores, mses = detector_scores(
            configs, train_set, x_all, jax.random.fold_in(score_key, c), knn_k, seed
        )
        for (about, _, is_anomaly), a, b in zip(sets, bounds, bounds[1:]):
            row = {"dataset": dataset_name, "normal_class": int(c), **about}
            row["anomaly_rate"] = float(np.mean(is_anomaly))
            for name, s in scores.items():
                row[f"auroc_{name}"] = cluster_metrics.auroc(is_anomaly, s[a:b])
            for name, mse in mses.items():
                row[f"mse_{name}_normal"] = float(np.mean(mse[a:b][~is_anomaly]))
                row[f"mse_{name}_anomalous"] = float(np.mean(mse[a:b][is_anomaly]))
            rows.append(row)
        if workdir is not None and c == classes[0]:
            clean = dataset.test[dataset.test_labels == c]
            shown = [s for s in sets[1:] if s[0]["magnitude"] == magnitudes[-1]]
            from vae_jax import plots  # lazy: matplotlib import

            plots.series_grid(
                np.concatenate([x[is_anomaly][:2] for _, x, is_anomaly in shown]),
                pathlib.Path(workdir) / f"series_injected_{dataset_name}.png",
                title=f"{dataset_name}, class {c}: {', '.join(kinds)} "
                f"x{magnitudes[-1]:g}",
                num_columns=2,
                overlay=np.concatenate([clean[m][:2] for _, _, m in shown]),
                labels=("injected", "clean"),
            )
    return rows


def series_latent_map(
    dataset_name: str = "gunpoint",
    *,
    num_steps: int = 1500,
    seed: int = 0,
    knn_k: int = 5,
    per_class: int = 3,
    configs: dict | None = None,
    workdir=None,
) -> list[dict]:
    """K = 2 codes (AE f(x), VAE E_q[z|x]) of models trained on all training series:
    test MSE and a k-NN class probe in the code space, next to the same probe on the
    raw series (test_mse NaN). With ``workdir``: series_latent_<data>.png (test codes
    by class) and series_recon_<model>_<data>.png (``per_class`` test series of each
    class, reconstructions dashed)."""
    dataset = data_lib.load_dataset(dataset_name, valid_size=0, seed=seed)
    configs = configs or model_configs(
        dataset_name, num_steps=num_steps, seed=seed, latent_dim=2
    )
    xtr, ytr = dataset.train, dataset.train_labels
    xte, yte = dataset.test, dataset.test_labels
    raw = knn_probe_accuracy(xtr, ytr, xte, yte, knn_k)
    rows = [{"dataset": dataset_name, "representation": "raw series"}]
    rows[0].update(latent_dim=dataset.dim, test_mse=float("nan"), knn_probe=raw)
    shown = np.concatenate(
        [np.flatnonzero(yte == c)[:per_class] for c in np.unique(yte)]
    )
    panels = {}
    for name, config in configs.items():
        exp, params, _ = autoencoders.fit(config, dataset)
        ctr, cte = (codes_lib.encode_codes(exp.model, params, x) for x in (xtr, xte))
        recon = autoencoders.reconstructions(exp.model, params, xte)
        rows.append({"dataset": dataset_name, "representation": f"{name} codes"})
        rows[-1].update(
            latent_dim=int(ctr.shape[1]),
            test_mse=float(np.mean(np.square(xte - recon))),
            knn_probe=knn_probe_accuracy(ctr, ytr, cte, yte, knn_k),
        )
        panels[f"{name}: test codes (probe {rows[-1]['knn_probe']:.2f})"] = (cte, yte)
        if workdir is not None:
            from vae_jax import plots  # lazy: matplotlib import

            plots.series_grid(
                xte[shown],
                pathlib.Path(workdir) / f"series_recon_{name}_{dataset_name}.png",
                title=f"{dataset_name}: {name}, K = {ctr.shape[1]}; rows by class",
                num_columns=per_class,
                overlay=recon[shown],
            )
    if workdir is not None:
        from vae_jax import plots  # lazy: matplotlib import

        plots.class_scatter(
            panels,
            pathlib.Path(workdir) / f"series_latent_{dataset_name}.png",
            suptitle=f"{dataset_name}: test codes coloured by class",
        )
    return rows
