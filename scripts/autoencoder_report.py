"""Autoencoder family report: linear AE = PCA, denoising and sparse AEs, 2-D latents.

  nice -n 10 python scripts/autoencoder_report.py --workdir ~/runs/ae/report [--scale 0.5]

Trains every model in memory (one at a time) and writes ``report.md``, ``results.json``
and the figures into --workdir. ``--scale`` multiplies every config's num_steps.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import time

import jax

from vae_jax import data as data_lib
from vae_jax import runtime, writer
from vae_jax.configs import (
    ae_mnist,
    dae_mnist,
    linear_ae_mnist,
    sparse_ae_mnist,
    vae_frey,
    vae_mnist,
)
from vae_jax.studies import autoencoders, classifier, codes, latent

PARTS = ("linear", "denoising", "sparse", "latent")


def _scaled(config, scale: float, **train):
    config.train.update(**train)
    steps = (
        config.train.num_steps
        or config.train.num_epochs * 50_000 // config.train.batch_size
    )
    config.train.num_steps = max(1, int(steps * scale))
    return config


def sparse_configs(scale: float) -> dict:
    """196-unit codes (plain sigmoid AE vs sparse) and over-complete 1000-unit codes
    (no regulariser = the identity-mapping risk, sparse, denoising by masking)."""
    configs = {}
    for name, k, objective in [
        ("plain_196", 196, "mse"),
        ("sparse_196", 196, "sparse_mse"),
        ("overcomplete_plain_1000", 1000, "mse"),
        ("overcomplete_sparse_1000", 1000, "sparse_mse"),
        ("overcomplete_dae_1000", 1000, "denoising_mse"),
    ]:
        config = _scaled(
            sparse_ae_mnist.get_config(), scale * (1.0 if k == 196 else 0.5)
        )
        config.model.latent_dim = k
        config.objective.update(name=objective, corruption="masking", noise_level=0.3)
        configs[name] = config
    return configs


def _table(rows: list[dict]) -> str:
    """Markdown table of dicts with the same keys (the header); floats to .6g."""
    keys = list(rows[0])
    return writer.markdown_table(keys, [[r[k] for k in keys] for r in rows], ".6g")


def linear_part(mnist, workdir, scale):
    config = _scaled(linear_ae_mnist.get_config(), scale)
    rows = autoencoders.linear_ae_vs_pca(config, mnist, (2, 10, 32), workdir)
    setup = (
        f"{config.train.num_steps} Adam steps, batch {config.train.batch_size}, cosine "
        f"from {config.optim.learning_rate}. Targets: angle < 1 deg (K = 10), ratio <= 1.005."
    )
    md = ["## Linear AE vs PCA (centred MNIST)", setup, _table(rows)]
    return rows, md + ["![basis](linear_ae_basis.png)"]


def denoising_part(mnist, workdir, scale):
    config = _scaled(dae_mnist.get_config(), scale)
    rows = autoencoders.denoising_study(config, mnist, (0.1, 0.3, 0.5), workdir=workdir)
    md = ["## Denoising AE (additive Gaussian noise, PSNR in dB on 2000 test images)"]
    return rows, md + [_table(rows)] + [
        f"![dae](denoising_gaussian_{r['level']}.png)" for r in rows
    ]


def sparse_part(mnist, workdir, scale):
    res = codes.code_study(sparse_configs(scale), mnist, workdir=workdir)
    keys = (
        "latent_dim",
        "test_mse",
        "mean_activation",
        "mean_rel_dev_from_target",
        "frac_near_zero",
        "probe_accuracy",
    )
    rows = [
        {"model": n, **{k: r.get(k, float("nan")) for k in keys}}
        for n, r in res.items()
    ]
    md = ["## Sparse AE (rho = 0.05) and the identity-mapping limit", _table(rows)]
    return res, md + [f"![{n}](filters_{n}.png)" for n in res if n != "raw_pixels"]


def _fit_pair(ae, vae, dataset, latent_dim: int = 2) -> dict:
    """AE and VAE configs trained with K = latent_dim: name -> autoencoders.fit(...)."""
    ae.model.latent_dim = vae.model.latent_dim = latent_dim
    return {"AE": autoencoders.fit(ae, dataset), "VAE": autoencoders.fit(vae, dataset)}


def _confidence_rows(res: dict) -> list[dict]:
    names = {
        "test_images": "MNIST test images",
        "AE_prior": "AE, z ~ N(0, I)",
        "AE_fitted_gaussian_prior": "AE, z ~ N(mean, cov of AE codes)",
        "VAE_prior": "VAE, z ~ N(0, I)",
        "AE_midpoints": "AE, interpolation midpoints",
        "VAE_midpoints": "VAE, interpolation midpoints",
        "AE_reconstructions": "AE reconstructions",
        "VAE_reconstructions": "VAE reconstructions",
    }
    return [{"images": label, **res[key]} for key, label in names.items()]


def _mnist_fits(mnist, scale, latent_dim: int) -> dict:
    ae = _scaled(ae_mnist.get_config(), scale, num_steps=3000)
    vae = _scaled(vae_mnist.get_config(), scale, num_steps=3000)
    return _fit_pair(ae, vae, mnist, latent_dim)


def _mnist_latents(mnist, workdir, scale, key):
    """K = 2 AE vs VAE on MNIST, with the pixel-MLP classifier's confidence table.
    Returns (results, report lines, the classifier's predict_proba)."""
    fits = _mnist_fits(mnist, scale, 2)
    res = codes.latent_maps_of(fits["AE"], fits["VAE"], mnist, workdir=workdir)
    steps = max(300, int(3000 * scale))
    clf, clf_params = classifier.train_classifier(
        mnist.train, mnist.train_labels, jax.random.fold_in(key, 0), num_steps=steps
    )
    res["classifier_test_accuracy"] = accuracy = classifier.accuracy(
        clf, clf_params, mnist.test, mnist.test_labels
    )
    predict = functools.partial(classifier.class_probabilities, clf, clf_params)
    pairs = {name: (exp.model, params) for name, (exp, params, _) in fits.items()}
    res.update(
        latent.compare(
            pairs,
            mnist,
            jax.random.fold_in(key, 1),
            predict_proba=predict,
            workdir=workdir,
        )
    )
    text = (
        f"Classifier: MLP 784-256-10 on MNIST pixels, {steps} Adam steps, test accuracy "
        f"{accuracy:.4f}. On 2000 images each: the share it labels with p > 0.9 "
        "(frac_confident), its mean top probability, and the entropy (nats; log 10 = "
        "2.30) of the predicted-class histogram. Midpoints: t = 1/2 between the codes "
        "of test images i and 2000 + i. inception_score: exp E_x KL(p(y|x) || p(y)), "
        "from 1 to 10 (confident and diverse). nn_rms_distance: RMS pixel distance to "
        "the nearest of 10,000 training images (a classifier can be confident on "
        "images that look like no digit; this cannot)."
    )
    return res, [text, _table(_confidence_rows(res))], predict


def _mnist_sampling_k20(mnist, workdir, scale, key, predict) -> tuple[dict, list[str]]:
    """Prior samples and midpoints of K = 20 AE and VAE, judged by the same classifier:
    in 20 dimensions the AE's codes leave most of N(0, I) unmapped."""
    fits = _mnist_fits(mnist, scale, 20)
    pairs = {name: (exp.model, params) for name, (exp, params, _) in fits.items()}
    key = jax.random.fold_in(key, 20)
    res = latent.confidence_study(pairs, mnist, key, predict)
    latent.prior_sample_figure(
        pairs, mnist, key, workdir / "prior_samples_mnist_k20.png", confidence=res
    )
    latent.interpolation_figure(pairs, mnist, workdir / "interpolations_mnist_k20.png")
    return res, [
        "### The same at K = 20 (3000 steps each)",
        _table(_confidence_rows(res)),
        "![prior_samples_mnist_k20](prior_samples_mnist_k20.png)",
        "![interpolations_mnist_k20](interpolations_mnist_k20.png)",
    ]


def _frey_latents(workdir, scale, key) -> dict:
    """K = 2 AE vs VAE on Frey faces (no labels, no classifier): figures only."""
    frey = data_lib.load_dataset("frey_faces")
    # vae_frey's own 5000 steps at lr 3e-4 leave most of the Phi^-1 grid undecoded
    # (ELBO ~279 nats); 20000 at 1e-3 reach ~737 and a full face manifold (~2 min).
    vae = _scaled(vae_frey.get_config(), scale, num_steps=20000)
    vae.optim.learning_rate = 1e-3
    ae = vae.copy_and_resolve_references()
    ae.model.kind, ae.objective.name = "ae", "mse"
    fits = _fit_pair(ae, vae, frey)
    res = codes.latent_maps_of(fits["AE"], fits["VAE"], frey, workdir=workdir)
    pairs = {name: (exp.model, params) for name, (exp, params, _) in fits.items()}
    res.update(latent.compare(pairs, frey, key, workdir=workdir))
    return res


def latent_part(mnist, workdir, scale):
    key = jax.random.key(0)
    res, md = {}, ["## Latent spaces, K = 2: AE vs VAE"]
    res["mnist"], lines, predict = _mnist_latents(mnist, workdir, scale, key)
    res["frey"] = _frey_latents(workdir, scale, jax.random.fold_in(key, 2))
    for data, r in res.items():
        std = lambda v: "(" + ", ".join(f"{x:.3g}" for x in v) + ")"
        md.append(
            f"{data}: test-code std per axis AE {std(r['ae_code_std'])}, VAE "
            f"{std(r['vae_code_std'])}; AE train MSE {r['ae_train_mse']:.4g}, "
            f"VAE train ELBO {r['vae_train_elbo']:.4g}"
        )
    figures = [
        f"{fig}_{data}"
        for data in ("mnist", "frey_faces")
        for fig in (
            "prior_samples",
            "interpolations",
            "manifolds",
            "latent_ae_vs_vae",
            "reconstructions",
        )
    ]
    md += lines + [f"![{name}]({name}.png)" for name in figures]
    res["mnist_k20"], k20_lines = _mnist_sampling_k20(
        mnist, workdir, scale, key, predict
    )
    return res, md + k20_lines


PART_FNS = {
    "linear": linear_part,
    "denoising": denoising_part,
    "sparse": sparse_part,
    "latent": latent_part,
}


def run(workdir: pathlib.Path, scale: float, parts) -> dict:
    """Runs the named parts in order, rewriting the report after each."""
    mnist = data_lib.load_dataset("mnist")
    results, md = {}, ["# Autoencoder family report", f"scale = {scale}"]
    for part in parts:
        start = time.time()
        results[part], lines = PART_FNS[part](mnist, workdir, scale)
        md += lines + [f"({time.time() - start:.0f} s)"]
        _write(workdir, results, md)
    return results


def _write(workdir: pathlib.Path, results: dict, md: list[str]) -> None:
    """Writes what is done so far: a long run leaves a partial report, not nothing."""
    (workdir / "report.md").write_text("\n\n".join(md) + "\n")
    (workdir / "results.json").write_text(json.dumps(results, indent=1))


def main():
    runtime.configure()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies num_steps")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"in order, from {PARTS}"
    )
    args = parser.parse_args()
    workdir = args.workdir.expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    results = run(workdir, args.scale, args.parts.split(","))
    results["seconds"] = time.time() - start
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
