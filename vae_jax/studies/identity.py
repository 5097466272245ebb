"""Limitation 2 of autoencoders: an over-complete code learns the identity.

With K >= D code units and nothing but a reconstruction loss, an autoencoder can copy
its input, so it reconstructs anything, inputs unlike its training data included, and
its reconstruction error stops flagging anomalies. One MNIST autoencoder per code
size K and variant: a sigmoid code with no regulariser, with denoising (masking
noise; Vincent et al. 2008) or with sparsity (Ng 2011), and a linear code. Per
model: test MSE on MNIST, on another dataset and on uniform noise images; the AUROC
of reconstruction error for "not MNIST"; a linear probe's accuracy on the codes (what
the code keeps about the digit).
"""

from __future__ import annotations

import numpy as np

from vae_jax.configs import sparse_ae_mnist
from vae_jax.studies import autoencoders, cluster_metrics, codes

# variant -> (config.objective, config.model) updates of sparse_ae_mnist (one code
# layer, sigmoid code); "linear": a linear code, so x_hat = W_d W_e x + b can become
# the identity exactly once K >= D
VARIANTS = {
    "plain": ({"name": "mse"}, {}),
    "denoising": (
        {"name": "denoising_mse", "corruption": "masking", "noise_level": 0.3},
        {},
    ),
    "sparse": ({"name": "sparse_mse"}, {}),
    "linear": ({"name": "mse"}, {"code_activation": "linear"}),
}


def identity_config(variant: str, latent_dim: int, num_steps: int):
    """``sparse_ae_mnist`` (D -> K sigmoid code -> D) with K = ``latent_dim``, the
    variant's objective and ``num_steps`` Adam steps."""
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown variant {variant!r}; choose one of {list(VARIANTS)}."
        )
    config = sparse_ae_mnist.get_config()
    config.model.latent_dim = latent_dim
    objective, model = VARIANTS[variant]
    config.objective.update(**objective)
    config.model.update(**model)
    config.train.num_steps = num_steps
    config.train.log_every = config.train.checkpoint_every = num_steps
    return config


def per_example_mse(model, params, x: np.ndarray) -> np.ndarray:
    """||x_n - g(f(x_n))||^2 / D per row. x: [N, D] -> [N]."""
    recon = autoencoders.reconstructions(model, params, x)
    return np.mean(np.square(x - recon, dtype=np.float64), axis=1)


def uniform_noise(num: int, dim: int, seed: int = 0) -> np.ndarray:
    """Images of i.i.d. U(0, 1) pixels: [num, dim] float32."""
    return np.random.default_rng(seed).uniform(size=(num, dim)).astype(np.float32)


def score_model(model, params, dataset, other, *, num_test=2000, num_probe=5000):
    """MSEs on ``dataset``'s test images, ``other``'s and noise; AUROCs of the error for
    other-vs-dataset and noise-vs-dataset; the linear probe's accuracy on the codes."""
    x = dataset.test[:num_test]
    inputs = {
        "data": x,
        "other": other.test[:num_test],
        "noise": uniform_noise(num_test, dataset.dim),
    }
    errors = {name: per_example_mse(model, params, v) for name, v in inputs.items()}
    row = {f"mse_{name}": float(e.mean()) for name, e in errors.items()}
    for name in ("other", "noise"):
        truth = np.r_[np.zeros(len(errors["data"])), np.ones(len(errors[name]))]
        scores = np.r_[errors["data"], errors[name]]
        row[f"auroc_{name}"] = cluster_metrics.auroc(truth, scores)
    xtr, ytr = dataset.train[:num_probe], dataset.train_labels[:num_probe]
    ctr, cte = (codes.encode_codes(model, params, v) for v in (xtr, x))
    row["probe_accuracy"] = codes.linear_probe(
        ctr, ytr, cte, dataset.test_labels[:num_test]
    )
    return row


def identity_study(
    dataset,
    other,
    *,
    latent_dims=(16, 64, 256, 784, 1024),
    variants=tuple(VARIANTS),
    num_steps: int = 1500,
    num_test: int = 2000,
    done: dict | None = None,
    on_row=None,
) -> list[dict]:
    """Trains ``identity_config(v, K)`` on ``dataset`` for every variant and K and
    scores it (``score_model``) against ``other`` and noise. ``done``: rows already
    measured, keyed "variant/K", reused; ``on_row(key, row)`` is called after each new
    one (to save progress). Returns rows {variant, latent_dim, ...}."""
    done, rows = dict(done or {}), []
    for variant in variants:
        for k in latent_dims:
            key = f"{variant}/{k}"
            if key not in done:
                exp, params, _ = autoencoders.fit(
                    identity_config(variant, k, num_steps), dataset
                )
                done[key] = {
                    "variant": variant,
                    "latent_dim": k,
                    **score_model(exp.model, params, dataset, other, num_test=num_test),
                }
                if on_row is not None:
                    on_row(key, done[key])
            rows.append(done[key])
    return rows


def write_identity_figure(rows: list[dict], path, dim: int) -> None:
    """AUROC (other data vs MNIST), the other data's reconstruction MSE and the probe
    accuracy against K, a line per variant."""
    from vae_jax import plots  # lazy: matplotlib import

    metrics = {
        "AUROC: other dataset vs MNIST": "auroc_other",
        "reconstruction MSE of the other dataset": "mse_other",
        "linear probe accuracy on codes": "probe_accuracy",
    }
    panels = {}
    for title, key in metrics.items():
        panels[title] = {}
        for variant in dict.fromkeys(r["variant"] for r in rows):
            own = [r for r in rows if r["variant"] == variant]
            panels[title][variant] = (
                [r["latent_dim"] for r in own],
                [r[key] for r in own],
            )
    plots.line_panels(
        panels,
        path,
        xlabels=dict.fromkeys(panels, "code size K (log scale)"),
        suptitle=f"Over-complete codes (K >= D = {dim}) approach the identity",
        log_x=True,
    )
