"""Planar flows (vae_jax.flows) against dense Jacobians: each step's and the
composition's log-determinant vs slogdet of jax.jacfwd (float64), the invertibility
fix of Rezende & Mohamed 2015, App. A, and J^-T v vs a dense solve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import flows

K, L = 3, 5


def _params(seed, num_steps=L, violate=True):
    """Raw (u [L, K], w [L, K], b [L]) in float64; with ``violate`` every other step
    has w^T u = -3 < -1 (a non-invertible step until u is fixed)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(num_steps, K))
    w = rng.normal(size=(num_steps, K))
    b = rng.normal(size=num_steps)
    if violate:
        for l in range(0, num_steps, 2):  # u <- u + (-3 - w^T u) w / ||w||^2
            u[l] += (-3.0 - w[l] @ u[l]) * w[l] / (w[l] @ w[l])
    return u, w, b


def _np_invertible_u(u, w):
    """Rezende & Mohamed 2015, App. A, as printed: u + [m(w^T u) - w^T u] w / ||w||^2."""
    a = w @ u
    return u + (-1.0 + np.log1p(np.exp(a)) - a) * w / (w @ w)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planar_step_log_det_matches_slogdet_of_the_jacobian(seed):
    u, w, b = _params(seed, num_steps=1)
    z = np.random.default_rng(10 + seed).normal(size=K)
    with jax.enable_x64(True):
        args = [jnp.asarray(a[0]) for a in (u, w, b)]
        z_new, log_det = flows.planar_step(jnp.asarray(z), *args)
        jac = jax.jacfwd(lambda z: flows.planar_step(z, *args)[0])(jnp.asarray(z))
        expected = np.linalg.slogdet(np.asarray(jac))[1]
    np.testing.assert_allclose(z_new, z + u[0] * np.tanh(w[0] @ z + b[0]), rtol=1e-12)
    np.testing.assert_allclose(log_det, expected, rtol=1e-10, atol=1e-12)
    # w^T u = -3: the unfixed step is not invertible, its det is negative at s = 0.
    z0 = -b[0] * w[0] / (w[0] @ w[0])  # w^T z0 + b = 0
    jac0 = np.eye(K) + np.outer(u[0], w[0])
    assert np.linalg.det(jac0) < 0
    with jax.enable_x64(True):
        log_det0 = flows.planar_step(jnp.asarray(z0), *args)[1]
    np.testing.assert_allclose(log_det0, np.log(2.0), rtol=1e-10)  # |1 - 3|


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invertible_u_satisfies_the_constraint(seed):
    u, w, _ = _params(seed)
    with jax.enable_x64(True):
        u_hat = np.asarray(jax.vmap(flows.invertible_u)(jnp.asarray(u), jnp.asarray(w)))
    for l in range(L):
        np.testing.assert_allclose(u_hat[l], _np_invertible_u(u[l], w[l]), rtol=1e-10)
        a = w[l] @ u[l]
        np.testing.assert_allclose(w[l] @ u_hat[l], -1.0 + np.log1p(np.exp(a)))
        assert w[l] @ u_hat[l] > -1.0
        delta = u_hat[l] - u[l]  # along w only
        np.testing.assert_allclose(delta, (delta @ w[l]) * w[l] / (w[l] @ w[l]))


def _stepwise(z, u, w, b):
    """The flow as L ``planar_step``s with u made invertible, one by one."""
    total = 0.0
    for l in range(L):
        u_hat = flows.invertible_u(u[l], w[l])
        z, log_det = flows.planar_step(z, u_hat, w[l], b[l])
        total += log_det
    return z, total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planar_flow_log_det_matches_slogdet_of_the_composition(seed):
    u, w, b = _params(seed)
    zs = np.random.default_rng(20 + seed).normal(size=(8, K)) * 2.0  # [8, K]
    with jax.enable_x64(True):
        params = [jnp.asarray(a) for a in (u, w, b)]
        flow = lambda z: flows.planar_flow(z, *params)

        @jax.jit
        def all_terms(zs):  # [8, K] -> z_L, log det, Jacobian, stepwise reference
            jac = jax.vmap(jax.jacfwd(lambda z: flow(z)[0]))(zs)
            return (
                *jax.vmap(flow)(zs),
                jac,
                *jax.vmap(_stepwise, (0, None, None, None))(zs, *params),
            )

        z_last, log_det, jac, z_ref, log_det_ref = all_terms(jnp.asarray(zs))
    sign, expected = np.linalg.slogdet(np.asarray(jac))
    np.testing.assert_array_equal(sign, 1.0)  # every fixed step preserves orientation
    np.testing.assert_allclose(log_det, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(z_last, z_ref, rtol=1e-12)
    np.testing.assert_allclose(log_det, log_det_ref, rtol=1e-10, atol=1e-12)


def test_log_det_is_exact_in_float32_where_one_plus_m_cancels():
    """w^T u = -40 and w^T z + b = 0: det = softplus(-40) ~ 4e-18, which
    1 + h'(s) m(w^T u) rounds to 0 in float32 (log det = -inf)."""
    w = np.array([[1.0, 0.5, -0.5]])
    u = -40.0 * w / (w[0] @ w[0])
    z, b = np.zeros(3), np.zeros(1)  # s = 0 exactly
    args = [jnp.asarray(a, jnp.float32) for a in (z, u, w, b)]
    log_det = flows.planar_flow(*args)[1]
    assert log_det.dtype == jnp.float32
    np.testing.assert_allclose(log_det, np.log(np.log1p(np.exp(-40.0))), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_solve_jacobian_transpose_matches_a_dense_solve(seed):
    u, w, b = _params(seed)
    rng = np.random.default_rng(30 + seed)
    z, v = rng.normal(size=K), rng.normal(size=K)
    with jax.enable_x64(True):
        params = [jnp.asarray(a) for a in (u, w, b)]
        x = flows.solve_jacobian_transpose(jnp.asarray(z), *params, jnp.asarray(v))
        jac = jax.jacfwd(lambda z: flows.planar_flow(z, *params)[0])(jnp.asarray(z))
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(jac).T, v), rtol=1e-9)
