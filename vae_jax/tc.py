"""Minibatch estimators of the aggregate posterior and the KL decomposition of
beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement
in Variational Autoencoders").

With q(z|n) = N(mean_n, diag(exp(logvar_n))) for the N training examples n and the
aggregate posterior q(z) = (1/N) sum_n q(z|n), the mean KL splits (Chen et al., eq. 2)

    E_p(n)[KL(q(z|n) || p(z))] = I_q(z; n)                      index-code MI
                               + KL(q(z) || prod_j q(z_j))       total correlation
                               + sum_j KL(q(z_j) || p(z_j))      dimension-wise KL.

q(z) and its marginals q(z_j) are sums over the whole data set; a batch of B
posteriors with one draw z_b ~ q(z|x_b) each estimates them by minibatch-weighted
sampling (MWS; Chen et al., eq. 5 and App. C.1):

    log q(z_b)   ~= logsumexp_c log q(z_b | x_c) - log B,
    log q(z_bj)  ~= logsumexp_c log q(z_bj | x_cj) - log B     (one dim j),

consistent as B grows, biased at finite B (the log of an estimate, and the c = b term
q(z_b | x_b) is larger than a typical q(z_b | x_c)). Chen et al. write the weight as
1 / (N B) (App. C.1, and ``- log(batch_size * dataset_size)`` in their code): a
constant -log N on every log-density, so the same gradients, but their TC value is
shifted by (K - 1) log N, MI by + log N and dim-KL by -K log N; the 1 / B here
estimates the terms themselves (at B = N it is exact). ``stratified`` weighs the
batch as an unbiased estimate of q(z_b) itself: 1/N on its own posterior (exact for
the example that drew z_b) and (N - 1) / (N (B - 1)) on each other one (the other
N - 1 examples, seen through the B - 1 others of a batch drawn without replacement),
the idea of Chen et al.'s minibatch stratified sampling (App. C.2) in its simplest
form, not their exact weights. Only ``stratified`` uses N.

All functions take means, logvars: [B, K] (the batch's posteriors), z: [B, K] (z_b
drawn from the b-th), N = ``dataset_size``; results are in nats.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import distributions as dist

ESTIMATORS = ("mws", "stratified")


def pairwise_log_density(z: jax.Array, means: jax.Array, logvars: jax.Array):
    """log q(z_bj | x_c) per dim: [B, K] x [C, K] x [C, K] -> [B, C, K], entry
    (b, c, j) = log N(z_bj; mean_cj, exp(logvar_cj))."""
    diff = z[:, None, :] - means[None, :, :]  # [B, C, K]
    sq = jnp.square(diff) * jnp.exp(-logvars)[None]
    return -0.5 * (sq + logvars[None] + dist.LOG_2PI)


def _log_weights(batch_size: int, dataset_size, estimator: str) -> jax.Array:
    """log w_bc: [B, B], the weights of sum_c w_bc q(z_b | x_c) ~= q(z_b)."""
    if estimator == "mws":  # Chen et al., App. C.1, less their constant 1 / N
        return jnp.full((batch_size, batch_size), -jnp.log(batch_size))
    if estimator == "stratified":
        if batch_size < 2:
            raise ValueError(
                "estimator='stratified' needs a batch of B >= 2 posteriors"
            )
        own = -jnp.log(dataset_size)
        other = jnp.log((dataset_size - 1.0) / (dataset_size * (batch_size - 1.0)))
        eye = jnp.eye(batch_size, dtype=bool)
        return jnp.where(eye, own, other)
    raise ValueError(f"Unknown estimator {estimator!r}; choose one of {ESTIMATORS}.")


def log_aggregate_posterior(
    z: jax.Array,
    means: jax.Array,
    logvars: jax.Array,
    dataset_size,
    estimator: str = "mws",
) -> tuple[jax.Array, jax.Array]:
    """(log q(z_b) [B], sum_j log q(z_bj) [B]) by minibatch-weighted sampling.

    Chen et al. 2018, eq. 5 / App. C.1 (``estimator="mws"``): log q(z_b) ~=
    log (1/B) sum_c q(z_b | x_c) and the same per dim j for the marginal q(z_bj);
    ``"stratified"`` as in the module docstring (weights 1/N, (N-1)/(N(B-1))). z, means, logvars: [B, K];
    ``dataset_size`` N (a number, may be traced).
    """
    batch_size = z.shape[0]
    log_w = _log_weights(batch_size, dataset_size, estimator)  # [B, B]
    per_dim = pairwise_log_density(z, means, logvars)  # [B, B, K]
    log_qz = jax.nn.logsumexp(jnp.sum(per_dim, axis=-1) + log_w, axis=1)  # [B]
    log_qzj = jax.nn.logsumexp(per_dim + log_w[..., None], axis=1)  # [B, K]
    return log_qz, jnp.sum(log_qzj, axis=-1)


def kl_decomposition(
    z: jax.Array,
    means: jax.Array,
    logvars: jax.Array,
    dataset_size,
    estimator: str = "mws",
) -> dict[str, jax.Array]:
    """Estimates of the three terms of Chen et al. 2018, eq. 2, on one batch.

    With z_b ~ q(z|x_b) and ``log_aggregate_posterior``'s log q(z_b), sum_j
    log q(z_bj), each term is a batch mean:

        mi     = mean_b [log q(z_b|x_b) - log q(z_b)]          I_q(z; n)
        tc     = mean_b [log q(z_b) - sum_j log q(z_bj)]       KL(q(z) || prod q(z_j))
        dim_kl = mean_b [sum_j log q(z_bj) - log p(z_b)]       sum_j KL(q(z_j) || p)

    and ``kl`` = mean_b [log q(z_b|x_b) - log p(z_b)], the sampled mean KL(q(z|x) ||
    p(z)), p = N(0, I): mi + tc + dim_kl = kl exactly (the log q terms cancel).
    z, means, logvars: [B, K] -> {"mi", "tc", "dim_kl", "kl"}, scalars in nats.
    """
    log_qz, log_prod_qzj = log_aggregate_posterior(
        z, means, logvars, dataset_size, estimator
    )
    log_q_cond = jax.vmap(dist.diag_normal_logpdf)(z, means, logvars)  # [B]
    log_pz = jax.vmap(dist.std_normal_logpdf)(z)  # [B]
    return {
        "mi": jnp.mean(log_q_cond - log_qz),
        "tc": jnp.mean(log_qz - log_prod_qzj),
        "dim_kl": jnp.mean(log_prod_qzj - log_pz),
        "kl": jnp.mean(log_q_cond - log_pz),
    }


def total_correlation(
    z: jax.Array,
    means: jax.Array,
    logvars: jax.Array,
    dataset_size,
    estimator: str = "mws",
) -> jax.Array:
    """TC = KL(q(z) || prod_j q(z_j)) ~= mean_b [log q(z_b) - sum_j log q(z_bj)]
    (Chen et al. 2018, eq. 2's second term, estimated by eq. 5 / App. C.1).
    z, means, logvars: [B, K] -> scalar, nats."""
    log_qz, log_prod_qzj = log_aggregate_posterior(
        z, means, logvars, dataset_size, estimator
    )
    return jnp.mean(log_qz - log_prod_qzj)


def gaussian_total_correlation(cov) -> float:
    """TC of N(m, cov) in closed form: (1/2) (sum_j log cov_jj - log det cov) (the KL
    between a Gaussian and the product of its marginals). cov: [K, K] -> float."""
    cov = np.asarray(cov, np.float64)
    _, logdet = np.linalg.slogdet(cov)
    return 0.5 * (float(np.sum(np.log(np.diag(cov)))) - float(logdet))


__all__ = [
    "ESTIMATORS",
    "gaussian_total_correlation",
    "kl_decomposition",
    "log_aggregate_posterior",
    "pairwise_log_density",
    "total_correlation",
]
