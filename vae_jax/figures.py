"""The standard figures of a run: training curves, reconstructions, prior samples."""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from vae_jax import plots, writer


def write_run_figures(
    exp, params, workdir: str | pathlib.Path, num_images: int = 16
) -> dict[str, np.ndarray]:
    """Writes ``curves.png``, ``reconstructions.png`` and (VAE) ``samples.png``.

    Returns the image batches drawn ([N, H, W] each), e.g. for TensorBoard.
    """
    workdir = pathlib.Path(workdir)
    records = writer.read_metrics(workdir / "metrics.jsonl")
    panels = {
        name: [f"{split}/{name}" for split in ("train", "valid", "test")]
        for name in ("loss", "recon", "kl", "mse")
    }
    plots.plot_curves(records, workdir / "curves.png", panels)
    shape = exp.dataset.image_shape
    x = exp.dataset.test[:num_images]
    recon = np.asarray(exp.model.reconstruct(params, x))
    pairs = np.stack([x, recon], axis=1).reshape(
        -1, *shape
    )  # data, reconstruction, ...
    plots.image_grid(
        pairs,
        workdir / "reconstructions.png",
        title="data | reconstruction",
        num_columns=8,
    )
    images = {"reconstructions": pairs}
    if exp.model.generative:
        key = jax.random.fold_in(exp.keys["eval"], 1_000_003)
        z = exp.model.sample_latents(params, key, 64)  # z ~ p(z)
        samples = np.asarray(exp.model.decode_mean(params, z))
        images["samples"] = samples.reshape(-1, *shape)
        title = "E[x|z], z ~ p(z)"
        plots.image_grid(images["samples"], workdir / "samples.png", title=title)
    return images
