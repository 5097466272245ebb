"""Planar normalizing flows; Rezende & Mohamed 2015, "Variational Inference with
Normalizing Flows", §4.1 (eq. 10-13) and App. A.

One step is f(z) = z + u h(w^T z + b), h = tanh (eq. 10). Its Jacobian is
I + u psi(z)^T with psi(z) = h'(w^T z + b) w (eq. 11), so by the matrix determinant
lemma log|det df/dz| = log|1 + u^T psi(z)| (eq. 12). A flow of L steps
z_L = f_L(... f_1(z_0)) carries a density q_0 to
log q_L(z_L) = log q_0(z_0) - sum_l log|det J_l(z_{l-1})| (eq. 13).

f is invertible iff w^T u >= -1 (App. A): ``planar_flow`` replaces each u by
u_hat = u + [m(w^T u) - w^T u] w / ||w||^2, m(a) = -1 + softplus(a), so that
w^T u_hat = m(w^T u) > -1 whatever u and w are (``invertible_u``); ``planar_step``
applies a u as given.

Everything is per draw: z: [K]; one step's u, w: [K], b: []; a flow's u, w: [L, K],
b: [L]. Lift to S draws with ``jax.vmap``. Any float dtype (float64 in the tests).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def invertible_u(u: jax.Array, w: jax.Array) -> jax.Array:
    """u_hat = u + [m(w^T u) - w^T u] w / ||w||^2 with m(a) = -1 + softplus(a);
    Rezende & Mohamed 2015, App. A. Then w^T u_hat = m(w^T u) > -1: the step with
    u_hat is invertible. m(a) - a = softplus(-a) - 1 (no cancellation for large a).
    w must be non-zero. u, w: [K] -> [K].
    """
    a = jnp.dot(w, u)
    return u + (jax.nn.softplus(-a) - 1.0) * w / jnp.dot(w, w)


def planar_step(
    z: jax.Array, u: jax.Array, w: jax.Array, b: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """f(z) = z + u tanh(w^T z + b) and log|1 + u^T psi(z)|, psi(z) = tanh'(.) w;
    Rezende & Mohamed 2015, eq. 10-12. ``u`` is used as given (not made invertible;
    the determinant may then vanish or be negative, hence the |.|).

    z, u, w: [K]; b: []. Returns (f(z) [K], log|det df/dz| []).
    """
    t = jnp.tanh(jnp.dot(w, z) + b)
    log_det = jnp.log(jnp.abs(1.0 + (1.0 - t * t) * jnp.dot(w, u)))
    return z + u * t, log_det


def _invertible_step(z, u, w, b):
    """``planar_step`` with u -> ``invertible_u(u, w)``: (f(z) [K], log det [],
    (u_hat [K], psi [K], det [])). det = 1 + h'(s) m(a), s = w^T z + b, a = w^T u,
    written tanh(s)^2 + (1 - tanh(s)^2) softplus(a): a sum of non-negative terms,
    exact in float32 where 1 + h' m cancels (m -> -1 at s = 0)."""
    u_hat = invertible_u(u, w)
    t = jnp.tanh(jnp.dot(w, z) + b)
    dt = 1.0 - t * t  # h'(s)
    det = t * t + dt * jax.nn.softplus(jnp.dot(w, u))
    return z + u_hat * t, jnp.log(det), (u_hat, dt * w, det)


def _scan(z, u, w, b):
    """The L invertible steps: (z_L [K], log dets [L], (u_hat [L, K], psi [L, K],
    det [L]) of each step at its input z_{l-1})."""

    def step(z, params):
        z, log_det, parts = _invertible_step(z, *params)
        return z, (log_det, parts)

    z, (log_dets, parts) = jax.lax.scan(step, z, (u, w, b))
    return z, log_dets, parts


def planar_flow(
    z: jax.Array, u: jax.Array, w: jax.Array, b: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """z_L = f_L(... f_1(z_0)) with invertible steps (each u made so by
    ``invertible_u``) and sum_l log|det J_l(z_{l-1})|; Rezende & Mohamed 2015,
    eq. 10-13 and App. A.

    Args:
      z: [K], z_0.
      u, w: [L, K]; b: [L], the raw parameters of the L steps (w_l non-zero).

    Returns:
      (z_L [K], sum of the L log-determinants []).
    """
    z, log_dets, _ = _scan(z, u, w, b)
    return z, jnp.sum(log_dets)


def solve_jacobian_transpose(
    z: jax.Array, u: jax.Array, w: jax.Array, b: jax.Array, v: jax.Array
) -> jax.Array:
    """x with J^T x = v, J = dz_L/dz_0 of ``planar_flow`` at z_0 = ``z``.

    J = J_L ... J_1 with J_l = I + u_hat_l psi_l^T (eq. 11), so
    x = J_L^-T ... J_1^-T v, each factor by Sherman-Morrison:
    (I + psi u_hat^T)^-1 y = y - psi (u_hat^T y) / (1 + u_hat^T psi). O(L K), no
    inverse flow needed: with v = grad_{z_0} log q_L(F(z_0)), x = grad_{z_L} log q_L
    (``models.flow_vae``'s stop-gradient density, Tucker et al. 2019).

    z, v: [K]; u, w: [L, K]; b: [L]. Returns [K].
    """
    _, _, (u_hat, psi, det) = _scan(z, u, w, b)

    def step(y, factor):
        u_hat, psi, det = factor
        return y - psi * (jnp.dot(u_hat, y) / det), None

    return jax.lax.scan(step, v, (u_hat, psi, det))[0]
