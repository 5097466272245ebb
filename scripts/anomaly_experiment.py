"""One-class anomaly detection (Ruff et al. 2018 protocol) on MNIST and Fashion-MNIST.

For each dataset and model kind (AE, VAE): 10 one-class models, each trained on the
training images of one class only, all ten as ONE vmapped XLA program
(``vae_jax/anomaly.py``); every test image is scored by every model and the AUROC of
class c's model separates test images of c (normal) from the other nine. Writes
``<workdir>/results.md`` (per-class AUROC %, with the mean, beside published numbers)
and ``<workdir>/<dataset>/<kind>/aurocs.json``; training resumes from checkpoints.
``<workdir>/<dataset>/<kind>/extremes_<score>.png``: for the --figure_classes, the
8 least and most anomalous test images of the class and the score histograms of
normal vs anomalous test images.

  python scripts/anomaly_experiment.py --workdir=~/runs/anomaly/quick --epochs=5
"""

from __future__ import annotations

import json
import pathlib
import re

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from vae_jax import configs, models, runtime, train, writer
from vae_jax import data as data_lib
from vae_jax.studies import anomaly

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    configs.config_path("anomaly_mnist"),
    "One-class model config (model.kind is set per --kinds).",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output root (never inside the repo).")
_DATASETS = flags.DEFINE_list("datasets", ["mnist", "fashion_mnist"], "Datasets.")
_KINDS = flags.DEFINE_list(
    "kinds", ["ae", "vae"], "Model kinds: ae (recon error), vae (-ELBO)."
)
_EPOCHS = flags.DEFINE_integer("epochs", 20, "Epochs (of the largest class).")
_ELBO_SAMPLES = flags.DEFINE_integer("elbo_samples", 10, "S of the -ELBO score.")
_IWAE_SAMPLES = flags.DEFINE_integer(
    "iwae_samples", 0, "k of the -L_k score (VAE); 0 = off."
)
_FIGURE_CLASSES = flags.DEFINE_list(
    "figure_classes", ["1", "2", "5"], "Classes of the extremes/histogram figures."
)

# AUROC %, digits 0..9 (shared REFERENCES.md A4; Ruff et al. 2018, Table 1).
REFERENCE = {
    "mnist": {
        "OC Deep SVDD (Ruff et al. 2018, as quoted)": (
            98.0,
            99.7,
            91.7,
            91.9,
            94.9,
            88.5,
            98.3,
            94.6,
            93.9,
            96.5,
        ),
        "DCAE (Ruff et al. 2018) UNVERIFIED": (
            97.6,
            98.3,
            85.4,
            86.7,
            86.5,
            78.2,
            94.6,
            92.3,
            86.5,
            90.4,
        ),
    },
}


def model_config(kind: str):
    config = _CONFIG.value.copy_and_resolve_references()
    config.model.kind = kind
    config.objective.name = "mse" if kind == "ae" else "elbo"
    config.objective.likelihood = "bernoulli"
    return config


def run_kind(ds: data_lib.Dataset, kind: str, rundir: pathlib.Path) -> dict[str, dict]:
    """Trains the 10 one-class models of ``kind`` and returns {score name: AUROCs}."""
    config = model_config(kind)
    classes = list(range(10))
    xs, counts = anomaly.stack_by_class(ds.train, ds.train_labels, classes)
    model = models.build_model(
        config.model, likelihood="bernoulli", image_shape=ds.image_shape
    )
    state, seconds = anomaly.train_one_class_models(
        config, model, xs, counts, _EPOCHS.value, rundir
    )
    if kind == "ae":
        scores = {"AE recon error": anomaly.make_score_fn(model, "recon")}
    else:
        scores = {
            "VAE -ELBO": anomaly.make_score_fn(model, "elbo", _ELBO_SAMPLES.value)
        }
    if kind == "vae" and _IWAE_SAMPLES.value:
        k = _IWAE_SAMPLES.value
        scores[f"VAE -L_{k}"] = anomaly.make_score_fn(model, "iwae", k)
    out = {}
    for name, score_one in scores.items():
        batch = 500 if "L_" not in name else 50
        s = anomaly.make_score_all(score_one, batch)(
            state.params, ds.test, jax.random.PRNGKey(1)
        )
        out[name] = {
            "auroc": anomaly.one_class_aurocs(s, ds.test_labels, classes),
            "seconds_per_epoch": train.median_epoch_seconds(seconds),
        }
        slug = re.sub(r"\W+", "_", name).strip("_")  # "VAE -ELBO" -> "VAE_ELBO"
        out[name]["figure"] = anomaly.write_extremes_figure(
            s,
            ds.test_labels,
            ds.test.reshape(-1, *ds.image_shape),
            classes,
            [int(c) for c in _FIGURE_CLASSES.value],
            rundir / f"extremes_{slug}.png",
            score_name=name,
        )
    return out


def write_table(results: dict, path: pathlib.Path) -> None:
    header = ["score", *range(10), "mean"]
    lines = [
        "# One-class anomaly detection, AUROC % (normal class = column)",
        "",
        (
            f"{_EPOCHS.value} epochs (of the largest class), MLP "
            f"{tuple(_CONFIG.value.model.hidden)}-{_CONFIG.value.model.latent_dim}, "
            "pixels in [0, 1] (no global contrast normalisation), one seed."
        ),
        "",
    ]
    for name, rows in results.items():
        table = []
        for score, r in rows.items():
            values = [100 * r["auroc"][c] for c in range(10)]
            secs = r["seconds_per_epoch"]
            label = f"{score} (ours" + (
                f", {secs:.1f} s/epoch, all 10)" if secs else ")"
            )
            table.append(_row(label, values))
        table += [_row(ref, values) for ref, values in REFERENCE.get(name, {}).items()]
        lines += [f"## {name}", "", writer.markdown_table(header, table), ""]
    path.write_text("\n".join(lines))


def _row(label: str, values) -> list[str]:
    """label, the 10 AUROCs and their mean, to one decimal."""
    return [label, *(f"{v:.1f}" for v in values), f"{np.mean(values):.1f}"]


def main(argv):
    del argv
    runtime.configure()
    root = pathlib.Path(_WORKDIR.value).expanduser()
    results = {}
    for name in _DATASETS.value:
        ds = data_lib.load_dataset(name, valid_size=0)
        results[name] = {}
        for kind in _KINDS.value:
            rundir = root / name / kind
            out = run_kind(ds, kind, rundir)
            (rundir / "aurocs.json").write_text(json.dumps(out, indent=1))
            results[name].update(out)
            logging.info("%s %s: %s", name, kind, out)
            write_table(results, root / "results.md")
    print((root / "results.md").read_text())


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main)
