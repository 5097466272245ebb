"""Linear-Gaussian latent-variable model with exact answers (probabilistic PCA).

p(z) = N(0, I_K), p(x | z) = N(W z + b, s^2 I_D); Roweis 1998, Tipping & Bishop 1999.
Everything (log p(x), p(z|x), the ELBO of a diagonal q, KL(q || p(z|x))) is in closed
form, so ELBO / IWAE code can be checked against it. Functions are per example:
x: [D], z: [K], W: [D, K], b: [D], log_s: [] (log of the noise std s).
"""

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from vae_jax import distributions as dist


def log_marginal(
    x: jax.Array, W: jax.Array, b: jax.Array, log_s: jax.Array
) -> jax.Array:
    """log p(x) = log N(x; b, W W^T + s^2 I); Bishop 2006, eqs. 2.115, 12.35.

    Uses the Cholesky factor of the [D, D] covariance. Returns a scalar.
    """
    d = x.shape[0]
    cov = W @ W.T + jnp.exp(2.0 * log_s) * jnp.eye(d, dtype=jnp.float32)  # [D, D]
    return dist.full_normal_logpdf(x, b, jnp.linalg.cholesky(cov))


def posterior(
    x: jax.Array, W: jax.Array, b: jax.Array, log_s: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Exact p(z | x) = N(m, C), C = (I + W^T W / s^2)^-1, m = C W^T (x - b) / s^2.

    Bishop 2006, eqs. 2.116-2.117 (= eq. 12.42 with M = s^2 C^-1).
    Returns (mean [K], cov [K, K]).
    """
    k = W.shape[1]
    inv_s2 = jnp.exp(-2.0 * log_s)
    precision = jnp.eye(k, dtype=jnp.float32) + inv_s2 * (W.T @ W)  # [K, K]
    chol = (jnp.linalg.cholesky(precision), True)
    cov = cho_solve(chol, jnp.eye(k, dtype=jnp.float32))
    mean = cho_solve(chol, inv_s2 * (W.T @ (x - b)))
    return mean, 0.5 * (cov + cov.T)


def log_joint(
    x: jax.Array, z: jax.Array, W: jax.Array, b: jax.Array, log_s: jax.Array
) -> jax.Array:
    """log p(x, z) = log N(x; W z + b, s^2 I) + log N(z; 0, I). Returns a scalar."""
    return dist.gaussian_loglik(x, W @ z + b, log_s) + dist.std_normal_logpdf(z)


def elbo_diag(
    x: jax.Array,
    W: jax.Array,
    b: jax.Array,
    log_s: jax.Array,
    q_mean: jax.Array,
    q_logvar: jax.Array,
) -> jax.Array:
    """E_q[log p(x|z)] - KL(q || p(z)) in closed form, q = N(q_mean, diag(e^q_logvar)).

    E_q ||x - W z - b||^2 = ||x - W m - b||^2 + tr(W diag(v) W^T); Kingma & Welling
    2013, eq. 3 (the expectation is exact here, no sampling).

    Args:
      x: [D]; W: [D, K]; b: [D]; log_s: [], the model.
      q_mean, q_logvar: [K], the variational posterior.

    Returns:
      Scalar ELBO <= log p(x).
    """
    d = x.shape[0]
    resid = x - W @ q_mean - b  # [D]
    trace = jnp.sum(jnp.square(W) @ jnp.exp(q_logvar))  # tr(W diag(v) W^T)
    sq = (jnp.sum(jnp.square(resid)) + trace) * jnp.exp(-2.0 * log_s)
    expected_loglik = -0.5 * sq - d * log_s - 0.5 * d * dist.LOG_2PI
    return expected_loglik - dist.kl_diag_to_std_normal(q_mean, q_logvar)


def kl_to_posterior_diag(
    x: jax.Array,
    W: jax.Array,
    b: jax.Array,
    log_s: jax.Array,
    q_mean: jax.Array,
    q_logvar: jax.Array,
) -> jax.Array:
    """KL(q || p(z | x)) for q = N(q_mean, diag(exp q_logvar)); Doersch 2016, eq. 7.

    log p(x) = elbo_diag + kl_to_posterior_diag exactly (Kingma & Welling 2013, eq. 1).

    Args:
      x: [D]; W: [D, K]; b: [D]; log_s: [], the model.
      q_mean, q_logvar: [K], the variational posterior.

    Returns:
      Scalar KL divergence in nats.
    """
    post_mean, post_cov = posterior(x, W, b, log_s)
    q_scale_tril = jnp.diag(jnp.exp(0.5 * q_logvar))
    return dist.kl_full_normals(
        q_mean, q_scale_tril, post_mean, jnp.linalg.cholesky(post_cov)
    )
