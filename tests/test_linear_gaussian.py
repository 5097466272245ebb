"""Tests for vae_jax.linear_gaussian: exact marginal, posterior and ELBO identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from vae_jax import distributions as dist
from vae_jax import linear_gaussian as lg

D, K = 6, 3


def _model(seed: int = 0):
    """(x [D], W [D, K], b [D], log_s []) with x drawn from the model, float32."""
    rng = np.random.default_rng(seed)
    W = 0.8 * rng.standard_normal((D, K))
    b = rng.standard_normal(D)
    log_s = np.log(0.6)
    x = W @ rng.standard_normal(K) + b + np.exp(log_s) * rng.standard_normal(D)
    return tuple(jnp.asarray(a, jnp.float32) for a in (x, W, b, log_s))


def _random_q(seed: int):
    rng = np.random.default_rng(seed)
    q_mean = jnp.asarray(rng.standard_normal(K), jnp.float32)
    q_logvar = jnp.asarray(rng.uniform(-1.5, 0.5, K), jnp.float32)
    return q_mean, q_logvar


def _np(*arrays):
    return tuple(np.asarray(a, np.float64) for a in arrays)


def test_log_marginal_matches_scipy():
    x, W, b, log_s = _model()
    Wn, bn, s = (
        np.asarray(W, np.float64),
        np.asarray(b, np.float64),
        float(np.exp(log_s)),
    )
    xs = np.asarray(x)[None] + np.random.default_rng(1).standard_normal((10, D))
    expected = scipy.stats.multivariate_normal(bn, Wn @ Wn.T + s**2 * np.eye(D)).logpdf(
        xs
    )
    got = jax.vmap(lg.log_marginal, in_axes=(0, None, None, None))(
        jnp.asarray(xs, jnp.float32), W, b, log_s
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_posterior_matches_joint_gaussian_conditioning():
    """(z, x) jointly Gaussian: z | x = N(G (x - b), I - G W), G = W^T Cov[x]^-1."""
    x, W, b, log_s = _model()
    xn, Wn, bn = _np(x, W, b)
    cov_xx = Wn @ Wn.T + float(np.exp(2 * log_s)) * np.eye(D)  # Cov[x]
    gain = np.linalg.solve(
        cov_xx, Wn
    ).T  # [K, D] = Cov[z, x] Cov[x]^-1, Cov[z, x] = W^T
    mean, cov = jax.jit(lg.posterior)(x, W, b, log_s)
    np.testing.assert_allclose(mean, gain @ (xn - bn), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cov, np.eye(K) - gain @ Wn, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(cov, cov.T)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_joint_minus_log_posterior_is_log_marginal(seed):
    """Bayes' rule: log p(x, z) - log p(z | x) = log p(x) for every z."""
    x, W, b, log_s = _model(seed)
    mean, cov = lg.posterior(x, W, b, log_s)
    # z within a few posterior std of the mean: far away both terms are O(100) and
    # float32 cancellation alone costs ~1e-4.
    eps = jnp.asarray(np.random.default_rng(seed).standard_normal((5, K)), jnp.float32)
    zs = mean[None] + eps  # [5, K]
    chol = jnp.linalg.cholesky(cov)
    diffs = jax.vmap(
        lambda z: (
            lg.log_joint(x, z, W, b, log_s) - dist.full_normal_logpdf(z, mean, chol)
        )
    )(zs)
    np.testing.assert_allclose(
        diffs, np.full(5, lg.log_marginal(x, W, b, log_s)), atol=1e-4
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_elbo_plus_kl_to_posterior_is_log_marginal(seed):
    """log p(x) = ELBO(q) + KL(q || p(z|x)); Kingma & Welling 2013, eq. 1."""
    x, W, b, log_s = _model(seed)
    q_mean, q_logvar = _random_q(seed + 100)
    elbo = lg.elbo_diag(x, W, b, log_s, q_mean, q_logvar)
    kl = lg.kl_to_posterior_diag(x, W, b, log_s, q_mean, q_logvar)
    log_px = lg.log_marginal(x, W, b, log_s)
    assert (
        kl > 0.1
    )  # a random q is far from the posterior, so the identity is not trivial
    np.testing.assert_allclose(elbo + kl, log_px, atol=1e-4)
    assert elbo <= log_px


def test_elbo_is_tight_at_a_diagonal_posterior():
    """Orthogonal columns of W make p(z|x) diagonal, so the best diagonal q is exact."""
    x, _, b, log_s = _model()
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((D, K)))
    W = jnp.asarray(q * np.array([2.0, 1.0, 0.5])[None], jnp.float32)
    mean, cov = lg.posterior(x, W, b, log_s)
    np.testing.assert_allclose(cov, np.diag(np.diag(cov)), atol=1e-6)
    logvar = jnp.log(jnp.diagonal(cov))
    np.testing.assert_allclose(
        lg.elbo_diag(x, W, b, log_s, mean, logvar),
        lg.log_marginal(x, W, b, log_s),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        lg.kl_to_posterior_diag(x, W, b, log_s, mean, logvar), 0, atol=1e-5
    )


def test_elbo_closed_form_matches_monte_carlo():
    """ELBO = E_q[log p(x, z) - log q(z)], estimated with S reparameterised draws."""
    x, W, b, log_s = _model()
    q_mean, q_logvar = _random_q(7)
    z = dist.sample_diag_normal(
        jax.random.key(0), q_mean, q_logvar, num_samples=200_000
    )

    def log_weight(z):
        return lg.log_joint(x, z, W, b, log_s) - dist.diag_normal_logpdf(
            z, q_mean, q_logvar
        )

    mc = jax.jit(jax.vmap(log_weight))(z).mean()
    np.testing.assert_allclose(
        lg.elbo_diag(x, W, b, log_s, q_mean, q_logvar), mc, atol=3e-2
    )


def test_vmap_and_jit_match_a_loop():
    xs = jnp.stack([_model(seed)[0] for seed in range(4)])  # [B, D]
    _, W, b, log_s = _model()
    q_mean, q_logvar = _random_q(3)
    for fn in (lg.elbo_diag, lg.kl_to_posterior_diag):
        batched = jax.jit(jax.vmap(fn, in_axes=(0, None, None, None, None, None)))
        loop = [fn(x, W, b, log_s, q_mean, q_logvar) for x in xs]
        np.testing.assert_allclose(
            batched(xs, W, b, log_s, q_mean, q_logvar), loop, rtol=1e-5
        )
    batched = jax.vmap(lg.log_marginal, in_axes=(0, None, None, None))(xs, W, b, log_s)
    np.testing.assert_allclose(
        batched, [lg.log_marginal(x, W, b, log_s) for x in xs], rtol=1e-5
    )
