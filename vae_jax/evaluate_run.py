"""What ``experiments/evaluate.py`` measures on a finished run (``runs.Run``), as one
JSON-ready dict, plus its one-screen summary, figures and exported latents.

Per split, in nats per image where a likelihood is involved: the ELBO with S samples
and its parts (means exactly as the runner's ``<split>/elbo`` for the same S, standard
errors over images), the test NLL = -mean L_k (``evaluate.evaluate_model``: the keys
of ``scripts/reproduce_iwae.py``, so the numbers agree), active units, reconstruction
MSE per pixel and PSNR, and sample quality in a small classifier's feature space
(``studies.sample_quality``: NOT Inception FID). Autoencoders get the reconstruction
numbers; the rest is listed under ``skipped`` with the reason.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
from typing import Any

import jax
import numpy as np

from vae_jax import evaluate, objectives, plots, runs, writer
from vae_jax.studies import sample_quality as quality_lib

SAMPLE_FOLD = 1_000_003  # samples: fold_in(keys["eval"], 1_000_003), as samples.png
PEAK = 1.0  # PSNR peak: pixels lie in [0, 1]


def elbo_section(run: runs.Run, x: np.ndarray, num_samples: int, batch_size: int):
    """ELBO, recon, KL over ``x: [N, D]`` (means: ``evaluate.evaluate_dataset``, the
    runner's program and key; ``*_stderr``: std over images / sqrt(N))."""
    loss_one = objectives.negative_elbo_for(run.model, num_samples)
    eval_fn = evaluate.make_eval_fn(loss_one, {"beta": 1.0})
    key = run.keys["eval"]
    means = evaluate.evaluate_dataset(eval_fn, run.params, x, batch_size, key)
    values = run.elbo_terms(x, key, num_samples, batch_size)
    out: dict[str, Any] = {
        "estimator": (
            f"ELBO = -(recon + KL), recon by S={num_samples} draws z ~ q(z|x), KL in "
            "closed form where the family has one; nats per image"
        ),
        "num_samples": num_samples,
        "batch_size": batch_size,
    }
    for name in ("elbo", "recon", "kl"):
        out[name] = means[name]
        out[f"{name}_stderr"] = evaluate.mean_and_stderr(values[name])[1]
    return out


def reconstruction_section(run: runs.Run, x: np.ndarray, batch_size: int):
    """Squared error per pixel of E[x | z = E_q[z|x]] (an AE: g(f(x))) and PSNR =
    10 log10(1 / MSE_n) per image (pixels in [0, 1]), means and standard errors."""
    recon = run.reconstruct(x, batch_size)
    images = np.asarray(run.dataset.images(x), np.float64)  # a CVAE's labels dropped
    mse = np.mean(np.square(images - recon), axis=1)  # [N]
    psnr = 10.0 * np.log10(PEAK**2 / np.maximum(mse, 1e-10))
    (mse_mean, mse_se), (psnr_mean, psnr_se) = map(
        evaluate.mean_and_stderr, (mse, psnr)
    )
    return {
        "mse_per_pixel": mse_mean,
        "mse_per_pixel_stderr": mse_se,
        "psnr_db": psnr_mean,
        "psnr_db_stderr": psnr_se,
        "estimator": "per image: mean_d (x_d - E[x_d|z=E_q[z|x]])^2, 10 log10(1/that)",
    }


def quality_section(
    run: runs.Run,
    split: str,
    num_samples: int,
    cache_dir,
    classifier_steps: int = quality_lib.NUM_STEPS,
) -> dict[str, Any]:
    """``sample_quality.sample_quality`` of min(``num_samples``, N) decoder means
    E[x|z], z ~ p(z) (key ``fold_in(keys["eval"], 1_000_003)``), against as many
    ``split`` images as loaded (no binarization), with training (or, for the train
    split, validation) images as the real-vs-real reference."""
    real = run.dataset.images(getattr(run, split))
    n = min(num_samples, len(real))
    net = quality_lib.feature_classifier(
        run.dataset, cache_dir, num_steps=classifier_steps
    )
    samples = run.sample(n, jax.random.fold_in(run.keys["eval"], SAMPLE_FOLD))
    reference = run.dataset.images(run.valid if split == "train" else run.train)
    reference = reference[:n] if len(reference) > 1 else None
    out: dict[str, Any] = quality_lib.sample_quality(net, samples, real[:n], reference)
    if run.conditional:
        out["conditional_accuracy"] = conditional_accuracy(run, net, n)
    out.update(
        num_samples=n,
        classifier_test_accuracy=net.info.get("test_accuracy"),
        feature_space=quality_lib.FEATURE_SPACE.format(
            units=net.model.widths[-1], dataset=run.dataset.name
        ),
    )
    return out


def evaluate_run(
    run: runs.Run,
    split: str = "test",
    *,
    nll_samples: int = 5000,
    elbo_samples: int = 1,
    batch_size: int | None = None,
    chunk_size: int = 500,
    active_examples: int = 500,
    sample_quality: bool = True,
    quality_samples: int = 10_000,
    classifier_cache=None,
    classifier_steps: int = quality_lib.NUM_STEPS,
    log_every: int = 50,
    max_examples: int | None = None,
) -> dict[str, Any]:
    """Every number ``experiments/evaluate.py`` reports on ``run.eval_split(split)``.

    ``batch_size``: images per batch; default the runner's ``eval_batch_size`` for the
    ELBO and reconstructions and 20 for L_k (``evaluate_model``'s, which the L_k keys
    depend on). ``nll_samples`` = k of L_k (0: skip it); ``log_every``: L_k progress
    every that many batches; ``max_examples``: score the split's first that many
    images only. Sections a model cannot have (or that were switched off) are named
    in ``result["skipped"]`` with the reason.
    """
    start, x = time.time(), run.eval_split(split)[:max_examples]
    if not len(x):
        raise ValueError(f"The {split} split of the run in {run.workdir} is empty.")
    batch = batch_size or run.config.train.eval_batch_size
    result: dict[str, Any] = {
        "workdir": str(run.workdir),
        "step": run.step,
        "split": split,
        "num_examples": len(x),
        "dataset": run.dataset.name,
        "model": run.family,
        "objective": run.config.objective.name,
    }
    skipped = {}
    if run.latent:
        result["elbo"] = elbo_section(run, x, elbo_samples, batch)
        if nll_samples > 0:
            nll = evaluate.evaluate_model(
                run.experiment,
                run.params,
                x,
                nll_samples,
                chunk_size=chunk_size,
                batch_size=batch_size or 20,
                active_examples=active_examples,
                log_every=log_every,
            )
            units = {"active_units": nll.pop("active_units")}
            units["variances"] = nll.pop("unit_variances")
            nll.update(estimator=f"-L_k, k={nll_samples}, nats per image")
            nll.update(chunk_size=chunk_size, batch_size=batch_size or 20)
            result["log_likelihood"] = nll
        else:
            skipped["log_likelihood"] = "nll_samples=0"
            units = evaluate.experiment_active_units(
                run.experiment, run.params, active_examples=active_examples
            )
        result["active_units"] = {
            "counts": units["active_units"],
            "latent_dims": [len(v) for v in units["variances"]],
            "threshold": 0.01,
            "examples": min(active_examples, len(run.train)),
            "variances": [
                np.round(np.asarray(v, np.float64), 5).tolist()
                for v in units["variances"]
            ],
        }
    else:
        why = f"the {run.family!r} model is not a latent-variable model"
        skipped.update(elbo=why, log_likelihood=why, active_units=why)
    result["reconstruction"] = reconstruction_section(run, x, batch)
    if not run.generative:
        skipped["sample_quality"] = f"the {run.family!r} model has no prior to sample"
    elif run.dataset.train_labels is None:
        skipped["sample_quality"] = f"{run.dataset.name} has no labels for a classifier"
    elif not sample_quality:
        skipped["sample_quality"] = "switched off"
    else:
        result["sample_quality"] = quality_section(
            run, split, quality_samples, classifier_cache, classifier_steps
        )
    result["skipped"] = skipped
    result["seconds"] = time.time() - start
    return result


def result_path(run: runs.Run, split: str, step: int | None = None) -> pathlib.Path:
    """``<workdir>/eval/<split>.json``, or ``<split>_step<step>.json`` for a chosen
    checkpoint."""
    name = split if step is None else f"{split}_step{step}"
    return run.workdir / "eval" / f"{name}.json"


def write_json(result: dict, path: str | pathlib.Path) -> None:
    """``result`` as indented JSON (non-finite floats as null), written atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_text_atomic(path, json.dumps(_jsonable(result), indent=1) + "\n")


def _jsonable(tree):
    if isinstance(tree, dict):
        return {k: _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(v) for v in tree]
    if isinstance(tree, (np.generic, np.ndarray)):
        return _jsonable(tree.tolist())
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


def conditional_accuracy(run: runs.Run, net, num_samples: int) -> float:
    """How often the classifier labels a conditional sample E[x|z, y], z ~ p(z),
    with its condition y (classes in turn; Sohn et al. 2015's use of a CVAE)."""
    labels = np.arange(num_samples) % run.dataset.condition_dim
    key = jax.random.fold_in(run.keys["eval"], SAMPLE_FOLD + 1)
    samples = run.sample_given(labels, key)
    predicted = np.argmax(net.probabilities(samples), axis=-1)
    return float(np.mean(predicted == labels))


def write_figures(run: runs.Run, split: str, directory, num_images: int = 16):
    """``<split>_reconstructions.png`` (images of the split, as scored, beside their
    reconstructions) and, for generative models, ``samples.png`` (64 E[x|z], z ~
    p(z), key as ``quality_section``) in ``directory``. Returns the paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shape = run.dataset.image_shape
    x = run.eval_split(split)[:num_images]
    images = run.dataset.images(x)
    pairs = np.stack([images, run.reconstruct(x)], axis=1).reshape(-1, *shape)
    paths = [directory / f"{split}_reconstructions.png"]
    plots.image_grid(pairs, paths[0], title=f"{split} | reconstruction", num_columns=8)
    if run.generative:
        key = jax.random.fold_in(run.keys["eval"], SAMPLE_FOLD)
        samples = run.sample(64, key).reshape(-1, *shape)
        paths.append(directory / "samples.png")
        plots.image_grid(samples, paths[1], title="E[x|z], z ~ p(z)")
    return paths


def export_latents(
    run: runs.Run, path: str | pathlib.Path, batch_size: int | None = None
) -> dict[str, np.ndarray]:
    """Writes ``path`` (.npz) with, for each non-empty split s of train / valid /
    test (as scored, ``run.eval_split``): ``s_mean`` [N, K] (E_q[z|x]; an
    autoencoder's code f(x)), ``s_logvar`` [N, K] (log Var_q[z_k|x], where the family
    has ``posterior_logvar``) and ``s_labels`` [N] (where the dataset has labels).
    Returns the arrays."""
    arrays = {}
    for split in ("train", "valid", "test"):
        x = run.eval_split(split)
        if not len(x):
            continue
        arrays[f"{split}_mean"] = run.encode(x, batch_size)
        try:
            arrays[f"{split}_logvar"] = run.posterior_logvar(x, batch_size)
        except NotImplementedError:
            pass
        if run.labels(split) is not None:
            arrays[f"{split}_labels"] = run.labels(split)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def _pm(section: dict, name: str, fmt: str) -> str:
    return f"{section[name]:{fmt}} ± {section[f'{name}_stderr']:{fmt}}"


def summary(result: dict) -> str:
    """A few lines for the terminal: each section's numbers, what was skipped."""
    head = (
        f"{result['workdir']}: step {result['step']}, {result['model']} "
        f"({result['objective']}) on {result['dataset']}, {result['split']} split, "
        f"{result['num_examples']} images"
    )
    lines = [head]
    if "elbo" in result:
        e = result["elbo"]
        lines.append(
            f"  ELBO (S={e['num_samples']})   {_pm(e, 'elbo', '.3f')} nats  "
            f"(recon {_pm(e, 'recon', '.3f')}, KL {_pm(e, 'kl', '.3f')})"
        )
    if "log_likelihood" in result:
        n = result["log_likelihood"]
        lines.append(
            f"  NLL = -L_{int(n['num_samples'])}  {_pm(n, 'nll', '.3f')} nats  "
            f"({n['seconds']:.1f} s)"
        )
    if "active_units" in result:
        a = result["active_units"]
        counts = ", ".join(f"{c} / {k}" for c, k in zip(a["counts"], a["latent_dims"]))
        lines.append(f"  active units   {counts} (Var_x E_q[z_u|x] >= 0.01)")
    r = result["reconstruction"]
    lines.append(
        f"  reconstruction MSE {_pm(r, 'mse_per_pixel', '.5f')} per pixel, "
        f"PSNR {_pm(r, 'psnr_db', '.2f')} dB"
    )
    if "sample_quality" in result:
        q = result["sample_quality"]
        data_fd = q.get("frechet_distance_data")
        floor = f" (real vs real {data_fd:.3f})" if data_fd is not None else ""
        lines.append(
            f"  samples        Frechet distance {q['frechet_distance']:.3f}{floor}, "
            f"IS {q['inception_score']:.2f} (data {q['inception_score_data']:.2f}), "
            f"N={q['num_samples']}; MLP-classifier features, not Inception"
        )
        if "conditional_accuracy" in q:
            lines.append(
                f"  conditional    {100 * q['conditional_accuracy']:.1f}% of samples "
                "E[x|z, y] classified as their y"
            )
    for name, why in result["skipped"].items():
        lines.append(f"  skipped        {name}: {why}")
    return "\n".join(lines)
