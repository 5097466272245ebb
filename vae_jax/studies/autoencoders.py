"""Autoencoder studies: a short in-memory trainer, linear AE vs PCA, denoising AE.

Importable from a notebook; each study returns plain numbers (dicts) and, with a
``workdir``, writes its figures there. ``scripts/autoencoder_report.py`` runs them all.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import build, corruptions, plots
from vae_jax import data as data_lib
from vae_jax.studies import pca


def fit(
    config: ml_collections.ConfigDict, dataset, make_loss: Callable | None = None
) -> tuple[build.Experiment, dict, dict]:
    """Trains ``config`` on ``dataset`` in memory (no checkpoints, no files).

    Same steps as ``loop.train_and_evaluate`` (``make_step_fn`` in scan-fused chunks).
    ``make_loss(model) -> loss_one``, if given, replaces the config's objective.
    Returns (experiment, params, mean train metrics of the last chunk: its last
    ``(total_steps - 1) % steps_per_dispatch + 1`` steps).
    """
    exp = build.build_experiment(config, dataset)
    if make_loss is not None:
        exp = dataclasses.replace(exp, loss_one=make_loss(exp.model))
    state = exp.init_state()
    state, metrics = exp.chunk_runner().run(state, exp.total_steps)
    last = (exp.total_steps - 1) % config.train.steps_per_dispatch + 1
    means = {k: float(np.mean(v[-last:])) for k, v in metrics.items()}
    return exp, state.params, means


def apply_batched(fn, x: np.ndarray, batch_size: int = 5000) -> np.ndarray:
    """fn: [B, D] -> [B, ...] applied to x: [N, D] in batches (jitted once per size)."""
    fn = jax.jit(fn)
    return np.concatenate(
        [np.asarray(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    )


def reconstructions(model, params, x: np.ndarray) -> np.ndarray:
    """The model's reconstruction E[x | z = code(x)] (an AE's g(f(x))) of every row:
    x: [N, D] -> [N, D], batched."""
    return apply_batched(lambda xb: model.reconstruct(params, xb), x)


def reconstruction_mse(model, params, x: np.ndarray) -> float:
    """mean_n ||x_n - g(f(x_n))||^2 / D over x: [N, D]."""
    recon = reconstructions(model, params, x)
    return float(np.mean(np.square(x - recon), dtype=np.float64))


def linear_ae_vs_pca(config, dataset, ks=(2, 10, 32), workdir=None) -> list[dict]:
    """Trains a linear AE per K on the centred data and compares it with PCA.

    Per K: largest principal angle (degrees) between span(W_d) and the top-K principal
    subspace, the median angle from each decoder column to its nearest principal
    vector (basis, not subspace), and MSE_AE / MSE_PCA on train (Eckart-Young optimum)
    and test (PCA's rank-K projection).
    """
    centred, _ = data_lib.center_dataset(dataset)
    fitted = pca.fit_pca(centred.train)
    rows = []
    for k in ks:
        cfg = config.copy_and_resolve_references()
        cfg.model.latent_dim = k
        exp, params, _ = fit(cfg, centred)
        w, v = pca.decoder_basis(params), fitted.components[:k].T  # [D, K] each
        project_k = jax.vmap(functools.partial(pca.project, fitted, k=k))  # [B, D]
        test_recon = apply_batched(project_k, centred.test)
        test_pca = float(np.mean(np.square(centred.test - test_recon)))
        train_pca = float(pca.optimal_mse(fitted, k))
        vector_angles = pca.nearest_vector_angles(w, v)  # [K]
        rows.append(
            {
                "k": k,
                "explained_variance": float(pca.explained_variance_ratio(fitted, k)),
                "max_subspace_angle_deg": float(
                    np.degrees(pca.principal_angles(w, v)[-1])
                ),
                "median_vector_angle_deg": float(np.degrees(np.median(vector_angles))),
                "mse_ratio_train": reconstruction_mse(exp.model, params, centred.train)
                / train_pca,
                "mse_ratio_test": reconstruction_mse(exp.model, params, centred.test)
                / test_pca,
            }
        )
        if workdir is not None and k == 10:
            shape = dataset.image_shape
            filters = np.concatenate([np.asarray(v).T, np.asarray(w).T])  # [2K, D]
            plots.image_grid(
                plots.normalize_images(filters.reshape(-1, *shape)),
                pathlib.Path(workdir) / "linear_ae_basis.png",
                title="top: principal vectors | bottom: linear AE decoder columns",
                num_columns=k,
            )
    return rows


def denoising_study(
    config,
    dataset,
    levels=(0.1, 0.3, 0.5),
    num_test: int = 2000,
    workdir=None,
    seed: int = 7,
) -> list[dict]:
    """PSNR (dB, mean over test images) of the noisy input, a plain AE's output on it
    and a DAE's output (one DAE per level, same architecture), all against the clean
    image. ``config``: a "denoising_mse" config; its corruption is used at each level."""
    plain_cfg = config.copy_and_resolve_references()
    plain_cfg.objective.name = "mse"
    plain_exp, plain_params, _ = fit(plain_cfg, dataset)
    x = jnp.asarray(dataset.test[:num_test])
    keys = jax.random.split(jax.random.key(seed), num_test)
    psnr = jax.jit(jax.vmap(corruptions.psnr))
    rows = []
    for level in levels:
        cfg = config.copy_and_resolve_references()
        cfg.objective.noise_level = level
        exp, params, _ = fit(cfg, dataset)
        noisy = jax.vmap(corruptions.corrupt, in_axes=(None, 0, 0, None))(
            cfg.objective.corruption, keys, x, level
        )  # [N, D]
        plain_out = plain_exp.model.apply(plain_params, noisy)
        dae_out = exp.model.apply(params, noisy)
        rows.append(
            {
                "level": level,
                "psnr_noisy": float(jnp.mean(psnr(x, noisy))),
                "psnr_plain_ae": float(jnp.mean(psnr(x, plain_out))),
                "psnr_dae": float(jnp.mean(psnr(x, dae_out))),
            }
        )
        if workdir is not None:
            grid = np.stack([x[:8], noisy[:8], plain_out[:8], dae_out[:8]])  # [4, 8, D]
            plots.image_grid(
                np.clip(grid.reshape(32, *dataset.image_shape), 0, 1),
                pathlib.Path(workdir)
                / f"denoising_{cfg.objective.corruption}_{level}.png",
                title=f"clean / noisy ({level}) / plain AE / DAE",
                num_columns=8,
            )
    return rows
