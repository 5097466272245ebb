"""PCA in closed form and principal angles: the optimum a linear autoencoder reaches.

A linear AE x_hat = W_d W_e x trained by squared error on centred data spans the top-K
principal subspace at its global optimum (Baldi & Hornik 1989; Bourlard & Kamp 1988),
but W_d is any basis of it: W_d A, W_e -> A^-1 W_e gives the same reconstruction for
every invertible A. Compare subspaces (principal angles), not individual vectors.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


class PCA(NamedTuple):
    """mean: [D]; components: [R, D] orthonormal rows, by decreasing variance;
    variances: [R] eigenvalues of the (1/N) covariance, R = min(N, D)."""

    mean: jnp.ndarray
    components: jnp.ndarray
    variances: jnp.ndarray


def fit_pca(x: jnp.ndarray) -> PCA:
    """PCA by SVD: X - mu = U S V^T, eigenvalues S^2 / N (Eckart & Young 1936).

    For N > D the SVD is taken of the D x D covariance C = (X - mu)^T (X - mu) / N
    = V diag(S^2 / N) V^T instead (same V and eigenvalues, O(N D^2) and much faster on
    CPU for MNIST's 50000 x 784). x: [N, D] -> PCA with R = min(N, D) components.
    """
    x = jnp.asarray(x, jnp.float32)
    mean = jnp.mean(x, axis=0)
    xc = x - mean[None]
    if x.shape[0] > x.shape[1]:
        cov = jnp.matmul(xc.T, xc, precision="highest") / x.shape[0]  # [D, D]
        _, variances, vt = jnp.linalg.svd(cov, hermitian=True)  # [D], [D, D]
        return PCA(mean, vt, variances)
    _, s, vt = jnp.linalg.svd(xc, full_matrices=False)  # [R], [R, D]
    return PCA(mean, vt, jnp.square(s) / x.shape[0])


def explained_variance_ratio(pca: PCA, k: int) -> jnp.ndarray:
    """sum_{i<=k} lambda_i / sum_i lambda_i: fraction of variance the top k explain."""
    return jnp.sum(pca.variances[:k]) / jnp.sum(pca.variances)


def optimal_mse(pca: PCA, k: int) -> jnp.ndarray:
    """Eckart-Young: min over rank-k reconstructions of mean_n ||x_n - x_hat_n||^2 / D
    = sum_{i>k} lambda_i / D on the data the PCA was fitted to (per-pixel MSE)."""
    return jnp.sum(pca.variances[k:]) / pca.components.shape[1]


def project(pca: PCA, x: jnp.ndarray, k: int) -> jnp.ndarray:
    """Rank-k reconstruction mu + V_k^T V_k (x - mu). x: [D] -> [D] (vmap for [B, D])."""
    v = pca.components[:k]  # [k, D]
    return pca.mean + v.T @ (v @ (x - pca.mean))


def principal_angles(a: jnp.ndarray, b: jnp.ndarray) -> np.ndarray:
    """Angles between span(a) and span(b) (Bjorck & Golub 1973), in float64 by
    ``scipy.linalg.subspace_angles``: arccos of the singular values of Q_a^T Q_b for
    large angles, arcsin of those of (I - Q_a Q_a^T) Q_b for small ones (Knyazev &
    Argentati 2002). Exact to ~1e-15 rad; a float32 arccos of cosines near 1 gave
    0.02-0.03 deg for identical 784 x 10 subspaces.

    a: [D, K1], b: [D, K2] (columns span the subspaces). Returns [min(K1, K2)] radians
    (float64), ascending; the last is the largest angle (0 iff one subspace contains
    the other).
    """
    from scipy import linalg  # lazy: only the PCA study needs it

    angles = linalg.subspace_angles(
        np.asarray(a, np.float64), np.asarray(b, np.float64)
    )
    return angles[::-1].copy()  # scipy returns them descending


def nearest_vector_angles(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """For each column a_i the angle to the closest column of b (up to sign):
    arccos max_j |<a_i, b_j>| / (|a_i| |b_j|). a: [D, K1], b: [D, K2] -> [K1] radians."""
    an = a / jnp.linalg.norm(a, axis=0, keepdims=True)
    bn = b / jnp.linalg.norm(b, axis=0, keepdims=True)
    return jnp.arccos(jnp.clip(jnp.max(jnp.abs(an.T @ bn), axis=1), 0.0, 1.0))


def decoder_basis(params) -> jnp.ndarray:
    """Columns of the linear AE's decoder W_d: [D, K] (flax kernel is [K, D])."""
    return params["params"]["decoder"]["output"]["kernel"].T
