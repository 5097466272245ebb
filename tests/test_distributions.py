"""Tests for vae_jax.distributions: closed forms vs scipy, Monte Carlo and autodiff."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from jax.test_util import check_grads

from vae_jax import distributions as dist

NUM_MC = 200_000  # S for Monte-Carlo checks: standard errors ~ 1e-2 or below


def _random_scale_tril(rng: np.random.Generator, k: int) -> jnp.ndarray:
    """Well-conditioned lower-triangular L: diag in [0.7, 1.4], small off-diagonal."""
    tril = np.tril(0.4 * rng.standard_normal((k, k)), -1)
    return jnp.asarray(tril + np.diag(np.exp(rng.uniform(-0.35, 0.35, k))), jnp.float32)


def _mc_kl(sample, logq, logp, seed=0):
    """E_q[log q(z) - log p(z)] from NUM_MC draws, one key each (vmap over keys)."""

    def log_ratio(k):
        z = sample(k)
        return logq(z) - logp(z)

    return jax.vmap(log_ratio)(jax.random.split(jax.random.key(seed), NUM_MC)).mean()


# ----------------------------------------------------------------- KL vs Monte Carlo


@pytest.mark.parametrize("jit", [False, True])
def test_kl_diag_to_std_normal_matches_monte_carlo(jit):
    mean, logvar = jnp.array([0.3, -1.0, 0.8]), jnp.array([0.2, -0.5, 0.6])
    kl_fn = jax.jit(dist.kl_diag_to_std_normal) if jit else dist.kl_diag_to_std_normal
    mc = _mc_kl(
        lambda k: dist.sample_diag_normal(k, mean, logvar),
        lambda z: dist.diag_normal_logpdf(z, mean, logvar),
        dist.std_normal_logpdf,
    )
    np.testing.assert_allclose(kl_fn(mean, logvar), mc, rtol=2e-2)


@pytest.mark.parametrize("jit", [False, True])
def test_kl_diag_normals_matches_monte_carlo(jit):
    m0, lv0 = jnp.array([0.3, -1.0, 0.5]), jnp.array([0.2, -0.5, 0.1])
    m1, lv1 = jnp.array([-0.4, 0.2, 1.0]), jnp.array([-0.3, 0.4, 0.5])
    kl_fn = jax.jit(dist.kl_diag_normals) if jit else dist.kl_diag_normals
    mc = _mc_kl(
        lambda k: dist.sample_diag_normal(k, m0, lv0),
        lambda z: dist.diag_normal_logpdf(z, m0, lv0),
        lambda z: dist.diag_normal_logpdf(z, m1, lv1),
    )
    np.testing.assert_allclose(kl_fn(m0, lv0, m1, lv1), mc, rtol=2e-2)


@pytest.mark.parametrize("jit", [False, True])
def test_kl_full_normals_matches_monte_carlo(jit):
    rng = np.random.default_rng(1)
    k = 3
    m0, m1 = (jnp.asarray(rng.standard_normal(k), jnp.float32) for _ in range(2))
    l0, l1 = _random_scale_tril(rng, k), _random_scale_tril(rng, k)
    kl_fn = jax.jit(dist.kl_full_normals) if jit else dist.kl_full_normals
    mc = _mc_kl(
        lambda key: dist.sample_full_normal(key, m0, l0),
        lambda z: dist.full_normal_logpdf(z, m0, l0),
        lambda z: dist.full_normal_logpdf(z, m1, l1),
    )
    kl = kl_fn(m0, l0, m1, l1)
    assert kl > 0.5  # large enough that a factor or a constant would show
    np.testing.assert_allclose(kl, mc, rtol=2e-2)


@pytest.mark.parametrize("jit", [False, True])
def test_kl_full_normal_to_std_normal_matches_monte_carlo(jit):
    rng = np.random.default_rng(2)
    mean, scale_tril = jnp.array([0.5, -0.7, 0.2]), _random_scale_tril(rng, 3)
    kl_fn = (
        jax.jit(dist.kl_full_normal_to_std_normal)
        if jit
        else dist.kl_full_normal_to_std_normal
    )
    mc = _mc_kl(
        lambda key: dist.sample_full_normal(key, mean, scale_tril),
        lambda z: dist.full_normal_logpdf(z, mean, scale_tril),
        dist.std_normal_logpdf,
    )
    np.testing.assert_allclose(kl_fn(mean, scale_tril), mc, rtol=2e-2)


# ------------------------------------------------------------------ KL properties


def test_kl_of_a_distribution_with_itself_is_zero():
    rng = np.random.default_rng(3)
    mean = jnp.asarray(rng.standard_normal(4), jnp.float32)
    logvar = jnp.asarray(rng.standard_normal(4), jnp.float32)
    scale_tril = _random_scale_tril(rng, 4)
    np.testing.assert_allclose(
        dist.kl_diag_normals(mean, logvar, mean, logvar), 0, atol=1e-5
    )
    np.testing.assert_allclose(
        dist.kl_full_normals(mean, scale_tril, mean, scale_tril), 0, atol=1e-5
    )
    zeros, eye = jnp.zeros(4), jnp.eye(4)
    np.testing.assert_allclose(dist.kl_diag_to_std_normal(zeros, zeros), 0, atol=1e-6)
    np.testing.assert_allclose(
        dist.kl_full_normal_to_std_normal(zeros, eye), 0, atol=1e-6
    )


def test_kls_are_nonnegative_on_random_inputs():
    rng = np.random.default_rng(4)
    n, k = 500, 3

    def rand(*shape, scale=1.0):
        return jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)

    m0, m1, lv0, lv1 = rand(n, k), rand(n, k), rand(n, k, scale=2), rand(n, k, scale=2)
    l0 = jax.vmap(dist.scale_tril_from_params)(rand(n, k), rand(n, k * (k - 1) // 2))
    l1 = jax.vmap(dist.scale_tril_from_params)(rand(n, k), rand(n, k * (k - 1) // 2))
    kls = [
        jax.vmap(dist.kl_diag_to_std_normal)(m0, lv0),
        jax.vmap(dist.kl_diag_normals)(m0, lv0, m1, lv1),
        jax.vmap(dist.kl_full_normals)(m0, l0, m1, l1),
        jax.vmap(dist.kl_full_normal_to_std_normal)(m0, l0),
    ]
    for kl in kls:
        assert np.all(np.isfinite(kl)) and np.all(kl >= -1e-5)


def test_full_kls_with_diagonal_factors_equal_diagonal_kls():
    rng = np.random.default_rng(5)
    m0, m1, lv0, lv1 = (
        jnp.asarray(rng.standard_normal(4), jnp.float32) for _ in range(4)
    )
    l0, l1 = jnp.diag(jnp.exp(0.5 * lv0)), jnp.diag(jnp.exp(0.5 * lv1))
    np.testing.assert_allclose(
        dist.kl_full_normals(m0, l0, m1, l1),
        dist.kl_diag_normals(m0, lv0, m1, lv1),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        dist.kl_full_normal_to_std_normal(m0, l0),
        dist.kl_diag_to_std_normal(m0, lv0),
        rtol=1e-5,
    )
    # The std-normal special cases agree with the general formulas.
    scale_tril = _random_scale_tril(rng, 4)
    np.testing.assert_allclose(
        dist.kl_full_normal_to_std_normal(m0, scale_tril),
        dist.kl_full_normals(m0, scale_tril, jnp.zeros(4), jnp.eye(4)),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        dist.kl_diag_to_std_normal(m0, lv0),
        dist.kl_diag_normals(m0, lv0, jnp.zeros(4), jnp.zeros(4)),
        rtol=1e-5,
    )


# ------------------------------------------------------------- densities vs scipy


def test_diag_and_std_normal_logpdf_match_scipy():
    rng = np.random.default_rng(6)
    k = 5
    mean, logvar = rng.standard_normal(k), rng.standard_normal(k)
    z = rng.standard_normal((20, k)) * 2
    expected = scipy.stats.multivariate_normal(mean, np.diag(np.exp(logvar))).logpdf(z)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    got = jax.vmap(dist.diag_normal_logpdf, in_axes=(0, None, None))(
        f32(z), f32(mean), f32(logvar)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    expected_std = scipy.stats.multivariate_normal(np.zeros(k), np.eye(k)).logpdf(z)
    np.testing.assert_allclose(
        jax.vmap(dist.std_normal_logpdf)(f32(z)), expected_std, rtol=1e-5
    )


def test_reparameterised_draws_and_their_log_density_from_eps():
    """``sample_diag_normal_and_eps`` gives ``sample_diag_normal``'s draws and their eps;
    log q from eps (change of variables) equals scipy's density at z = mu + sigma eps
    computed in float64, also at sigma = 1e-4 << |mu| = 5 where (z - mu) / sigma in
    float32 would cancel."""
    rng = np.random.default_rng(8)
    key, k = jax.random.PRNGKey(8), 6
    for scale in (1.0, 1e-4):
        mean = jnp.asarray(5.0 * rng.choice([-1.0, 1.0], k), jnp.float32)
        logvar = jnp.asarray(2.0 * np.log(scale) + 0.1 * rng.standard_normal(k))
        z, eps = dist.sample_diag_normal_and_eps(key, mean, logvar, 7)  # [7, K]
        np.testing.assert_array_equal(z, dist.sample_diag_normal(key, mean, logvar, 7))
        got = jax.vmap(dist.diag_normal_logpdf_at_eps, in_axes=(0, None))(eps, logvar)
        sd = np.exp(0.5 * np.asarray(logvar, np.float64))
        z64 = np.asarray(mean, np.float64) + sd * np.asarray(eps, np.float64)
        want = scipy.stats.norm.logpdf(z64, np.asarray(mean, np.float64), sd).sum(-1)
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_full_normal_logpdf_matches_scipy():
    rng = np.random.default_rng(7)
    k = 4
    mean, scale_tril = rng.standard_normal(k), np.asarray(_random_scale_tril(rng, k))
    z = rng.standard_normal((20, k)) * 2
    expected = scipy.stats.multivariate_normal(mean, scale_tril @ scale_tril.T).logpdf(
        z
    )
    got = jax.vmap(dist.full_normal_logpdf, in_axes=(0, None, None))(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(scale_tril),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_scale_tril_from_params():
    log_diag, lower = jnp.array([0.0, -1.0, 0.5]), jnp.array([1.0, 2.0, 3.0])
    scale_tril = jax.jit(dist.scale_tril_from_params)(log_diag, lower)
    expected = np.array(
        [[1.0, 0.0, 0.0], [1.0, math.exp(-1.0), 0.0], [2.0, 3.0, math.exp(0.5)]]
    ) + 1e-6 * np.eye(3)
    np.testing.assert_allclose(scale_tril, expected, rtol=1e-6)
    # Very negative log_diag still gives an invertible factor.
    tiny = dist.scale_tril_from_params(jnp.full(3, -200.0), lower)
    assert np.all(np.diag(tiny) > 0)
    assert np.isfinite(dist.full_normal_logpdf(jnp.ones(3), jnp.zeros(3), tiny))
    with pytest.raises(ValueError, match="lower must have shape"):
        dist.scale_tril_from_params(log_diag, jnp.zeros(2))


# -------------------------------------------------------------------- likelihoods


def test_gaussian_loglik_is_scaled_squared_error():
    rng = np.random.default_rng(8)
    d = 6
    x, mean = (jnp.asarray(rng.standard_normal(d), jnp.float32) for _ in range(2))
    log_sigma = jnp.float32(-0.3)
    sigma2 = math.exp(2 * -0.3)
    sq = float(jnp.sum(jnp.square(x - mean)))
    expected = -sq / (2 * sigma2) - d * -0.3 - 0.5 * d * math.log(2 * math.pi)
    np.testing.assert_allclose(
        dist.gaussian_loglik(x, mean, log_sigma), expected, rtol=1e-5
    )
    # A per-dimension sigma matches scipy's product of univariate normals.
    log_sigmas = jnp.asarray(rng.uniform(-1, 1, d), jnp.float32)
    expected = (
        scipy.stats.norm(np.asarray(mean), np.exp(np.asarray(log_sigmas)))
        .logpdf(x)
        .sum()
    )
    np.testing.assert_allclose(
        dist.gaussian_loglik(x, mean, log_sigmas), expected, rtol=1e-5
    )

    # grad_mean log-lik = (x - mean) / sigma^2;  grad_mean MSE = -2 (x - mean) / D.
    mse = lambda m: jnp.mean(jnp.square(x - m))
    grad_ll = jax.grad(dist.gaussian_loglik, argnums=1)(x, mean, log_sigma)
    np.testing.assert_allclose(
        grad_ll, -(d / (2 * sigma2)) * jax.grad(mse)(mean), rtol=1e-5
    )


def test_softplus_matches_log1p_exp_and_its_gradient_is_the_sigmoid():
    x = jnp.concatenate([jnp.linspace(-100.0, 100.0, 2001), jnp.asarray([0.0])])
    exact = np.logaddexp(0.0, np.asarray(x, np.float64))
    np.testing.assert_allclose(dist.softplus(x), exact, rtol=1e-6, atol=1e-30)
    np.testing.assert_array_equal(dist.softplus(x), jax.nn.softplus(x))
    grad = jax.vmap(jax.grad(dist.softplus))(x)
    np.testing.assert_allclose(grad, jax.nn.sigmoid(x), rtol=1e-6, atol=1e-30)
    special = dist.softplus(jnp.asarray([jnp.inf, -jnp.inf, jnp.nan]))
    assert special[0] == jnp.inf and special[1] == 0.0 and jnp.isnan(special[2])


def test_bernoulli_logpmf_matches_direct_formula():
    rng = np.random.default_rng(9)
    logits = rng.uniform(-5, 5, 10)
    p = 1 / (1 + np.exp(-logits))
    for x in (rng.integers(0, 2, 10).astype(np.float64), rng.uniform(0, 1, 10)):
        expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
        got = dist.bernoulli_logpmf(
            jnp.asarray(x, jnp.float32), jnp.asarray(logits, jnp.float32)
        )
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_logpmf_is_stable_for_large_logits():
    x, logits = (
        jnp.array([1.0, 0.0, 1.0, 0.0]),
        jnp.array([100.0, 100.0, -100.0, -100.0]),
    )
    value = dist.bernoulli_logpmf(x, logits)
    np.testing.assert_allclose(
        value, -200.0, rtol=1e-6
    )  # log σ(100) ≈ 0, log(1-σ(100)) = -100
    grad = jax.grad(dist.bernoulli_logpmf, argnums=1)(x, logits)
    np.testing.assert_allclose(grad, x - jax.nn.sigmoid(logits), atol=1e-6)


def test_bernoulli_logpmf_grads_match_finite_differences():
    x = jnp.array([1.0, 0.0, 0.3, 0.9])
    logits = jnp.array([0.5, -1.2, 2.0, -0.3])
    f = jax.jit(lambda lg: dist.bernoulli_logpmf(x, lg))
    check_grads(f, (logits,), order=2, eps=1e-2)


# ------------------------------------------------------------------------ sampling


def test_reparameterised_gradient_matches_analytic():
    """d/d(mean, logvar) E[sum z^2] = (2 mean, exp(logvar)); K&W 2013, §2.4."""
    mean, logvar = jnp.array([0.5, -1.0, 0.2]), jnp.array([0.4, -0.6, 0.9])
    key = jax.random.key(0)

    def estimate(m, lv):
        z = dist.sample_diag_normal(key, m, lv, num_samples=NUM_MC)  # [S, K]
        return jnp.mean(jnp.sum(jnp.square(z), axis=1))

    g_mean, g_logvar = jax.jit(jax.grad(estimate, argnums=(0, 1)))(mean, logvar)
    np.testing.assert_allclose(g_mean, 2 * mean, atol=3e-2)
    np.testing.assert_allclose(g_logvar, jnp.exp(logvar), atol=3e-2)


def test_sample_diag_normal_grads_match_finite_differences():
    key = jax.random.key(1)
    mean, logvar = jnp.array([0.5, -1.0, 0.2]), jnp.array([0.4, -0.6, 0.9])
    check_grads(
        lambda m, lv: dist.sample_diag_normal(key, m, lv),
        (mean, logvar),
        order=2,
        eps=1e-2,
    )
    check_grads(
        lambda m, lv: dist.sample_diag_normal(key, m, lv, num_samples=4),
        (mean, logvar),
        order=1,
        eps=1e-2,
    )


def test_sample_diag_normal_moments_and_shapes():
    mean, logvar = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.4, -0.6, 0.0])
    z = dist.sample_diag_normal(jax.random.key(2), mean, logvar, num_samples=NUM_MC)
    assert z.shape == (NUM_MC, 3) and z.dtype == jnp.float32
    np.testing.assert_allclose(z.mean(0), mean, atol=1e-2)
    np.testing.assert_allclose(
        np.cov(z, rowvar=False), np.diag(np.exp(logvar)), atol=2e-2
    )
    one = dist.sample_diag_normal(jax.random.key(3), mean, logvar)
    assert one.shape == (3,)


@pytest.mark.parametrize("batched", [False, True])
def test_sample_full_normal_moments(batched):
    rng = np.random.default_rng(10)
    mean, scale_tril = jnp.array([0.5, -1.0, 2.0]), _random_scale_tril(rng, 3)
    key = jax.random.key(4)
    if batched:
        z = dist.sample_full_normal(key, mean, scale_tril, num_samples=NUM_MC)
    else:
        keys = jax.random.split(key, NUM_MC)
        z = jax.vmap(dist.sample_full_normal, in_axes=(0, None, None))(
            keys, mean, scale_tril
        )
    assert z.shape == (NUM_MC, 3)
    np.testing.assert_allclose(z.mean(0), mean, atol=1.5e-2)
    cov = np.asarray(scale_tril) @ np.asarray(scale_tril).T
    np.testing.assert_allclose(np.cov(z, rowvar=False), cov, atol=3e-2)


# ---------------------------------------------------------------------- utilities


def _np_log_mean_exp(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(x - m), axis=axis))


@pytest.mark.parametrize("offset", [1000.0, -1000.0, 0.0])
def test_log_mean_exp_matches_numpy_without_overflow(offset):
    rng = np.random.default_rng(11)
    x = offset + 5 * rng.standard_normal((50, 3))
    for axis in (0, 1):
        got = dist.log_mean_exp(jnp.asarray(x, jnp.float32), axis=axis)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, _np_log_mean_exp(x, axis), rtol=1e-5, atol=1e-4)
    # The mean of n equal values is that value (catches log-sum-exp without the 1/n).
    np.testing.assert_allclose(
        dist.log_mean_exp(jnp.full((7,), offset)), offset, atol=1e-4
    )


def test_draws_are_mean_plus_scale_times_the_keys_standard_normals():
    """The reparameterisation's convention z = mean + L eps with eps the key's own
    N(0, I) draws (K&W 2013, §2.4), which ``log_weights`` pairs with log q(z|x) at
    eps: a sign flip gives draws of the same law, but not these."""
    rng = np.random.default_rng(0)
    mean = rng.normal(size=3).astype(np.float32)
    logvar = rng.normal(size=3).astype(np.float32)
    tril = np.tril(rng.normal(size=(3, 3))).astype(np.float32)
    key = jax.random.key(4)
    sigma = np.exp(0.5 * logvar)
    one = np.asarray(jax.random.normal(key, (3,)), np.float64)
    many = np.asarray(jax.random.normal(key, (5, 3)), np.float64)
    np.testing.assert_allclose(
        dist.sample_diag_normal(key, mean, logvar), mean + sigma * one, rtol=1e-6
    )
    z, eps = dist.sample_diag_normal_and_eps(key, mean, logvar, 5)
    np.testing.assert_allclose(eps, many, rtol=1e-6)
    np.testing.assert_allclose(z, mean + sigma * many, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        dist.sample_diag_normal(key, mean, logvar, 5), z, rtol=1e-6
    )
    np.testing.assert_allclose(
        dist.sample_full_normal(key, mean, tril),
        mean + tril @ one,
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        dist.sample_full_normal(key, mean, tril, 5),
        mean + many @ tril.T,
        rtol=1e-5,
        atol=1e-6,
    )


def test_decoder_outputs_are_read_by_their_keys():
    """``{"logits"}`` is a Bernoulli, ``{"mean", "log_sigma"}`` a Gaussian (scipy)."""
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=6) < 0.5).astype(np.float32)
    logits = rng.normal(size=6).astype(np.float32)
    mean, log_sigma = rng.normal(size=6).astype(np.float32), np.float32(-0.3)
    bernoulli = {"logits": jnp.asarray(logits)}
    gaussian = {"mean": jnp.asarray(mean), "log_sigma": jnp.full(6, log_sigma)}
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(
        dist.decoder_log_likelihood(x, bernoulli),
        scipy.stats.bernoulli.logpmf(x, p).sum(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        dist.decoder_log_likelihood(x, gaussian),
        scipy.stats.norm.logpdf(x, mean, np.exp(log_sigma)).sum(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(dist.decoder_mean(bernoulli), p, rtol=1e-5)
    np.testing.assert_array_equal(dist.decoder_mean(gaussian), mean)


def test_scale_tril_names_the_shape_lower_must_have():
    with pytest.raises(ValueError, match=r"lower must have shape \(6,\), got \(5,\)"):
        dist.scale_tril_from_params(jnp.zeros(4), jnp.zeros(5))


def test_log_mean_exp_averages_over_the_first_axis_by_default():
    x = np.random.default_rng(2).normal(size=(4, 3)) * 30.0
    expected = scipy.special.logsumexp(x, axis=0) - math.log(4)
    np.testing.assert_allclose(dist.log_mean_exp(jnp.asarray(x)), expected, rtol=1e-5)
