"""One-class anomaly detection with contaminated training sets: MSE vs robust losses.

Ruff et al. 2018's one-class protocol (``anomaly``) trains model c on class c only. Here
a fraction of each training set is replaced by images of the other classes (unlabelled
anomalies in the "normal" data, as in Zhou & Paffenroth 2017, §5) and the AUROC on the
clean test split is measured against that fraction, for the squared error, for
``robust_mse`` (Barron 2019, alpha = 0), which down-weights badly reconstructed
examples, and for ``trimmed_mse`` (Shen & Sanghavi 2019, ITLM per minibatch), which
drops the share alpha of each batch with the largest errors; alpha = 0.2 by default, a
known upper bound on the contamination (ITLM assumes alpha >= the outlier share).
Training is ``anomaly.train_one_class_models``: C models as one program.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from vae_jax import config_checks, models
from vae_jax import data as data_lib
from vae_jax.studies import anomaly

# The default scale: 4 digits, 5 epochs, 15 runs in about 10 minutes on one CPU core.
DEFAULT_CLASSES = (0, 2, 4, 6)
DEFAULT_EPOCHS = 5
# trimmed_mse's alpha: the largest default fraction, an upper bound on contamination
DEFAULT_TRIM_FRACTION = 0.2
FIGURE = "contamination_auroc.png"


def num_contaminants(count: int, fraction: float) -> int:
    """k = round(f n / (1 - f)): k / (n + k) = f up to rounding, for n clean images."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction={fraction!r} must lie in [0, 1).")
    return round(fraction * count / (1 - fraction))


def contaminated_sets(
    x: np.ndarray, y: np.ndarray, classes, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per class c: its images, then k_c = ``num_contaminants(n_c, fraction)`` images
    drawn without replacement from the rows with y != c, zero-padded like
    ``anomaly.stack_by_class``. x: [N, D], y: [N] -> (xs [C, M, D], counts [C]);
    rows n_c .. counts[c] - 1 of xs[c] are the contaminants. Each class draws from its
    own ``default_rng((seed, c))`` permutation, so a smaller fraction's contaminants
    are a prefix of a larger one's (nested, paired across fractions).
    """
    parts = []
    for c in classes:
        own, others = x[y == c], np.flatnonzero(y != c)
        k = num_contaminants(len(own), fraction)
        if k > len(others):
            raise ValueError(f"class {c}: {k} contaminants, {len(others)} available.")
        pick = np.random.default_rng((seed, int(c))).permutation(others)[:k]
        parts.append(np.concatenate([own, x[pick]]))
    return anomaly.pad_stack(parts)


def objective_config(
    config: ml_collections.ConfigDict,
    name: str,
    trim_fraction: float = DEFAULT_TRIM_FRACTION,
) -> ml_collections.ConfigDict:
    """``config`` with objective.name = ``name`` (an AE objective), validated; for
    ``trimmed_mse`` also objective.trim_fraction = ``trim_fraction`` (alpha)."""
    config = config.copy_and_resolve_references()
    config.objective.name = name
    if name == "trimmed_mse":
        config.objective.trim_fraction = float(trim_fraction)
    config_checks.validate_config(config)
    return config


def run_one(
    config: ml_collections.ConfigDict,
    dataset: data_lib.Dataset,
    xs: np.ndarray,
    counts: np.ndarray,
    classes,
    num_epochs: int,
) -> dict:
    """Trains the one-class models on ``xs: [C, M, D]`` and scores the test split by
    squared reconstruction error (``anomaly.make_score_fn(model, "recon")``).
    Returns {"auroc": {c: AUROC}, "mean_auroc", "seconds"}."""
    start = time.time()
    model = models.build_model(
        config.model,
        likelihood=config.objective.likelihood,
        image_shape=dataset.image_shape,
    )
    state, _ = anomaly.train_one_class_models(config, model, xs, counts, num_epochs)
    score_all = anomaly.make_score_all(anomaly.make_score_fn(model, "recon"))
    scores = score_all(state.params, dataset.test, jax.random.key(config.seed))
    aurocs = anomaly.one_class_aurocs(scores, dataset.test_labels, classes)
    return {
        "auroc": aurocs,
        "mean_auroc": float(np.mean(list(aurocs.values()))),
        "seconds": time.time() - start,
    }


def contamination_study(
    config: ml_collections.ConfigDict,
    dataset: str | data_lib.Dataset,
    fractions: Sequence[float] = (0, 0.01, 0.05, 0.1, 0.2),
    objectives: Sequence[str] = ("mse", "robust_mse", "trimmed_mse"),
    classes: Sequence[int] = DEFAULT_CLASSES,
    num_epochs: int = DEFAULT_EPOCHS,
    workdir: str | pathlib.Path | None = None,
    trim_fraction: float = DEFAULT_TRIM_FRACTION,
) -> list[dict]:
    """One-class AUROC (Ruff et al. 2018) of every (objective, fraction) pair.

    ``config``: an AE config (e.g. ``configs/anomaly_mnist.py``); its objective.name is
    replaced by each of ``objectives``, its seed draws the contaminants (the same for
    every objective). ``dataset``: a ``Dataset`` or a name (loaded with valid_size=0).
    ``trim_fraction``: trimmed_mse's alpha (replaces the config's).
    Returns one row per pair, fractions outer: {"objective", "fraction",
    "robust_scale" (c^2), "robust_shape" (alpha; both None unless robust_mse),
    "trim_fraction" (alpha; None unless trimmed_mse), "classes", "num_epochs",
    "contaminants" [C], "auroc" {c: AUROC}, "mean_auroc", "seconds"}. With a ``workdir``: each row is also ``<objective>_fraction_<f>.json``
    there, reused when its settings match (resume), and ``FIGURE`` plots the AUROC
    against the fraction.
    """
    if isinstance(dataset, str):
        dataset = data_lib.load_dataset(
            dataset, data_dir=config.data.data_dir or None, valid_size=0
        )
    root = None if workdir is None else pathlib.Path(workdir)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    classes, rows = [int(c) for c in classes], []
    clean = [int(np.sum(dataset.train_labels == c)) for c in classes]
    for fraction in fractions:
        xs, counts = contaminated_sets(
            dataset.train, dataset.train_labels, classes, fraction, config.seed
        )
        for name in objectives:
            run_config = objective_config(config, name, trim_fraction)
            settings = {
                "dataset": dataset.name,
                "classes": classes,
                "num_epochs": num_epochs,
                "config": json.loads(run_config.to_json_best_effort()),
            }
            path = None if root is None else root / f"{name}_fraction_{fraction:g}.json"
            row = _load_row(path, settings)
            if row is None:
                row = {
                    "objective": name,
                    "fraction": float(fraction),
                    **_loss_fields(run_config.objective),
                    "classes": classes,
                    "num_epochs": num_epochs,
                    "contaminants": [int(n) - m for n, m in zip(counts, clean)],
                    **run_one(run_config, dataset, xs, counts, classes, num_epochs),
                }
                if path is not None:
                    path.write_text(json.dumps({**row, "settings": settings}))
            logging.info(
                "%s, fraction %g: mean AUROC %.4f", name, fraction, row["mean_auroc"]
            )
            rows.append(row)
    if root is not None:
        write_figure(rows, root / FIGURE, title=f"{dataset.name}, classes {classes}")
    return rows


def _loss_fields(obj: ml_collections.ConfigDict) -> dict:
    """{"robust_scale": c^2, "robust_shape": alpha} of robust_mse, {"trim_fraction":
    alpha} of trimmed_mse; the other objectives' are None."""
    fields = {
        "robust_scale": "robust_mse",
        "robust_shape": "robust_mse",
        "trim_fraction": "trimmed_mse",
    }
    return {f: float(obj[f]) if obj.name == n else None for f, n in fields.items()}


def _load_row(path: pathlib.Path | None, settings: dict) -> dict | None:
    """The row saved at ``path`` if it was computed with ``settings``, else None."""
    if path is None or not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.pop("settings", None) != settings:
        return None
    saved["auroc"] = {int(c): v for c, v in saved["auroc"].items()}  # JSON: str keys
    return saved


def write_figure(rows: Sequence[dict], path, *, title: str = "") -> None:
    """Mean AUROC over classes against the contaminant fraction, one marked line per
    objective (thin lines: the classes). rows: ``contamination_study``'s."""
    import matplotlib.pyplot as plt  # lazy: no matplotlib at import

    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for i, name in enumerate(dict.fromkeys(r["objective"] for r in rows)):
        mine = sorted((r for r in rows if r["objective"] == name), key=_fraction)
        fractions, color, first = [r["fraction"] for r in mine], f"C{i}", mine[0]
        if first["robust_scale"] is not None:
            name += (
                f" (c^2 = {first['robust_scale']:g}, alpha = {first['robust_shape']:g})"
            )
        if first.get("trim_fraction") is not None:  # rows saved before it: no key
            name += f" (alpha = {first['trim_fraction']:g})"
        means = [r["mean_auroc"] for r in mine]
        ax.plot(fractions, means, marker="o", color=color, label=name)
        for c in first["classes"]:
            per_class = [r["auroc"][c] for r in mine]
            ax.plot(fractions, per_class, color=color, alpha=0.25, linewidth=0.8)
    ax.set_xlabel("contaminant fraction of each one-class training set")
    ax.set_ylabel("AUROC on the test split (mean; thin: per class)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fraction(row: dict) -> float:
    return row["fraction"]
