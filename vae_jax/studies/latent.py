"""Latent spaces of an AE and a VAE compared: decoded prior samples, interpolations and
decoded grids (Kingma & Welling 2013, Fig. 4; Doersch 2016, §2).

A VAE's KL term pulls q(z|x) towards p(z) = N(0, I), so decoding z ~ N(0, I), or a
point between two codes, lands where the decoder was trained; nothing ties an AE's
codes to N(0, I). ``fits`` maps a name ("AE", "VAE") to (model, params); images are
decoder means clipped to [0, 1]. Each study returns numbers and, with a ``workdir``,
writes its figures there.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import plots
from vae_jax.studies import classifier, codes


def interpolate(z0: jax.Array, z1: jax.Array, num_steps: int) -> jax.Array:
    """z_t = (1 - t) z0 + t z1 at t = linspace(0, 1, T). z0, z1: [P, K] -> [P, T, K]."""
    t = jnp.linspace(0.0, 1.0, num_steps)[None, :, None]  # [1, T, 1]
    return (1.0 - t) * z0[:, None] + t * z1[:, None]


def decode_images(model, params, z) -> np.ndarray:
    """Decoder means (AE outputs) clipped to [0, 1]: z [..., K] -> [..., D]."""
    return np.clip(np.asarray(model.decode_mean(params, z)), 0.0, 1.0)


def interpolation_images(model, params, x0, x1, num_steps: int) -> np.ndarray:
    """Decoded straight lines between the codes of x0 and x1 (AE: f(x); VAE: posterior
    mean). x0, x1: [P, D] -> [P, T, D]; column 0 and T - 1 are the reconstructions."""
    z0, z1 = (jnp.asarray(codes.encode_codes(model, params, x)) for x in (x0, x1))
    return decode_images(model, params, interpolate(z0, z1, num_steps))


def product_grid(z1_values, z2_values) -> jnp.ndarray:
    """All (z1, z2) pairs, row by row with z2 decreasing top to bottom (as an image):
    z1_values: [n1], z2_values: [n2] (both ascending) -> [n2 * n1, 2]."""
    z1, z2 = jnp.meshgrid(jnp.asarray(z1_values), jnp.asarray(z2_values)[::-1])
    return jnp.stack([z1.ravel(), z2.ravel()], axis=-1)


def code_range_axes(z: np.ndarray, n: int, percentiles=(1.0, 99.0)) -> np.ndarray:
    """n evenly spaced values per axis between the given percentiles of the codes.
    z: [N, K] -> [K, n]."""
    low, high = np.percentile(z, percentiles, axis=0)  # [K] each
    return np.linspace(low, high, n, axis=-1)


def fit_gaussian(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [K] and Cholesky factor L [K, K] (L L^T = covariance) of codes z: [N, K]."""
    cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
    return z.mean(axis=0), np.linalg.cholesky(cov + 1e-6 * np.eye(z.shape[1]))


def samplers(fits: dict, dataset) -> dict[str, tuple[str, Callable]]:
    """Decoders of z ~ N(0, I) per model, plus each AE's decoder of eps ~ N(0, I) moved
    to the Gaussian fit of its training codes (z = m + L eps): key -> (title, decode),
    decode: [S, K] -> images [S, D]."""
    out = {}
    for name, (model, params) in fits.items():
        decode = lambda z, m=model, p=params: decode_images(m, p, z)
        out[name] = (f"{name}: decoded z ~ N(0, I)", decode)
        if not model.generative:
            mean, chol = fit_gaussian(
                codes.encode_codes(model, params, dataset.train[:5000])
            )
            moved = lambda e, d=decode, m=mean, c=chol: d(m[None] + e @ c.T)
            title = f"{name}: decoded z ~ N(mean, cov of its codes)"
            out[f"{name}_fitted_gaussian"] = (title, moved)
    return out


def nearest_train_distance(images, train, chunk: int = 1000) -> np.ndarray:
    """RMS pixel distance from each image to its nearest training image:
    sqrt(min_n ||x - t_n||^2 / D). images: [S, D], train: [N, D] -> [S]."""
    train = jnp.asarray(train, jnp.float32)
    sq_train = jnp.sum(train**2, axis=1)  # [N]

    @jax.jit
    def nearest(x):  # [c, D] -> [c]
        d2 = jnp.sum(x**2, axis=1)[:, None] + sq_train[None] - 2.0 * x @ train.T
        return jnp.sqrt(jnp.maximum(jnp.min(d2, axis=1), 0.0) / x.shape[1])

    images = np.asarray(images, np.float32)
    parts = [nearest(images[i : i + chunk]) for i in range(0, len(images), chunk)]
    return np.asarray(jnp.concatenate(parts))


def confidence_study(
    fits: dict,
    dataset,
    key: jax.Array,
    predict_proba: Callable,
    *,
    num_samples: int = 2000,
    threshold: float = 0.9,
    num_reference: int = 10000,
) -> dict:
    """``classifier.confidence_stats`` (predict_proba: images [N, D] -> [N, C]) and the
    mean ``nearest_train_distance`` (to the first ``num_reference`` training images) of:
    test images, each sampler's decoded prior samples (the same z for every model), and
    per model: decoded midpoints (t = 1/2) of test pairs (x_i, x_{P+i}), P = S or N/2,
    and the reconstructions of x_i."""
    x, reference = dataset.test, dataset.train[:num_reference]
    half = min(num_samples, len(x) // 2)

    def stats(images):
        out = classifier.confidence_stats(predict_proba(images), threshold)
        out["nn_rms_distance"] = float(nearest_train_distance(images, reference).mean())
        return out

    results = {"test_images": stats(x[:num_samples])}
    latent_dim = next(iter(fits.values()))[0].latent_dim
    z = jax.random.normal(
        key, (num_samples, latent_dim)
    )  # as classifier.prior_confidence
    for name, (_, decode) in samplers(fits, dataset).items():
        results[f"{name}_prior"] = stats(np.asarray(decode(z)))
    for name, (model, params) in fits.items():
        ends = interpolation_images(model, params, x[:half], x[half : 2 * half], 3)
        results[f"{name}_midpoints"] = stats(ends[:, 1])  # ends: [P, 3, D]
        results[f"{name}_reconstructions"] = stats(ends[:, 0])
    return results


def prior_sample_figure(
    fits: dict,
    dataset,
    key: jax.Array,
    path,
    *,
    num_samples: int = 2000,
    confidence=None,
    threshold: float = 0.9,
) -> None:
    """The first 64 of ``confidence_study``'s z (same key, same S) decoded by each
    sampler, one panel each; ``confidence`` (confidence_study's dict) adds each panel's
    fraction of confidently classified samples to its title."""
    draws = samplers(fits, dataset)
    latent_dim = next(iter(fits.values()))[0].latent_dim
    z = jax.random.normal(key, (num_samples, latent_dim))[:64]  # [64, K]
    panels = {}
    for name, (title, decode) in draws.items():
        if confidence and f"{name}_prior" in confidence:
            frac = confidence[f"{name}_prior"]["frac_confident"]
            title += f"\n{100 * frac:.0f}% classified with p > {threshold}"
        panels[title] = decode(z).reshape(-1, *dataset.image_shape)
    plots.image_panels(
        panels,
        path,
        num_columns=8,
        suptitle=f"{dataset.name}: decoded prior samples (the same z in every panel)",
    )


def interpolation_figure(
    fits: dict, dataset, path, *, num_pairs: int = 8, num_steps: int = 10
) -> None:
    """One panel per model: rows = test pairs (x_i, x_{num_pairs+i}), columns = t."""
    x, y = dataset.test, dataset.test_labels
    a, b = np.arange(num_pairs), np.arange(num_pairs, 2 * num_pairs)
    rows = [f"{y[i]}->{y[j]}" if y is not None else f"{i}->{j}" for i, j in zip(a, b)]
    lines = {
        f"{name}: decode((1 - t) z_a + t z_b)": interpolation_images(
            model, params, x[a], x[b], num_steps
        ).reshape(-1, *dataset.image_shape)
        for name, (model, params) in fits.items()
    }
    ticks = {title: (np.linspace(0, 1, num_steps), rows) for title in lines}
    plots.image_panels(
        lines,
        path,
        num_columns=num_steps,
        xlabel="t",
        ticks=ticks,
        ylabel=f"test pair a->b ({'labels' if y is not None else 'indices'})",
        suptitle=f"{dataset.name}: straight lines between test codes",
    )


def grid_study(fits: dict, dataset, n: int = 20, workdir=None) -> dict:
    """Decoded n x n grids: a VAE's on Phi^-1 of evenly spaced probabilities (equal prior
    mass between neighbours; Kingma & Welling 2013, Fig. 4), an AE's evenly spaced over
    the 1st-99th percentiles of its training codes (K = 2). Returns each grid's axes;
    writes manifolds_<data>.png."""
    axes, panels = {}, {}
    for name, (model, params) in fits.items():
        if model.generative:
            q = np.asarray(jax.scipy.special.ndtri(jnp.linspace(0.05, 0.95, n)))
            axes[name], title = (q, q), f"{name}: z on Phi^-1(0.05 .. 0.95) grid"
        else:
            train_codes = codes.encode_codes(model, params, dataset.train[:5000])
            axes[name] = tuple(code_range_axes(train_codes, n))
            title = f"{name}: z on a linear grid over its codes' 1-99% range"
        images = decode_images(model, params, product_grid(*axes[name]))
        panels[title] = images.reshape(-1, *dataset.image_shape)
    if workdir is not None:
        ticks = {t: (a[0], a[1][::-1]) for t, a in zip(panels, axes.values())}
        plots.image_panels(
            panels,
            pathlib.Path(workdir) / f"manifolds_{dataset.name}.png",
            num_columns=n,
            xlabel="z1",
            ylabel="z2",
            ticks=ticks,
            suptitle=f"{dataset.name}: decoded 2-D latent grids",
        )
    return {name: [a.tolist() for a in pair] for name, pair in axes.items()}


def reconstruction_figure(fits: dict, dataset, path, num: int = 24) -> None:
    """The first ``num`` test images beside each model's reconstructions (6 per row)."""
    x = dataset.test[:num]
    panels = {"test images": x.reshape(-1, *dataset.image_shape)}
    for name, (model, params) in fits.items():
        recon = np.clip(np.asarray(model.reconstruct(params, x)), 0.0, 1.0)
        panels[f"{name} reconstructions"] = recon.reshape(-1, *dataset.image_shape)
    plots.image_panels(
        panels,
        path,
        num_columns=6,
        suptitle=f"{dataset.name}: test images and reconstructions",
    )


def compare(
    fits: dict,
    dataset,
    key: jax.Array,
    *,
    predict_proba=None,
    num_samples: int = 2000,
    threshold: float = 0.9,
    workdir=None,
) -> dict:
    """The whole comparison on one dataset: ``confidence_study`` (with a classifier),
    ``grid_study`` and, with a ``workdir``, every figure (prior_samples_, interpolations_,
    reconstructions_, manifolds_<data>.png)."""
    results = {}
    if predict_proba is not None:
        results = confidence_study(
            fits,
            dataset,
            key,
            predict_proba,
            num_samples=num_samples,
            threshold=threshold,
        )
    results["grid_axes"] = grid_study(fits, dataset, workdir=workdir)
    if workdir is not None:
        workdir, name = pathlib.Path(workdir), dataset.name
        prior_sample_figure(
            fits,
            dataset,
            key,
            workdir / f"prior_samples_{name}.png",
            num_samples=num_samples,
            confidence=results,
            threshold=threshold,
        )
        interpolation_figure(fits, dataset, workdir / f"interpolations_{name}.png")
        reconstruction_figure(fits, dataset, workdir / f"reconstructions_{name}.png")
    return results
