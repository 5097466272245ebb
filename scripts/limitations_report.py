"""The limitations of autoencoders, measured: one report, a section per limitation.

  nice -n 10 python scripts/limitations_report.py --workdir ~/runs/limitations [--scale 0.5]

1. pixel: pixel MSE against classifier features under small transformations; the
   MSE optimum E[x | z] as the blur of reconstructions (``studies.pixel_metric``).
2. identity: over-complete codes reconstruct noise and other data; AUROC and probe
   accuracy against K, with and without denoising or sparsity (``studies.identity``).
3. contamination: one-class AUROC as the training set is contaminated, MSE against
   a robust loss (``studies.contamination``).
4. complexity: the same VAE and budget on MNIST and Fashion-MNIST
   (``studies.complexity``).
5. series: 1-D conv AE/VAE on UCR series: anomaly AUROC against kNN and isolation
   forest baselines, 2-D latent maps (``studies.series``).

(The unstructured latent space of a plain AE is ``scripts/autoencoder_report.py``'s
latent part.) Writes ``report.md``, ``results.json`` and the figures into --workdir;
``results.json`` keeps finished parts and models, so a rerun resumes. ``--scale``
multiplies every training budget.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax

from vae_jax import data as data_lib
from vae_jax import runtime, writer
from vae_jax.configs import ae_mnist, anomaly_mnist
from vae_jax.studies import (
    autoencoders,
    classifier,
    complexity,
    contamination,
    identity,
    pixel_metric,
    sample_quality,
    series,
)

PARTS = ("pixel", "identity", "contamination", "complexity", "series")


def _steps(num: int, scale: float) -> int:
    return max(10, int(num * scale))


def _table(rows: list[dict], keys=None) -> str:
    keys = keys or list(rows[0])
    return writer.markdown_table(keys, [[r.get(k) for k in keys] for r in rows], ".4g")


def pixel_part(workdir, scale, progress, save):
    mnist = data_lib.load_dataset("mnist")
    images = mnist.test[:1000].reshape(-1, *mnist.image_shape)
    labels = mnist.test_labels[:1000]
    nets = {
        "MLP hidden layer": sample_quality.feature_classifier(mnist),
        "conv net, pooled": classifier.train_pooled_features(
            mnist.train,
            mnist.train_labels,
            jax.random.key(1),
            mnist.image_shape,
            num_steps=_steps(1500, scale),
        ),
    }
    rows = []
    for name, net in nets.items():
        curves = pixel_metric.distance_curves(images, labels, net)
        rows += [{"features": name, **r} for r in curves]
        slug = "mlp" if name.startswith("MLP") else "conv"
        pixel_metric.write_distance_figure(curves, workdir / f"pixel_{slug}.png")
    blur = []
    for k in (2, 16):
        config = ae_mnist.get_config()
        config.model.latent_dim = k
        config.train.num_steps = _steps(2000, scale)
        exp, params, _ = autoencoders.fit(config, mnist)
        out = pixel_metric.mse_optimum_study(
            exp.model, params, mnist, image_path=workdir / f"mse_optimum_k{k}.png"
        )
        blur.append({"latent_dim": k, **out})
    keys = ["features", "transform", "size", "pixel_ratio", "feature_ratio"]
    md = [
        "## 1. Pixel-wise reconstruction misjudges what matters",
        (
            "Distance of 1000 MNIST test digits to their transformed selves, divided by "
            "the distance to an unrelated digit of another class (1 = as far as another "
            "digit), in pixel MSE and in a classifier's features; classifier_accuracy: "
            "how often the classifier still names the digit."
        ),
        _table(rows, keys + ["classifier_accuracy"]),
        "![pixel_mlp](pixel_mlp.png) ![pixel_conv](pixel_conv.png)",
        (
            "AE reconstructions against the MSE optimum E[x | z] (mean of the 20 training "
            "images with the nearest codes) and the sharp training image with the "
            "nearest code; sharpness: mean squared difference of adjacent pixels."
        ),
        _table(blur),
        "![k2](mse_optimum_k2.png) ![k16](mse_optimum_k16.png)",
    ]
    return {"distances": rows, "mse_optimum": blur}, md


def identity_part(workdir, scale, progress, save):
    mnist = data_lib.load_dataset("mnist")
    fashion = data_lib.load_dataset("fashion_mnist")
    rows = identity.identity_study(
        mnist,
        fashion,
        num_steps=_steps(1500, scale),
        done=progress,
        on_row=lambda key, row: save(key, row),
    )
    identity.write_identity_figure(rows, workdir / "identity.png", mnist.dim)
    md = [
        "## 2. Over-complete codes approach the identity",
        (
            "MNIST autoencoders D -> K -> D (a sigmoid code: plain, denoising with 30% "
            f"masking, sparse; or a linear code), {_steps(1500, scale)} steps "
            "each; other = Fashion-MNIST; noise = uniform pixels; AUROC of the "
            "reconstruction error for other/noise vs MNIST test images; linear probe on "
            "the codes (5000 train, 2000 test images)."
        ),
        _table(rows),
        "![identity](identity.png)",
    ]
    return {"rows": rows}, md


def contamination_part(workdir, scale, progress, save):
    mnist = data_lib.load_dataset("mnist", valid_size=0)
    config = anomaly_mnist.get_config()
    epochs = max(1, round(contamination.DEFAULT_EPOCHS * scale))
    rows = contamination.contamination_study(
        config, mnist, num_epochs=epochs, workdir=workdir / "contamination"
    )
    classes = list(rows[0]["auroc"])
    table = [
        {
            "objective": r["objective"],
            "fraction": r["fraction"],
            "mean_auroc": r["mean_auroc"],
            **{f"auroc_{c}": r["auroc"][c] for c in classes},
        }
        for r in rows
    ]
    md = [
        "## 3. Outliers in the training set",
        (
            f"One-class MNIST autoencoders (anomaly_mnist, {epochs} epochs) for digits "
            f"{', '.join(map(str, classes))}, each trained on its digit plus the given "
            "fraction of images of other digits; AUROC of the reconstruction error on "
            "the whole test split. robust_mse: Barron (2019) rho(e) = c^2 log(1 + e / "
            f"c^2) of the example's MSE e, c^2 = {config.objective.robust_scale}."
        ),
        _table(table),
        f"![contamination](contamination/{contamination.FIGURE})",
    ]
    return {"rows": rows}, md


def complexity_part(workdir, scale, progress, save):
    rows = complexity.complexity_study(
        num_steps=_steps(3000, scale),
        done=progress,
        on_row=lambda key, row: save(key, row),
        workdir=workdir,
    )
    md = [
        "## 4. Harder data, same model and budget",
        (
            "VAE 784-400-20, Bernoulli p(x|z) on dynamically binarized pixels, "
            f"{_steps(3000, scale)} steps per dataset. NLL: -L_100 over 1000 test images; "
            "recon_mse on grey levels; FD of 1000 prior samples in the dataset's own "
            "classifier features (data_fd: 1000 other test images), relative = FD / "
            "tr(S_real). No harder labelled image set is available offline."
        ),
        _table(rows),
        " ".join(f"![{r['dataset']}](samples_{r['dataset']}.png)" for r in rows),
    ]
    return {"rows": rows}, md


def series_part(workdir, scale, progress, save):
    anomaly_rows, latent_rows = [], []
    for name in ("gunpoint", "italy_power_demand"):
        anomaly_rows += series.series_anomaly_study(
            name, num_steps=_steps(1000, scale), workdir=workdir
        )
        latent_rows += series.series_latent_map(
            name, num_steps=_steps(1500, scale), workdir=workdir
        )
    md = [
        "## 5. Time series: 1-D convolutional AE and VAE",
        (
            "One-class anomaly detection on UCR series (each class as normal in turn; "
            "anomalies: the other classes, or injected spikes, level shifts and noise "
            "bursts), AUROC of the reconstruction error (AE), -ELBO (VAE), the mean "
            "distance to the k = 5 nearest normal training series, and an isolation forest."
        ),
        _table(anomaly_rows),
        "2-D codes: k-NN (k = 5) class probe accuracy on the test series.",
        _table(latent_rows),
        (
            "![gunpoint](series_latent_gunpoint.png) "
            "![italy](series_latent_italy_power_demand.png)"
        ),
    ]
    return {"anomaly": anomaly_rows, "latent": latent_rows}, md


PART_FNS = {
    "pixel": pixel_part,
    "identity": identity_part,
    "contamination": contamination_part,
    "complexity": complexity_part,
    "series": series_part,
}


def run(workdir: pathlib.Path, scale: float, parts) -> dict:
    """Runs the named parts in order, skipping finished ones; rewrites results.json
    after each finished model or part and report.md after each part."""
    path = workdir / "results.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    if state.get("scale", scale) != scale:
        raise ValueError(f"{path} was written at scale {state['scale']}, not {scale}.")
    state["scale"] = scale
    state.setdefault("parts", {})
    state.setdefault("progress", {})
    write = lambda: path.write_text(json.dumps(state, indent=1))
    for part in parts:
        if part in state["parts"]:
            continue
        progress = state["progress"].setdefault(part, {})

        def save(key, row, progress=progress):
            progress[key] = row
            write()

        start = time.time()
        result, md = PART_FNS[part](workdir, scale, progress, save)
        state["parts"][part] = {"result": result, "markdown": md}
        state["parts"][part]["seconds"] = time.time() - start
        write()
        _write_report(workdir, state)
    return state


def _write_report(workdir: pathlib.Path, state: dict) -> None:
    md = ["# Limitations of autoencoders, measured", f"scale = {state['scale']}"]
    for part in PARTS:
        if part in state["parts"]:
            done = state["parts"][part]
            md += done["markdown"] + [f"({done['seconds']:.0f} s)"]
    (workdir / "report.md").write_text("\n\n".join(md) + "\n")


def main():
    runtime.configure()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies budgets")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"from {PARTS}")
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {PARTS}")
    workdir = args.workdir.expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    run(workdir, args.scale, parts)
    print((workdir / "report.md").read_text())


if __name__ == "__main__":
    main()
