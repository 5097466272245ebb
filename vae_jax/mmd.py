"""Maximum mean discrepancy: kernels, the unbiased MMD^2 estimate and a closed form.

MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) for x, x' ~ P, y, y' ~ Q
independent (Gretton et al. 2012, "A Kernel Two-Sample Test", Lemma 6). The WAE
(Tolstikhin et al. 2018, Algorithm 2) and InfoVAE (Zhao et al. 2017) penalties use
it between the codes of a batch and samples of the prior p(z) (``mmd_objectives``).
Samples are rows: x: [n, K], y: [m, K].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp


def squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """||x_i - y_j||^2 for every pair, from the differences (no cancellation as in
    ||x||^2 + ||y||^2 - 2 x.y). x: [n, K], y: [m, K] -> [n, m]."""
    return jnp.sum(jnp.square(x[:, None, :] - y[None, :, :]), axis=-1)


def rbf_kernel(x: jax.Array, y: jax.Array, scale) -> jax.Array:
    """k(x, y) = exp(-||x - y||^2 / (2 s^2)), s = ``scale`` (the Gaussian kernel's
    bandwidth). x: [n, K], y: [m, K] -> [n, m]."""
    return jnp.exp(-squared_distances(x, y) / (2.0 * jnp.square(scale)))


def imq_kernel(x: jax.Array, y: jax.Array, scale) -> jax.Array:
    """k(x, y) = C / (C + ||x - y||^2), C = ``scale``: the inverse multiquadratic
    kernel of Tolstikhin et al. 2018, §4. x: [n, K], y: [m, K] -> [n, m]."""
    return scale / (scale + squared_distances(x, y))


KERNELS: dict[str, Callable] = {"imq": imq_kernel, "rbf": rbf_kernel}


def default_scale(kernel: str, latent_dim: int, prior_variance: float = 1.0) -> float:
    """The kernel scale for p(z) = N(0, sigma_z^2 I_K) when none is given.

    "imq": C = 2 K sigma_z^2 (Tolstikhin et al. 2018, §4), the expected ||z - z'||^2
    of two prior draws. "rbf": s = sqrt(K) sigma_z, so 2 s^2 = that same C (the
    bandwidth Pythae's InfoVAE uses with its default ``kernel_bandwidth = 1``).
    """
    if kernel not in KERNELS:
        raise ValueError(
            f"Unknown MMD kernel {kernel!r}; choose one of {list(KERNELS)}."
        )
    c = 2.0 * latent_dim * prior_variance
    return c if kernel == "imq" else math.sqrt(c / 2.0)


def _off_diagonal_mean(k: jax.Array) -> jax.Array:
    """(1 / (n (n - 1))) sum_{i != j} k_ij. k: [n, n] -> scalar."""
    n = k.shape[0]
    off = jnp.where(jnp.eye(n, dtype=bool), 0.0, k)
    return jnp.sum(off) / (n * (n - 1))


def mmd2_unbiased(x: jax.Array, y: jax.Array, kernel: Callable) -> jax.Array:
    """The unbiased U-statistic MMD^2_u (Gretton et al. 2012, eq. 3):

        1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
        - 2/(n m) sum_{i, j} k(x_i, y_j),

    the within-sample sums without their diagonals, the cross term over all pairs.
    Its mean over draws is MMD^2(P, Q) exactly; a draw may be negative.
    ``kernel(a [n, K], b [m, K]) -> [n, m]``. x: [n, K], y: [m, K], n, m >= 2 ->
    scalar.
    """
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(
            f"MMD^2_u needs at least 2 samples of each: got {x.shape[0]} and "
            f"{y.shape[0]}."
        )
    within = _off_diagonal_mean(kernel(x, x)) + _off_diagonal_mean(kernel(y, y))
    return within - 2.0 * jnp.mean(kernel(x, y))


def mmd2_biased(x: jax.Array, y: jax.Array, kernel: Callable) -> jax.Array:
    """The biased V-statistic MMD^2_b (Gretton et al. 2012, §2.2): every sum over all
    pairs, diagonals included; >= 0, but its mean exceeds MMD^2 by
    (E k(x, x) - E k(x, x'))/n + (E k(y, y) - E k(y, y'))/m. For comparison with
    ``mmd2_unbiased``. x: [n, K], y: [m, K] -> scalar."""
    return (
        jnp.mean(kernel(x, x)) + jnp.mean(kernel(y, y)) - 2.0 * jnp.mean(kernel(x, y))
    )


def _rbf_expectation(mean_diff, cov_sum, scale):
    """E exp(-||x - y||^2 / (2 s^2)) for independent x ~ N(m1, S1), y ~ N(m2, S2):
    det(I + S / s^2)^(-1/2) exp(-(1/2) d^T (S + s^2 I)^(-1) d), d = m1 - m2,
    S = S1 + S2. mean_diff: [K], cov_sum: [K, K] -> scalar."""
    k = mean_diff.shape[0]
    s2 = jnp.square(scale)
    a = cov_sum + s2 * jnp.eye(k)
    chol = jnp.linalg.cholesky(a)
    half = jax.scipy.linalg.solve_triangular(chol, mean_diff, lower=True)  # L^-1 d
    log_det_ratio = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) - k * jnp.log(s2)
    return jnp.exp(-0.5 * log_det_ratio - 0.5 * jnp.sum(jnp.square(half)))


def rbf_mmd2_gaussians(mean1, cov1, mean2, cov2, scale) -> jax.Array:
    """MMD^2 between N(m1, S1) and N(m2, S2) under ``rbf_kernel`` with bandwidth s.

    Gaussian integrals: k(x, y) = (2 pi s^2)^(K/2) N(x; y, s^2 I), and
    int int N(x; m1, S1) N(y; m2, S2) N(x; y, s^2 I) dx dy = N(m1; m2, S1 + S2 + s^2 I)
    (the product of two Gaussian densities integrates to a Gaussian density in their
    means with the covariances summed; Petersen & Pedersen, "The Matrix Cookbook",
    §8.1.8). Hence E k(x, y) = det(I + (S1 + S2)/s^2)^(-1/2)
    exp(-(1/2) (m1 - m2)^T (S1 + S2 + s^2 I)^(-1) (m1 - m2)), and MMD^2 (Gretton et
    al. 2012, Lemma 6) = E k(x, x') + E k(y, y') - 2 E k(x, y), where x, x' are
    independent draws of the first (mean difference 0, S = 2 S1), y, y' of the second.
    mean1, mean2: [K]; cov1, cov2: [K, K] -> scalar.
    """
    zero = jnp.zeros_like(mean1)
    return (
        _rbf_expectation(zero, 2.0 * cov1, scale)
        + _rbf_expectation(zero, 2.0 * cov2, scale)
        - 2.0 * _rbf_expectation(mean1 - mean2, cov1 + cov2, scale)
    )
