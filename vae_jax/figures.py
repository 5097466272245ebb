"""The standard figures of a run: training curves, reconstructions, prior samples.

Every figure says what it shows: curves name their unit (nats per image for the
ELBO and its terms, squared error per pixel for the MSE) and split, the
reconstructions their split, and ``samples.png`` that it shows decoder means of
z ~ p(z), not samples of x.
"""

from __future__ import annotations

import pathlib

import jax
import ml_collections
import numpy as np

from vae_jax import plots, writer

NATS = "nats per image"
SQUARED_ERROR = "squared error per pixel"
SPLIT_LABELS = {
    "train": "train (minibatch means)",
    "valid": "valid (whole split)",
    "test": "test (whole split)",
}
SAMPLES_TITLE = (
    "decoder means E[x | z] of z ~ p(z)\n(means of p(x | z), not samples of x)"
)


SQUARED_ERROR_IMAGE = "squared error per image"


def _elbo_text(obj) -> str:
    if obj.kl_warmup_steps:
        warmup = f"beta 0 -> {obj.beta:g} in {obj.kl_warmup_steps} steps"
        text = f"recon + beta KL, {warmup}"
    elif obj.beta == 1:
        text = "recon + KL" + ("" if obj.free_bits else " (= -ELBO)")
    else:
        text = f"recon + {obj.beta:g} KL"
    if obj.free_bits:
        text += f", free bits {obj.free_bits:g} nats"
    return text


# objective.name -> obj -> (what train/objective is, its unit)
_OBJECTIVE_TEXT = {
    "elbo": lambda o: (_elbo_text(o), NATS),
    "iwae": lambda o: (f"-L_k, k = {o.num_samples}", NATS),
    "iwae_dreg": lambda o: (f"-L_k, k = {o.num_samples}, DReG gradient", NATS),
    "miwae": lambda o: (
        f"-MIWAE: mean of M = {o.num_groups} L_k, k = {o.num_samples}",
        NATS,
    ),
    "piwae": lambda o: (
        f"-L_Mk for p, -MIWAE(M = {o.num_groups}, k = {o.num_samples}) for q",
        NATS,
    ),
    "ciwae": lambda o: (
        f"-({o.ciwae_beta:g} ELBO + {1 - o.ciwae_beta:g} L_k), k = {o.num_samples}",
        NATS,
    ),
    "info_vae": lambda o: (
        (
            f"recon + {1 - o.info_alpha:g} KL + "
            f"{o.info_alpha + o.mmd_weight - 1:g} MMD^2(q(z), p(z))"
        ),
        NATS,
    ),
    "beta_tcvae": lambda o: (
        f"recon + KL + {o.tc_beta - 1:g} TC ({o.tc_estimator})",
        NATS,
    ),
    "wae_mmd": lambda o: (
        f"||x - g(f(x))||^2 + {o.mmd_weight:g} MMD^2(q(z), p(z))",
        f"{SQUARED_ERROR_IMAGE} (+ penalty)",
    ),
    "rae_l2": lambda o: (
        (
            f"||x - g(f(x))||^2 + {o.code_penalty:g} ||z||^2 / 2 + "
            f"{o.decoder_weight_decay:g} ||theta_dec||^2"
        ),
        f"{SQUARED_ERROR_IMAGE} (+ penalty)",
    ),
    "rae_gp": lambda o: (
        (
            f"||x - g(f(x))||^2 + {o.code_penalty:g} ||z||^2 / 2 + "
            f"{o.gradient_penalty:g} ||dg/dz||_F^2"
        ),
        f"{SQUARED_ERROR_IMAGE} (+ penalty)",
    ),
    "vq": lambda o: (
        f"||x - g(z_q)||^2 + ||sg[z_e] - e||^2 + {o.commitment:g} ||z_e - sg[e]||^2"
        if o.codebook_update == "gradient"
        else f"||x - g(z_q)||^2 + {o.commitment:g} ||z_e - sg[e]||^2, EMA codebook",
        f"{SQUARED_ERROR_IMAGE} (+ VQ terms)",
    ),
    "sparse_mse": lambda o: (
        f"MSE + {o.sparsity_weight:g} sum_j KL(rho || rho_hat_j)",
        f"{SQUARED_ERROR} (+ penalty)",
    ),
    "denoising_mse": lambda o: (
        f"MSE of the {o.corruption}-corrupted input's reconstruction",
        SQUARED_ERROR,
    ),
    "robust_mse": lambda o: (
        (
            f"{o.robust_scale:g} log(1 + MSE / {o.robust_scale:g})"
            if o.robust_shape == 0
            else f"Barron rho(MSE; alpha = {o.robust_shape:g}, s = {o.robust_scale:g})"
        ),
        SQUARED_ERROR,
    ),
    "trimmed_mse": lambda o: (
        f"(1/B) sum of the lowest {1 - o.trim_fraction:g} B of the batch's MSEs",
        SQUARED_ERROR,
    ),
    "mse": lambda o: ("MSE", SQUARED_ERROR),
}


def describe_objective(config: ml_collections.ConfigDict) -> str:
    """What ``train/objective`` is for ``config.objective``, e.g. "recon + 0.5 KL"
    (an objective registered elsewhere: its name)."""
    return objective_text_and_unit(config)[0]


def objective_text_and_unit(config: ml_collections.ConfigDict) -> tuple[str, str]:
    """(``describe_objective``, the unit of ``train/objective``)."""
    obj = config.objective
    describe = _OBJECTIVE_TEXT.get(obj.name)
    return describe(obj) if describe else (obj.name, "per example")


def curve_panels(exp) -> list[tuple[str, str, list[str]]]:
    """(title, unit, metric keys) of each panel of ``curves.png`` for ``exp``; panels
    whose metrics the run does not record are left out when plotted."""
    every = lambda name: [f"{split}/{name}" for split in SPLIT_LABELS]
    text, unit = objective_text_and_unit(exp.config)
    panels = [
        ("ELBO (higher is better)", NATS, every("elbo")),
        ("L_k, importance-weighted bound", NATS, every("iwae_bound")),
        ("reconstruction -E_q[log p(x | z)]", NATS, every("recon")),
        ("KL(q(z | x) || p(z))", NATS, every("kl")),
        ("mean squared error", SQUARED_ERROR, every("mse")),
        ("MMD^2(q(z), p(z)), unbiased", "per batch", every("mmd2")),
    ]
    if exp.config.objective.name not in ("mse", "denoising_mse"):  # else = the MSE
        panels.insert(
            1, (f"training objective (minimised):\n{text}", unit, ["train/objective"])
        )
    return panels


def write_curves(exp, records, path: str | pathlib.Path) -> None:
    """``curves.png``: one panel per ``curve_panels`` entry with data in ``records``."""
    panels, cfg = curve_panels(exp), exp.config.train
    evaluated = 0 < cfg.eval_every < exp.total_steps
    during = f"every {cfg.eval_every} steps and at the end" if evaluated else ""
    valid_when = during or "at the end"
    test_when = during if cfg.eval_test_during_training and during else "at the end"
    plots.plot_curves(
        records,
        path,
        {title: keys for title, _, keys in panels},
        ylabels={title: unit for title, unit, _ in panels},
        labels={
            key: SPLIT_LABELS[key.split("/")[0]]
            for _, _, keys in panels
            for key in keys
        },
        suptitle=(
            "per-example means; train: minibatches since the previous log; "
            f"valid: {valid_when}; test: {test_when}"
        ),
    )


def reconstructions_title(exp, split: str = "test") -> str:
    how = "E[x | z = E_q[z | x]]" if exp.model.generative else "g(f(x))"
    return f"{split} split: image | reconstruction {how}"


def write_run_figures(
    exp, params, workdir: str | pathlib.Path, num_images: int = 16
) -> dict[str, np.ndarray]:
    """Writes ``curves.png``, ``reconstructions.png`` (test split) and (VAE)
    ``samples.png`` (decoder means of z ~ p(z)); line plots for series (T,).

    Returns the image batches drawn ([N, H, W] each), e.g. for TensorBoard; none
    for series.
    """
    workdir = pathlib.Path(workdir)
    records = writer.read_metrics(workdir / "metrics.jsonl")
    write_curves(exp, records, workdir / "curves.png")
    shape = exp.dataset.image_shape
    x = exp.dataset.test[:num_images]
    if len(shape) == 1:
        write_series_figures(exp, params, x, workdir)
        return {}
    recon = np.asarray(exp.model.reconstruct(params, x))
    pairs = np.stack([exp.dataset.images(x), recon], axis=1).reshape(-1, *shape)
    plots.image_grid(
        pairs,
        workdir / "reconstructions.png",
        title=reconstructions_title(exp),
        num_columns=8,
    )
    images = {"reconstructions": pairs}
    if exp.model.generative:
        key = jax.random.fold_in(exp.keys["eval"], 1_000_003)
        z = exp.model.sample_latents(params, key, 64)  # z ~ p(z)
        means = np.asarray(exp.model.decode_mean(params, z))  # E[x|z], not x ~ p(x|z)
        images["samples"] = means.reshape(-1, *shape)
        plots.image_grid(
            images["samples"], workdir / "samples.png", title=SAMPLES_TITLE
        )
    if callable(getattr(exp.model, "conditional_latents", None)):
        images["conditional_samples"] = conditional_grid(exp, params, shape)
        plots.image_grid(
            images["conditional_samples"],
            workdir / "conditional_samples.png",
            title="E[x|z, y]: row y = class, column = one z ~ p(z)",
            num_columns=8,
        )
    return images


def write_series_figures(exp, params, x, workdir: pathlib.Path) -> None:
    """``reconstructions.png`` (test series with their reconstructions dashed) and,
    for generative models, ``samples.png`` (16 decoder means of z ~ p(z))."""
    recon = np.asarray(exp.model.reconstruct(params, x))
    plots.series_grid(
        exp.dataset.images(x),
        workdir / "reconstructions.png",
        title=reconstructions_title(exp),
        overlay=recon,
    )
    if exp.model.generative:
        key = jax.random.fold_in(exp.keys["eval"], 1_000_003)
        z = exp.model.sample_latents(params, key, 16)
        means = np.asarray(exp.model.decode_mean(params, z))
        plots.series_grid(means, workdir / "samples.png", title=SAMPLES_TITLE)


def conditional_grid(exp, params, shape, per_class: int = 8) -> np.ndarray:
    """A conditional model's decoder means E[x|z_j, y]: row y = class, column j = one
    draw z_j ~ p(z) shared by every row (the same key for each class), so a column
    holds one style across the classes: [C * per_class, *shape]."""
    key = jax.random.fold_in(exp.keys["eval"], 1_000_004)
    rows = []
    for label in range(exp.dataset.condition_dim):
        z = exp.model.conditional_latents(params, key, np.full(per_class, label))
        rows.append(np.asarray(exp.model.decode_mean(params, z)))
    return np.concatenate(rows).reshape(-1, *shape)
