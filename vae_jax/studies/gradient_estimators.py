"""Why reparameterise: score-function vs reparameterised gradients of E_q[f(z)].

For q(z) = N(mean, diag(exp(logvar))) and any f, both estimators below are unbiased
for grad_{mean, logvar} E_q[f(z)] (Kingma & Welling 2013, §2.2-2.4):

  score function (REINFORCE, Williams 1992):
      (1/S) sum_s (f(z_s) - b_s) grad log q(z_s),        z_s ~ q
  reparameterised (pathwise):
      (1/S) sum_s grad f(mean + exp(logvar / 2) eps_s),  eps_s ~ N(0, I)

with b_s = 0, or the leave-one-out mean of the other S - 1 values of f (still
unbiased: b_s does not depend on z_s; Kool et al. 2019). Both use the same eps for the
same key. ``encoder_grad`` maps either one to grad_phi of a VAE's encoder parameters
(the chain rule through (mean, logvar) = encode_phi(x) is exact).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from vae_jax import distributions as dist

Grads = tuple[jax.Array, jax.Array]


def reparameterised_grad(f, mean, logvar, key, num_samples: int) -> Grads:
    """grad_{mean, logvar} of (1/S) sum_s f(mean + exp(logvar / 2) eps_s).

    f: [K] -> scalar; mean, logvar: [K]. Returns (d/dmean [K], d/dlogvar [K]).
    """

    def estimate(mean, logvar):
        z = dist.sample_diag_normal(key, mean, logvar, num_samples)  # [S, K]
        return jnp.mean(jax.vmap(f)(z))

    return jax.grad(estimate, argnums=(0, 1))(mean, logvar)


def score_function_grad(
    f, mean, logvar, key, num_samples: int, baseline: bool = False
) -> Grads:
    """(1/S) sum_s (f(z_s) - b_s) grad_{mean, logvar} log q(z_s), z_s ~ q (no grad of f).

    Williams 1992; Kingma & Welling 2013, §2.2. ``baseline``: b_s = the mean of the
    other S - 1 values f(z_s') (needs S >= 2), else b_s = 0.
    f: [K] -> scalar; mean, logvar: [K]. Returns (d/dmean [K], d/dlogvar [K]).
    """
    if baseline and num_samples < 2:
        raise ValueError("A leave-one-out baseline needs num_samples >= 2.")
    z = jax.lax.stop_gradient(
        dist.sample_diag_normal(key, mean, logvar, num_samples)
    )  # [S, K]
    values = jax.vmap(f)(z)  # [S]
    if baseline:
        values = values - (jnp.sum(values) - values) / (num_samples - 1)
    values = jax.lax.stop_gradient(values)
    score = jax.vmap(jax.grad(dist.diag_normal_logpdf, argnums=(1, 2)), (0, None, None))
    g_mean, g_logvar = score(z, mean, logvar)  # [S, K] each
    return values @ g_mean / num_samples, values @ g_logvar / num_samples


ESTIMATORS: dict[str, Callable] = {
    "reparameterised": reparameterised_grad,
    "score_function": score_function_grad,
    "score_function_loo": lambda *a: score_function_grad(*a, baseline=True),
}


def get_estimator(name: str) -> Callable:
    """Looks up an estimator by name; unknown names raise with the choices."""
    if name not in ESTIMATORS:
        raise ValueError(
            f"Unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}."
        )
    return ESTIMATORS[name]


def encoder_grad(
    estimator: Callable, params, x, key, num_samples: int, *, model: nn.Module
):
    """Estimate of grad_phi E_q(z|x)[log p(x|z)] for one x: [D] (decoder fixed).

    ``estimator`` gives the gradient w.r.t. (mean, logvar) = encode(x); the VJP of the
    encoder maps it to every parameter (decoder leaves are 0). Returns a params pytree.
    """
    (mean, logvar), vjp = jax.vjp(lambda p: model.apply(p, x, method="encode"), params)

    def log_px(z):  # [K] -> scalar
        return dist.decoder_log_likelihood(x, model.apply(params, z, method="decode"))

    return vjp(estimator(log_px, mean, logvar, key, num_samples))[0]


def gradient_variance(
    estimator: Callable,
    params,
    x: jax.Array,
    key: jax.Array,
    num_samples: int,
    num_repeats: int,
    *,
    model: nn.Module,
) -> tuple[jax.Array, jax.Array]:
    """tr Cov[g] = sum over parameters of Var[g_i] across R independent estimates g.

    Args:
      estimator: an entry of ``ESTIMATORS``.
      params, x: the VAE's parameters and one example x: [D].
      key, num_samples, num_repeats: PRNG key, S samples per estimate, R estimates.

    Returns:
      (tr Cov[g], ||mean of the R estimates||^2): scalars.
    """

    def one(k):
        grads = encoder_grad(estimator, params, x, k, num_samples, model=model)
        return ravel_pytree(grads)[0]  # [P]

    grads = jax.lax.map(one, jax.random.split(key, num_repeats))  # [R, P]
    return jnp.sum(jnp.var(grads, axis=0, ddof=1)), jnp.sum(jnp.mean(grads, 0) ** 2)
