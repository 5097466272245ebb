"""Log-densities, closed-form KLs and reparameterised samples, one example at a time.

Every function works on unbatched arrays (D data, K latent, S samples) and is
pure, so it can be lifted with `jax.vmap` and used under `jax.jit` / `jax.grad`.
Covariances are given by a lower-triangular Cholesky factor L (Sigma = L L^T)
with positive diagonal; only triangular solves are used, never an inverse.
"""

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp

LOG_2PI: float = math.log(2.0 * math.pi)


@jax.custom_jvp
def softplus(x: jax.Array) -> jax.Array:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), elementwise; exact for any x, ±inf too.

    The values of ``jax.nn.softplus`` without its NaN-passing select (NaN still
    propagates), which keeps XLA:CPU from vectorising the fused loop: on a
    [10000, 784] logit array this form runs the elementwise work ~4x faster.
    Derivative sigmoid(x) (set explicitly: autodiff of max and |.| gives 0 at x = 0).
    """
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    e = jnp.exp(-jnp.abs(x))  # sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) below
    sigmoid = jnp.where(x >= 0, 1.0, e) / (1.0 + e)
    return jnp.maximum(x, 0.0) + jnp.log1p(e), sigmoid * t


def bernoulli_logpmf(x: jax.Array, logits: jax.Array) -> jax.Array:
    """sum_d x_d log σ(l_d) + (1-x_d) log(1 - σ(l_d)); Kingma & Welling 2013, App. C.1.

    Since log σ(l) = l - softplus(l) and log σ(-l) = -softplus(l), this is
    sum_d x_d l_d - softplus(l_d): exact for any |l|, one softplus per pixel.
    For x in [0, 1] (continuous targets) this is minus the binary cross-entropy,
    not a normalised density.

    x, logits: [D]. Returns a scalar.
    """
    x = x.astype(jnp.float32)
    logits = logits.astype(jnp.float32)
    return jnp.sum(x * logits - softplus(logits))


def gaussian_loglik(
    x: jax.Array, mean: jax.Array, log_sigma: jax.Array | float
) -> jax.Array:
    """sum_d log N(x_d; mean_d, sigma_d^2); Doersch 2016, §2.1.

    With a shared sigma this is
    -||x - mean||^2 / (2 sigma^2) - D log sigma - (D/2) log 2 pi,
    i.e. the squared error (MSE) up to a scale and a constant.

    x, mean: [D]; log_sigma: [] or [D]. Returns a scalar.
    """
    log_sigma = jnp.broadcast_to(jnp.asarray(log_sigma, jnp.float32), x.shape)
    sq = jnp.square((x - mean) * jnp.exp(-log_sigma))
    return -0.5 * jnp.sum(sq) - jnp.sum(log_sigma) - 0.5 * x.size * LOG_2PI


def decoder_log_likelihood(x: jax.Array, decoded: Mapping[str, jax.Array]) -> jax.Array:
    """log p(x|z) for a decoder's output: Bernoulli ``{"logits"}`` or Gaussian
    ``{"mean", "log_sigma"}`` (Kingma & Welling 2013, App. C). x: [D] -> scalar."""
    if "logits" in decoded:
        return bernoulli_logpmf(x, decoded["logits"])
    return gaussian_loglik(x, decoded["mean"], decoded["log_sigma"])


def decoder_mean(decoded: Mapping[str, jax.Array]) -> jax.Array:
    """E[x|z] of a decoder's output: sigmoid(logits) (Bernoulli) or the mean (Gaussian).
    Each entry [..., D] -> [..., D]."""
    if "logits" in decoded:
        return jax.nn.sigmoid(decoded["logits"])
    return decoded["mean"]


def diag_normal_logpdf(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(logvar))); Kingma & Welling 2013, App. C.2.

    z, mean, logvar: [K]. Returns a scalar.
    """
    sq = jnp.square(z - mean) * jnp.exp(-logvar)
    return -0.5 * (jnp.sum(sq + logvar) + z.size * LOG_2PI)


def std_normal_logpdf(z: jax.Array) -> jax.Array:
    """log N(z; 0, I) = -||z||^2 / 2 - (K/2) log 2 pi. z: [K]. Returns a scalar."""
    return -0.5 * (jnp.sum(jnp.square(z)) + z.size * LOG_2PI)


def sample_diag_normal(
    key: jax.Array, mean: jax.Array, logvar: jax.Array, num_samples: int | None = None
) -> jax.Array:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I); Kingma & Welling 2013, §2.4.

    Differentiable in (mean, logvar) for a fixed key.
    mean, logvar: [K]. Returns [K], or [S, K] when num_samples = S is given.
    """
    if num_samples is None:
        eps = jax.random.normal(key, mean.shape, jnp.float32)
        return mean + jnp.exp(0.5 * logvar) * eps
    return sample_diag_normal_and_eps(key, mean, logvar, num_samples)[0]


def sample_diag_normal_and_eps(
    key: jax.Array, mean: jax.Array, logvar: jax.Array, num_samples: int
) -> tuple[jax.Array, jax.Array]:
    """(z, eps): ``sample_diag_normal``'s S draws z = mean + exp(logvar / 2) eps and the
    eps ~ N(0, I) they came from (for ``diag_normal_logpdf_at_eps``).

    mean, logvar: [K]. Returns ([S, K], [S, K]).
    """
    eps = jax.random.normal(key, (num_samples, *mean.shape), jnp.float32)
    return mean[None] + jnp.exp(0.5 * logvar)[None] * eps, eps


def diag_normal_logpdf_at_eps(eps: jax.Array, logvar: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(logvar))) at z = mean + exp(logvar / 2) eps, from eps:
    log N(eps; 0, I) - sum(logvar) / 2 (change of variables; K&W 2013, §2.4).

    Equal to ``diag_normal_logpdf(z, mean, logvar)``, but exact in float32 however
    small sigma is next to |mean|: recomputing (z - mean) / sigma from the rounded z
    cancels (0.04 nats at K = 50, sigma = 1e-4, |mean| = 5).
    eps, logvar: [K]. Returns a scalar.
    """
    return std_normal_logpdf(eps) - 0.5 * jnp.sum(logvar)


def sample_full_normal(
    key: jax.Array,
    mean: jax.Array,
    scale_tril: jax.Array,
    num_samples: int | None = None,
) -> jax.Array:
    """z = mean + L eps, eps ~ N(0, I), so z ~ N(mean, L L^T); K&W 2013, §2.4.

    mean: [K]; scale_tril: [K, K]. Returns [K], or [S, K] when num_samples = S.
    """
    if num_samples is None:
        eps = jax.random.normal(key, mean.shape, jnp.float32)
        return mean + scale_tril @ eps
    eps = jax.random.normal(key, (num_samples, *mean.shape), jnp.float32)
    return mean[None] + eps @ scale_tril.T  # [S, K]


def _half_logdet(scale_tril: jax.Array) -> jax.Array:
    """(1/2) log det(L L^T) = sum_k log L_kk (positive diagonal)."""
    return jnp.sum(jnp.log(jnp.diagonal(scale_tril)))


def full_normal_logpdf(
    z: jax.Array, mean: jax.Array, scale_tril: jax.Array
) -> jax.Array:
    """log N(z; mean, L L^T) = -||L^-1 (z - mean)||^2 / 2 - sum log L_kk - K/2 log 2pi.

    L must be lower-triangular with a positive diagonal; Bishop 2006, eq. 2.43.
    z, mean: [K]; scale_tril: [K, K]. Returns a scalar.
    """
    white = solve_triangular(scale_tril, z - mean, lower=True)  # [K]
    return -0.5 * (jnp.sum(jnp.square(white)) + z.size * LOG_2PI) - _half_logdet(
        scale_tril
    )


def kl_diag_to_std_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, diag(e^logvar)) || N(0, I)) = 1/2 sum(e^logvar + mean^2 - 1 - logvar).

    Kingma & Welling 2013, App. B. mean, logvar: [K]. Returns a scalar.
    """
    return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar)


def kl_diag_normals(
    mean0: jax.Array, logvar0: jax.Array, mean1: jax.Array, logvar1: jax.Array
) -> jax.Array:
    """KL(N0 || N1) = 1/2 sum(exp(lv0 - lv1) + (m1 - m0)^2 exp(-lv1) - 1 + lv1 - lv0).

    Diagonal case of Doersch 2016, eq. 7.

    Args:
      mean0, logvar0: [K], parameters of the first Gaussian.
      mean1, logvar1: [K], parameters of the second Gaussian.

    Returns:
      Scalar KL divergence in nats.
    """
    diff = logvar0 - logvar1
    quad = jnp.square(mean1 - mean0) * jnp.exp(-logvar1)
    return 0.5 * jnp.sum(jnp.exp(diff) + quad - 1.0 - diff)


def kl_full_normals(
    mean0: jax.Array, scale_tril0: jax.Array, mean1: jax.Array, scale_tril1: jax.Array
) -> jax.Array:
    """KL(N(mu0, S0) || N(mu1, S1)); Doersch 2016, eq. 7.

    = 1/2 [tr(S1^-1 S0) + (mu1 - mu0)^T S1^-1 (mu1 - mu0) - K + ln(det S1 / det S0)]
    with Si = Li Li^T: tr term = ||L1^-1 L0||_F^2, quad term = ||L1^-1 (mu1 - mu0)||^2,
    log det Si = 2 sum log diag(Li). Triangular solves only, no inverse.

    Args:
      mean0, scale_tril0: [K], [K, K], the first Gaussian (L0 lower, positive diag).
      mean1, scale_tril1: [K], [K, K], the second Gaussian (L1 lower, positive diag).

    Returns:
      Scalar KL divergence in nats.
    """
    m = solve_triangular(scale_tril1, scale_tril0, lower=True)  # [K, K] = L1^-1 L0
    d = solve_triangular(scale_tril1, mean1 - mean0, lower=True)  # [K]
    logdet_ratio = 2.0 * (_half_logdet(scale_tril1) - _half_logdet(scale_tril0))
    return 0.5 * (
        jnp.sum(jnp.square(m)) + jnp.sum(jnp.square(d)) - mean0.size + logdet_ratio
    )


def kl_full_normal_to_std_normal(mean: jax.Array, scale_tril: jax.Array) -> jax.Array:
    """KL(N(mean, L L^T) || N(0, I)) = 1/2 [||L||_F^2 + ||mean||^2 - K] - sum log L_kk.

    Doersch 2016, eq. 7 with mu1 = 0, S1 = I. mean: [K]; scale_tril: [K, K].
    Returns a scalar.
    """
    sq = jnp.sum(jnp.square(scale_tril)) + jnp.sum(jnp.square(mean))
    return 0.5 * (sq - mean.size) - _half_logdet(scale_tril)


def scale_tril_from_params(
    log_diag: jax.Array, lower: jax.Array, min_scale: float = 1e-6
) -> jax.Array:
    """Unconstrained outputs -> Cholesky factor L, L_kk = exp(log_diag_k) + min_scale.

    `lower` fills the strict lower triangle in row-major order
    (`jnp.tril_indices(K, -1)`: (1,0), (2,0), (2,1), ...); the upper triangle is 0.
    min_scale keeps L invertible when log_diag is very negative.

    log_diag: [K]; lower: [K (K - 1) / 2]. Returns [K, K].
    """
    k = log_diag.shape[0]
    if lower.shape != (k * (k - 1) // 2,):
        raise ValueError(
            f"lower must have shape ({k * (k - 1) // 2},), got {lower.shape}"
        )
    rows, cols = jnp.tril_indices(k, -1)
    scale_tril = jnp.zeros((k, k), jnp.float32).at[rows, cols].set(lower)
    return scale_tril + jnp.diag(jnp.exp(log_diag) + min_scale)


def log_mean_exp(x: jax.Array, axis: int = 0) -> jax.Array:
    """log (1/n) sum_i exp(x_i) along `axis`, without overflow; Burda et al. 2015, §3.

    x: [..., S, ...] with S = x.shape[axis]. Returns x with `axis` removed.
    """
    return logsumexp(x, axis=axis) - math.log(x.shape[axis])
