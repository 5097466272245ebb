"""What autoencoder codes look like: sparse-code statistics, learned filters, linear
probes, and 2-D latent maps of an AE and a VAE (Kingma & Welling 2013, Fig. 4).

Each study returns plain numbers and, with a ``workdir``, writes its figures there.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import plots
from vae_jax.studies import autoencoders


def encode_codes(model, params, x: np.ndarray) -> np.ndarray:
    """Codes f(x) of an AE, or posterior means of a VAE. x: [N, D] -> [N, K]."""
    return autoencoders.apply_batched(lambda xb: model.code(params, xb), x)


def linear_probe(train_x, train_y, test_x, test_y, max_iter: int = 300) -> float:
    """Test accuracy of a multinomial logistic regression (scikit-learn, L2, C = 1) on
    standardised features. train_x: [N, F], test_x: [M, F]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def code_statistics(codes: np.ndarray, target: float, near_zero: float = 0.1) -> dict:
    """rho_hat_j = mean_n codes[n, j]; mean |rho_hat_j - rho| / rho; fraction of
    activations below ``near_zero``. codes: [N, K] in (0, 1)."""
    rho_hat = codes.mean(axis=0)  # [K]
    return {
        "mean_activation": float(rho_hat.mean()),
        "mean_rel_dev_from_target": float(np.mean(np.abs(rho_hat - target)) / target),
        "frac_near_zero": float(np.mean(codes < near_zero)),
    }


def encoder_filters(params, image_shape, num: int = 100) -> np.ndarray:
    """The first ``num`` encoder filters (columns of the code layer's kernel [D, K]) as
    images scaled to [0, 1]: [num, H, W]. For AEs with no hidden layers."""
    kernel = np.asarray(params["params"]["to_code"]["kernel"])  # [D, K]
    return plots.normalize_images(kernel[:, :num].T.reshape(-1, *image_shape))


def code_study(
    configs: dict,
    dataset,
    target: float = 0.05,
    num_probe_train: int = 10000,
    num_probe_test: int = 5000,
    workdir=None,
) -> dict[str, dict]:
    """Trains each named AE config; reports code statistics and linear-probe accuracy
    on its codes (and on raw pixels), writes each encoder's filters as a grid."""
    xtr, ytr = dataset.train[:num_probe_train], dataset.train_labels[:num_probe_train]
    xte, yte = dataset.test[:num_probe_test], dataset.test_labels[:num_probe_test]
    results = {"raw_pixels": {"probe_accuracy": linear_probe(xtr, ytr, xte, yte)}}
    for name, config in configs.items():
        exp, params, metrics = autoencoders.fit(config, dataset)
        ctr, cte = (encode_codes(exp.model, params, x) for x in (xtr, xte))
        row = {"latent_dim": config.model.latent_dim, "train_mse": metrics["mse"]}
        row["test_mse"] = autoencoders.reconstruction_mse(
            exp.model, params, dataset.test
        )
        if config.model.code_activation == "sigmoid":
            row.update(code_statistics(cte, target))
        row["probe_accuracy"] = linear_probe(ctr, ytr, cte, yte)
        results[name] = row
        if workdir is not None and config.model.hidden == ():
            filters = encoder_filters(params, dataset.image_shape)
            path = pathlib.Path(workdir) / f"filters_{name}.png"
            plots.image_grid(
                filters, path, title=f"encoder filters: {name}", num_columns=10
            )
    return results


def normal_quantile_grid(n: int = 20, eps: float = 0.05) -> jnp.ndarray:
    """z on an n x n grid of Phi^-1(linspace(eps, 1 - eps, n)) per axis: [n*n, 2]
    (Kingma & Welling 2013, Fig. 4: equal prior mass between neighbours)."""
    q = jax.scipy.special.ndtri(jnp.linspace(eps, 1 - eps, n))  # [n]
    z1, z2 = jnp.meshgrid(q, q[::-1], indexing="xy")  # rows top->bottom: z2 decreasing
    return jnp.stack([z1.ravel(), z2.ravel()], axis=-1)


def write_manifold(
    model, params, image_shape, path, n: int = 20, title: str = ""
) -> None:
    """Decodes ``normal_quantile_grid(n)`` through a K = 2 VAE into one image grid."""
    images = model.decode_mean(params, normal_quantile_grid(n))  # [n*n, D]
    plots.image_grid(
        np.asarray(images).reshape(-1, *image_shape), path, title=title, num_columns=n
    )


def latent_maps_of(ae, vae, dataset, num_points: int = 5000, workdir=None) -> dict:
    """``ae``, ``vae``: (experiment, params, metrics) of ``autoencoders.fit``. Scatter of
    test codes (by label, if any; latent_ae_vs_vae_<data>.png), the VAE's manifold
    (manifold_<data>.png). Returns each code cloud's std per axis and train losses."""
    (ae_exp, ae_params, ae_metrics), (vae_exp, vae_params, vae_metrics) = ae, vae
    x = dataset.test[:num_points]
    y = None if dataset.test_labels is None else dataset.test_labels[:num_points]
    ae_codes = encode_codes(ae_exp.model, ae_params, x)
    vae_codes = encode_codes(vae_exp.model, vae_params, x)
    if workdir is not None:
        workdir = pathlib.Path(workdir)
        panels = {"AE codes f(x)": (ae_codes, y), "VAE posterior means": (vae_codes, y)}
        plots.latent_scatter(
            panels,
            workdir / f"latent_ae_vs_vae_{dataset.name}.png",
            suptitle=f"{dataset.name}: test codes, K = 2",
        )
        write_manifold(
            vae_exp.model,
            vae_params,
            dataset.image_shape,
            workdir / f"manifold_{dataset.name}.png",
            title="VAE manifold",
        )
    return {
        "ae_code_std": ae_codes.std(axis=0).tolist(),
        "vae_code_std": vae_codes.std(axis=0).tolist(),
        "ae_train_mse": ae_metrics["mse"],
        "vae_train_elbo": vae_metrics["elbo"],
    }
