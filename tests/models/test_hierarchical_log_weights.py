"""The two-layer log-weights against float64 references (Burda et al. 2015, eq. 8, §5).

log w = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1): term by
term (``log_weight_reference``), L_k -> log p(x) on a two-layer model whose latent chain
p(z2) p(z1|z2) is linear-Gaussian, float32 log q at sigma << |mu|, and the sampled-KL
ELBO's beta.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from vae_jax import evaluate, objectives
from vae_jax.models import hierarchical

import log_weight_reference as ref
from helpers import tiny_model

D = 12


def _two_layer(**fields):
    """(model, params): a 12-(9, 8)-K1-(7,)-K2 two-layer VAE, K1 = 5, K2 = 3."""
    model = {"hidden": (9, 8), "hidden2": (7,), "latent_dim": 5, "latent_dim2": 3}
    return tiny_model((3, 4), stochastic_layers=2, **{**model, **fields})


def _bits(seed, d=D):
    return (jax.random.uniform(jax.random.PRNGKey(seed), (d,)) > 0.5).astype(
        jnp.float32
    )


def test_log_weights_equal_the_five_terms_built_in_float64():
    """Each of the five terms comes from scipy.stats (float64) on the model's draws;
    every term is at least 0.05 nats in size for every draw, 50x the tolerance, so
    dropping any one of them (e.g. ``- log q(z2|z1)``) or flipping its sign fails."""
    model, params = _two_layer()
    x, key, num = _bits(1), jax.random.PRNGKey(2), 16
    log_w, log_px = jax.jit(model.log_weights, static_argnums=3)(params, x, key, num)
    terms = ref.two_layer_terms(model, params, x, key, num)
    names = ("log_px", "log_pz1", "log_pz2", "log_qz1", "log_qz2")
    assert min(np.abs(terms[n]).min() for n in names) > 0.05
    np.testing.assert_allclose(log_px, terms["log_px"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_w, terms["log_w"], rtol=1e-5, atol=1e-3)


# ------------------------------------------------ a linear-Gaussian latent chain
# p(z2) = N(0, I), p(z1|z2) = N(diag(A) z2 + C, diag(S^2)) (``hidden2=()``: the z2 <->
# z1 layers are affine), so p(z1) = N(C, diag(A^2 + S^2)) and p(z2|z1) is Gaussian with
# mean A (z1 - C) / (A^2 + S^2) and variance S^2 / (A^2 + S^2) (Bishop 2006, eqs.
# 2.115-2.117), per dimension. p(x|z1) is the family's Bernoulli MLP decoder, so log p(x)
# has no closed form: it is the 2-D integral of p(x|z1) against p(z1), by Gauss-Hermite
# quadrature in float64.
A, C, S = np.array([1.5, -0.8]), np.array([0.3, -0.5]), np.array([0.6, 0.9])
VAR1 = A**2 + S**2  # Var p(z1)


def _dense(kernel, bias):
    return {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias)}


def _linear_gaussian_chain(q2_shift=0.0, q2_var_scale=1.0, q1_var_scale=1.5):
    """(model, params): K1 = K2 = 2, x-layers (4,), z-layers affine; p(z1|z2) as above,
    q(z2|z1) = the exact p(z2|z1) with its mean shifted by ``q2_shift`` and variance
    scaled by ``q2_var_scale``; q(z1|x) = N(C, q1_var_scale diag(VAR1)) for every x."""
    model = hierarchical.HierarchicalVAE(
        data_dim=D, hidden=(4,), hidden2=(), latent_dim=2, latent_dim2=2
    )
    params = model.init(jax.random.key(0), jnp.zeros(D))["params"]
    zeros = np.zeros((2, 2))
    post_gain, post_var = A / VAR1, S**2 / VAR1
    params["p1"] = {
        "mean": _dense(np.diag(A), C),
        "log_sigma": _dense(zeros, np.log(S)),
    }
    params["q2"] = {
        "mean": _dense(np.diag(post_gain), -post_gain * C + q2_shift),
        "log_sigma": _dense(zeros, 0.5 * np.log(q2_var_scale * post_var)),
    }
    params["q1"]["mean"] = _dense(np.zeros((4, 2)), C)
    params["q1"]["log_sigma"] = _dense(
        np.zeros((4, 2)), 0.5 * np.log(q1_var_scale * VAR1)
    )
    return model, {"params": params}


def _log_marginal(model, params, x, num_nodes=100) -> float:
    """log p(x) = log E_{z1 ~ N(C, diag(VAR1))} p(x|z1), tensor Gauss-Hermite (float64):
    int e^{-t^2} f(t) dt ~ sum_i w_i f(t_i), z1 = C + sqrt(2 VAR1) t."""
    t, w = np.polynomial.hermite.hermgauss(num_nodes)
    t1, t2 = np.meshgrid(t, t, indexing="ij")
    z1 = C + np.sqrt(2.0 * VAR1) * np.stack([t1.ravel(), t2.ravel()], -1)  # [n^2, 2]
    log_nodes = np.log(np.outer(w, w).ravel() / np.pi)
    logits = model.apply(params, jnp.asarray(z1, jnp.float32), method="decode")
    return float(logsumexp(log_nodes + ref.bernoulli_logpmf(x, logits["logits"])))


def test_weights_reduce_to_one_layer_when_q2_is_the_exact_posterior():
    """With q(z2|z1) = p(z2|z1): log p(z1|z2) + log p(z2) - log q(z2|z1) = log p(z1)
    for every draw, so log w = log p(x|z1) + log N(z1; C, VAR1) - log q(z1|x) exactly;
    a missing ``- log q(z2|z1)`` would leave log q(z2|z1) (about -1.5 nats) in."""
    model, params = _linear_gaussian_chain()
    x, key, num = _bits(3), jax.random.PRNGKey(4), 64
    log_w, _ = model.log_weights(params, x, key, num)
    terms = ref.two_layer_terms(model, params, x, key, num)
    z1 = terms["z1"]
    one_layer = (
        terms["log_px"]
        + ref.normal_logpdf(z1, C, np.log(VAR1))
        - ref.normal_logpdf(z1, C, np.log(1.5 * VAR1))
    )
    np.testing.assert_allclose(log_w, one_layer, atol=2e-5 * np.abs(one_layer).max())
    assert np.abs(terms["log_qz2"]).min() > 0.1  # what a dropped term would add


def test_bound_approaches_the_exact_log_marginal():
    """E L_1 < E L_50 < E L_5000 ~ log p(x) (Gauss-Hermite) with a q(z2|z1) that is off
    the exact posterior (mean +0.3, variance x2): L_5000 is within 4 standard errors
    (each < 0.005 nats) of log p(x) while the ELBO is > 0.05 below it; a dropped term
    would move L_k by nats. The quadrature is converged (80 vs 100 nodes)."""
    model, params = _linear_gaussian_chain(q2_shift=0.3, q2_var_scale=2.0)

    @functools.partial(jax.jit, static_argnums=(1, 2))
    def bounds(x, k, repeats):  # L_k(x) [repeats], one key each
        one = lambda key: evaluate.iwae_bound(
            model.log_weights, params, x, key, k, min(k, 500)
        )
        return jax.vmap(one)(jax.random.split(jax.random.PRNGKey(k), repeats))

    def bound(x, k, repeats):  # (mean, standard error) of L_k(x) over the keys
        values = np.asarray(bounds(x, k, repeats), np.float64)
        return values.mean(), values.std() / np.sqrt(repeats)

    for seed in (5, 6, 7):
        x = _bits(seed)
        exact = _log_marginal(model, params, x)
        assert abs(exact - _log_marginal(model, params, x, 80)) < 1e-5
        (l5000, se5000), (l50, se50) = bound(x, 5000, 64), bound(x, 50, 256)
        l1, se1 = bound(x, 1, 4096)
        assert se5000 < 5e-3 and abs(l5000 - exact) < 4 * se5000, (l5000, exact)
        assert l1 + 4 * se1 < l50 < exact + 4 * se50, (l1, l50, exact)
        assert l1 < exact - 0.05, (l1, exact)  # the bound had something to close


# ------------------------------------------------ float32 log q at sigma << |mu|
def test_log_q_is_exact_in_float32_when_sigma_is_tiny():
    """|mu| = 5, sigma = 1e-4 in both layers (K1 = K2 = 50): (z - mu) / sigma cancels in
    float32 (~0.04 nats per layer), log q from the drawn eps does not. log w must match
    the float64 reference (log q from eps, exact) within 1e-5 of |log q|."""
    model, params = _two_layer(latent_dim=50, latent_dim2=50)
    p = params["params"]
    mu = jnp.where(jnp.arange(50) % 2 == 0, 5.0, -5.0)
    log_sigma = jnp.full(50, np.log(1e-4), jnp.float32)
    for layer in ("q1", "q2"):
        p[layer]["mean"] = _dense(jnp.zeros_like(p[layer]["mean"]["kernel"]), mu)
        p[layer]["log_sigma"] = _dense(
            jnp.zeros_like(p[layer]["log_sigma"]["kernel"]), log_sigma
        )
    x, key, num = _bits(8), jax.random.PRNGKey(9), 50
    log_w, _ = jax.jit(model.log_weights, static_argnums=3)(params, x, key, num)
    terms = ref.two_layer_terms(model, params, x, key, num)
    log_q = terms["log_qz1"] + terms["log_qz2"]  # [S], ~ +780 nats
    np.testing.assert_array_less(np.abs(log_w - terms["log_w"]), 1e-5 * np.abs(log_q))


# ------------------------------------------------ the sampled-KL ELBO's beta
@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_sampled_kl_elbo_weighs_the_kl_by_beta(beta):
    """-ELBO_beta = -(E log p(x|z1) - beta KL) with both terms by S draws (Kingma &
    Welling 2013, eq. 6): recon = -(1/S) sum log p(x|z1_s), KL = (1/S) sum_s (log q -
    log p(z)); the reported ``elbo`` keeps beta = 1."""
    model, params = _two_layer()
    x, key, num = _bits(10), jax.random.PRNGKey(11), 8
    loss, aux = objectives.negative_elbo(
        params, x, key, {"beta": jnp.float32(beta)}, model=model, num_samples=num
    )
    terms = ref.two_layer_terms(model, params, x, key, num)
    log_px = terms["log_px"].mean()
    kl = np.mean(
        terms["log_qz1"] + terms["log_qz2"] - terms["log_pz1"] - terms["log_pz2"]
    )
    np.testing.assert_allclose(loss, -(log_px - beta * kl), rtol=1e-5)
    np.testing.assert_allclose(aux["kl"], kl, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(aux["elbo"], log_px - kl, rtol=1e-5)
