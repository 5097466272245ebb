"""MMD kernels and estimators (``vae_jax.mmd``) against float64 numpy, the Gaussian
closed form and Monte Carlo within standard errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import mmd

# Two different 2-D Gaussians with correlated covariances.
MEAN1, MEAN2 = np.array([0.0, 0.0]), np.array([0.8, -0.5])
COV1 = np.array([[1.0, 0.3], [0.3, 0.5]])
COV2 = np.array([[0.6, -0.2], [-0.2, 1.2]])
SCALE = 1.3  # RBF bandwidth s
N, M = 8, 6  # small samples: the V-statistic's bias is ~0.1, the SE below ~1e-3
DRAWS = 5_000


def _np_kernel(name, x, y, scale):
    """Direct float64 double loop over pairs. x: [n, K], y: [m, K] -> [n, m]."""
    out = np.empty((len(x), len(y)))
    for i, a in enumerate(x):
        for j, b in enumerate(y):
            d2 = float(np.sum((a - b) ** 2))
            out[i, j] = (
                np.exp(-d2 / (2 * scale**2)) if name == "rbf" else scale / (scale + d2)
            )
    return out


def _np_mmd2_unbiased(x, y, name, scale):
    """Gretton et al. 2012, eq. 3, term by term in float64."""
    n, m = len(x), len(y)
    kxx, kyy = _np_kernel(name, x, x, scale), _np_kernel(name, y, y, scale)
    kxy = _np_kernel(name, x, y, scale)
    xx = sum(kxx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(kyy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return xx + yy - 2 * kxy.sum() / (n * m)


@pytest.mark.parametrize("name,scale", [("rbf", 0.7), ("imq", 2.5)])
def test_kernels_match_float64_numpy(name, scale):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)) * 2
    got = mmd.KERNELS[name](
        jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), scale
    )
    np.testing.assert_allclose(got, _np_kernel(name, x, y, scale), rtol=2e-5)


@pytest.mark.parametrize("name,scale", [("rbf", 0.9), ("imq", 6.0)])
def test_unbiased_estimate_matches_its_definition(name, scale):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.5
    kernel = functools.partial(mmd.KERNELS[name], scale=scale)
    got = mmd.mmd2_unbiased(
        jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), kernel
    )
    np.testing.assert_allclose(
        got, _np_mmd2_unbiased(x, y, name, scale), rtol=1e-5, atol=1e-6
    )


def test_default_scales_are_the_wae_papers():
    assert mmd.default_scale("imq", 8) == 16.0  # C = 2 K sigma_z^2 (Tolstikhin §4)
    assert mmd.default_scale("imq", 8, prior_variance=2.0) == 32.0
    np.testing.assert_allclose(mmd.default_scale("rbf", 8), np.sqrt(8.0))  # 2 s^2 = C
    with pytest.raises(ValueError, match="Unknown MMD kernel 'laplace'"):
        mmd.default_scale("laplace", 8)


def test_unbiased_estimate_needs_two_samples_each():
    kernel = functools.partial(mmd.rbf_kernel, scale=1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd.mmd2_unbiased(jnp.zeros((1, 2)), jnp.zeros((3, 2)), kernel)


def test_gaussian_closed_form_matches_float64_monte_carlo():
    """E k over 500,000 independent pairs of each kind, numpy float64."""
    rng = np.random.default_rng(2)
    draws = 500_000

    def mean_k(m_a, c_a, m_b, c_b):
        a = m_a + rng.standard_normal((draws, 2)) @ np.linalg.cholesky(c_a).T
        b = m_b + rng.standard_normal((draws, 2)) @ np.linalg.cholesky(c_b).T
        k = np.exp(-np.sum((a - b) ** 2, axis=1) / (2 * SCALE**2))
        return k.mean(), k.var() / draws

    parts = [
        mean_k(MEAN1, COV1, MEAN1, COV1),
        mean_k(MEAN2, COV2, MEAN2, COV2),
        mean_k(MEAN1, COV1, MEAN2, COV2),
    ]
    estimate = parts[0][0] + parts[1][0] - 2 * parts[2][0]
    se = np.sqrt(parts[0][1] + parts[1][1] + 4 * parts[2][1])
    exact = mmd.rbf_mmd2_gaussians(MEAN1, COV1, MEAN2, COV2, SCALE)
    assert 0.05 < exact < 0.5  # distributions that differ, not a trivial 0 or 1
    assert abs(exact - estimate) < 4 * se, (float(exact), estimate, se)


@functools.partial(jax.jit, static_argnames="name")
def _draws(keys, mean1, chol1, mean2, chol2, name, scale):
    """(MMD^2_u, MMD^2_b) of one draw x: [N, K] ~ N(mean1, chol1 chol1^T), y: [M, K] ~
    N(mean2, chol2 chol2^T) per key: keys [R] -> ([R], [R])."""
    kernel = functools.partial(mmd.KERNELS[name], scale=scale)

    def one(key):
        kx, ky = jax.random.split(key)
        x = mean1[None, :] + jax.random.normal(kx, (N, 2)) @ chol1.T
        y = mean2[None, :] + jax.random.normal(ky, (M, 2)) @ chol2.T
        return mmd.mmd2_unbiased(x, y, kernel), mmd.mmd2_biased(x, y, kernel)

    return jax.vmap(one)(keys)


def _estimates(name, scale, mean1, cov1, mean2, cov2):
    """Means and standard errors of DRAWS independent MMD^2_u and MMD^2_b:
    ((mean_u, se_u), (mean_b, se_b))."""
    chol1, chol2 = np.linalg.cholesky(cov1), np.linalg.cholesky(cov2)
    keys = jax.random.split(jax.random.key(0), DRAWS)
    args = [jnp.asarray(a, jnp.float32) for a in (mean1, chol1, mean2, chol2)]
    draws = _draws(keys, *args, name=name, scale=scale)
    return [
        (v.mean(), v.std() / np.sqrt(DRAWS))
        for v in (np.asarray(d, np.float64) for d in draws)
    ]


def test_unbiased_estimate_averages_to_the_closed_form():
    """Gretton et al. 2012, eq. 3 is unbiased: its mean over draws of two different
    Gaussians is the closed-form MMD^2; the V-statistic's is not (n = 8, m = 6)."""
    exact = float(mmd.rbf_mmd2_gaussians(MEAN1, COV1, MEAN2, COV2, SCALE))
    (mean, se), (biased, biased_se) = _estimates("rbf", SCALE, MEAN1, COV1, MEAN2, COV2)
    assert abs(mean - exact) < 4 * se, (mean, exact, se)
    assert biased - exact > 20 * biased_se  # the test can tell a biased estimate


@pytest.mark.parametrize("name,scale", [("rbf", SCALE), ("imq", 4.0)])
def test_unbiased_estimate_of_identical_distributions_averages_to_zero(name, scale):
    (mean, se), (biased, biased_se) = _estimates(name, scale, MEAN2, COV2, MEAN2, COV2)
    assert abs(mean) < 4 * se, (mean, se)
    assert biased > 20 * biased_se
