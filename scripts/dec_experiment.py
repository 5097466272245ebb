"""DEC (Xie et al. 2016) and IDEC (Guo et al. 2017) on MNIST and Fashion-MNIST.

For each dataset and seed: k-means on pixels, autoencoder pretraining (resumable, in
``<workdir>/<dataset>/seed<s>/ae``), k-means on the codes, DEC and IDEC. Writes
``<workdir>/results.md`` (ACC / NMI / ARI, mean ± std over seeds, beside published
numbers), ``<dataset>/seed<s>/results.json`` and ``<dataset>_embedding.png`` (2-D
PCA or t-SNE of the codes, before and after DEC, coloured by cluster).

  python scripts/dec_experiment.py --workdir=~/runs/dec/full                # paper-style
  python scripts/dec_experiment.py --workdir=~/runs/dec/smoke --datasets=mnist \\
      --seeds=0 --pretrain_epochs=2 --subset=10000 --kmeans_pixels_n_init=2
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from vae_jax import configs, runtime, train, writer
from vae_jax import data as data_lib
from vae_jax.studies import cluster_metrics, clustering

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    configs.config_path("dec_mnist"),
    "Autoencoder + clustering config.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output root (never inside the repo).")
_DATASETS = flags.DEFINE_list("datasets", ["mnist", "fashion_mnist"], "Datasets.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (init, k-means, batches).")
_EPOCHS = flags.DEFINE_integer(
    "pretrain_epochs", 300, "AE pretraining epochs (DEC-keras 300)."
)
_SUBSET = flags.DEFINE_integer(
    "subset", 0, "Images used (fixed random subset); 0 = all 70k."
)
_KM_PIXELS = flags.DEFINE_integer(
    "kmeans_pixels_n_init", 20, "k-means restarts on pixels; 0 = skip."
)
_EMBEDDING = flags.DEFINE_enum(
    "embedding", "pca", ["pca", "tsne"], "2-D map of the codes."
)
_PLOT_POINTS = flags.DEFINE_integer(
    "plot_points", 3000, "Points in the embedding figure."
)

# Published numbers, % (shared REFERENCES.md A3). DEC-keras README: mean of 10 trials.
REFERENCE = {
    "mnist": {
        "k-means (pixels)": "ACC 53 / NMI 50 (DEC-keras)",
        "AE + k-means": "ACC 87.9 / NMI 80.7 / ARI 78.4 (DEC-keras)",
        "DEC": "ACC 91.2 / NMI 86.9 / ARI 85.6 (DEC-keras); paper 84.3 (decimals UNVERIFIED)",
        "IDEC": "ACC 88.06 / NMI 86.72 (Guo et al. 2017; UNVERIFIED)",
    },
    "fashion_mnist": {
        "k-means (pixels)": "ACC 47 / NMI 51 (DEC-keras)",
        "AE + k-means": "ACC 61 / NMI 64 (DEC-keras)",
        "DEC": "ACC 62 / NMI 65 (DEC-keras)",
        "IDEC": "--",
    },
}
METHODS = tuple(REFERENCE["mnist"])


def load_all(name: str, subset: int) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images (train + test, as DEC-keras) or a fixed random subset."""
    ds = data_lib.load_dataset(name, valid_size=0)
    x = np.concatenate([ds.train, ds.test])
    y = np.concatenate([ds.train_labels, ds.test_labels])
    if subset:
        keep = np.random.default_rng(12345).permutation(len(x))[:subset]
        x, y = x[keep], y[keep]
    return x, y


def kmeans_pixels(x, y, seed: int, n_init: int) -> dict[str, float] | None:
    if n_init <= 0:
        return None
    _, labels = clustering.kmeans_init(x, 10, n_init, seed)
    return cluster_metrics.clustering_scores(y, labels)


def run_seed(name: str, seed: int, x, y, rundir: pathlib.Path) -> dict:
    """One seed of the table; ``results.json`` makes a rerun skip finished seeds."""
    out_path = rundir / "results.json"
    if out_path.exists():
        done = json.loads(out_path.read_text())
        if done.get("pretrain_epochs") == _EPOCHS.value:
            return done
    config = _CONFIG.value.copy_and_resolve_references()
    config.seed = seed
    start = time.time()
    model, params, seconds = clustering.pretrain_autoencoder(
        config, x, rundir / "ae", _EPOCHS.value
    )
    result = {
        "pretrain_epochs": _EPOCHS.value,
        "num_examples": len(x),
        "seconds_per_epoch": train.median_epoch_seconds(seconds),
        "k-means (pixels)": kmeans_pixels(x, y, seed, _KM_PIXELS.value),
    }
    embeddings = {}
    for method, idec in (("DEC", False), ("IDEC", True)):
        out = clustering.run_clustering(
            model,
            params,
            x,
            config.clustering,
            idec=idec,
            seed=seed,
            labels_true=y,
            workdir=rundir / method.lower(),
        )
        result["AE + k-means"] = cluster_metrics.clustering_scores(
            y, out["kmeans_labels"]
        )
        result[method] = cluster_metrics.clustering_scores(y, out["labels"])
        result[f"{method}_steps"] = out["history"][-1]["step"]
        result[f"{method}_seconds"] = out["history"][-1]["wall_s"]
        embeddings["before"] = (out["codes"], out["kmeans_labels"])
        encode = clustering.make_apply_all(
            lambda p, v: model.apply(p, v, method="encode"), 1000
        )
        embeddings[method] = (
            np.asarray(encode(out["state"].params["ae"], x)),
            out["labels"],
        )
    result["total_seconds"] = time.time() - start
    out_path.write_text(json.dumps(result, indent=1))
    arrays = {f"{k}_{i}": v[i] for k, v in embeddings.items() for i in (0, 1)}
    np.savez(rundir / "embeddings.npz", **arrays)  # [N, K] codes and [N] labels
    return result


def plot_embeddings(rundir: pathlib.Path, y: np.ndarray, path: pathlib.Path) -> None:
    """2-D map of AE codes (k-means clusters) and DEC / IDEC codes (their clusters)."""
    import matplotlib.pyplot as plt

    saved = np.load(rundir / "embeddings.npz")
    keep = np.random.default_rng(0).permutation(len(y))[: _PLOT_POINTS.value]
    panels = [
        ("before", "AE codes, k-means"),
        ("DEC", "after DEC"),
        ("IDEC", "after IDEC"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (key, title) in zip(axes, panels):
        codes, labels = saved[f"{key}_0"][keep], saved[f"{key}_1"][keep]
        xy = _project(codes)
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=3)
        acc = cluster_metrics.cluster_accuracy(y[keep], labels)
        ax.set_title(f"{title} (ACC {100 * acc:.1f}% on these)")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(
        f"{path.stem}: {_EMBEDDING.value.upper()} of the 10-d embedding, colour = cluster"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _project(codes: np.ndarray) -> np.ndarray:
    if _EMBEDDING.value == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, init="pca", random_state=0).fit_transform(codes)
    from sklearn.decomposition import PCA

    return PCA(2).fit_transform(codes)


# Table columns: NMI normalised by the arithmetic mean of the entropies (scikit-learn's
# default) and by their geometric mean (the DEC-era papers' and DEC-keras's NMI).
_METRICS = ("acc", "nmi", "ari", "nmi_geometric")


def _cells(results: list[dict], method: str) -> list[str]:
    """ACC, NMI, ARI, NMI (geometric) of ``method`` as "mean ± std" % over seeds ("--"
    if not run, or not recorded by an older run)."""
    runs = [r[method] for r in results if r.get(method)]
    cells = []
    for m in _METRICS:
        if not runs or any(m not in r for r in runs):
            cells.append("--")
            continue
        values = 100 * np.array([r[m] for r in runs])
        cells.append(f"{values.mean():.1f} ± {values.std():.1f}")
    return cells


def write_table(all_results: dict[str, list[dict]], path: pathlib.Path) -> None:
    lines = [
        "# DEC / IDEC clustering (ACC / NMI / ARI %, mean ± std over seeds)",
        "",
        (
            "NMI = I(Y; C) / ((H(Y) + H(C)) / 2) (scikit-learn >= 0.22); NMI geom. "
            "= I(Y; C) / sqrt(H(Y) H(C)), the normalisation of DEC-keras / IDEC."
        ),
        "",
    ]
    for name, results in all_results.items():
        r0 = results[0]
        lines += [
            (
                f"## {name}: {r0['num_examples']} images, {len(results)} seed(s), "
                f"{r0['pretrain_epochs']} pretraining epochs "
                f"({r0['seconds_per_epoch'] or float('nan'):.1f} s/epoch)"
            ),
            "",
        ]
        rows = [
            [method, *_cells(results, method), REFERENCE[name][method]]
            for method in METHODS
        ]
        header = ["method", "ACC", "NMI", "ARI", "NMI geom.", "published"]
        lines.append(writer.markdown_table(header, rows))
        steps = ", ".join(
            f"DEC {r['DEC_steps']} / IDEC {r['IDEC_steps']}" for r in results
        )
        lines += ["", f"Clustering steps per seed: {steps}.", ""]
        lines += [f"![embedding]({name}_embedding.png)", ""]
    path.write_text("\n".join(lines))


def main(argv):
    del argv
    runtime.configure()
    root = pathlib.Path(_WORKDIR.value).expanduser()
    all_results = {}
    for name in _DATASETS.value:
        x, y = load_all(name, _SUBSET.value)
        all_results[name] = []
        for seed in map(int, _SEEDS.value):
            rundir = root / name / f"seed{seed}"
            rundir.mkdir(parents=True, exist_ok=True)
            all_results[name].append(run_seed(name, seed, x, y, rundir))
            logging.info("%s seed %d: %s", name, seed, all_results[name][-1])
        plot_embeddings(
            root / name / f"seed{_SEEDS.value[0]}", y, root / f"{name}_embedding.png"
        )
        write_table(all_results, root / "results.md")
    print((root / "results.md").read_text())


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main)
