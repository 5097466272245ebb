"""The one-layer VAE's log-weights, IWAE and ELBO objectives against float64 references.

log w = log p(x|z) + log p(z) - log q(z|x) (Burda et al. 2015, eq. 8), each term from
``scipy.stats`` in float64 on the model's own draws (``log_weight_reference``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import objectives

import log_weight_reference as ref
from helpers import tiny_model


def _mlp_vae(latent_dim=3):
    model, params = tiny_model(
        (2, 4), hidden=(7,), latent_dim=latent_dim, activation="tanh"
    )
    x = (jax.random.uniform(jax.random.PRNGKey(1), (8,)) > 0.5).astype(jnp.float32)
    return model, params, x


def test_log_weights_equal_the_three_terms_built_in_float64():
    model, params, x = _mlp_vae()
    key, num = jax.random.PRNGKey(2), 16
    log_w, log_px = jax.jit(model.log_weights, static_argnums=3)(params, x, key, num)
    terms = ref.vae_terms(model, params, x, key, num)
    assert min(np.abs(terms[n]).min() for n in ("log_px", "log_pz", "log_qz")) > 0.05
    np.testing.assert_allclose(log_px, terms["log_px"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_w, terms["log_w"], rtol=1e-5, atol=1e-4)


def test_log_q_is_exact_in_float32_when_sigma_is_tiny():
    """|mu| = 5, sigma = 1e-4, K = 50: recomputing log q from (z - mu) / sigma loses
    ~0.04 nats to float32 cancellation (z = mu + sigma eps keeps only ~3 digits of
    sigma eps); from the drawn eps it is exact. log w must match the float64 reference
    (log q from eps) within 1e-5 of |log q|."""
    model, params, x = _mlp_vae(latent_dim=50)
    p = params["params"]
    p["to_mean"] = {
        "kernel": jnp.zeros_like(p["to_mean"]["kernel"]),
        "bias": jnp.where(jnp.arange(50) % 2 == 0, 5.0, -5.0),
    }
    p["to_logvar"] = {
        "kernel": jnp.zeros_like(p["to_logvar"]["kernel"]),
        "bias": jnp.full(50, 2.0 * np.log(1e-4), jnp.float32),
    }
    key, num = jax.random.PRNGKey(3), 50
    log_w, _ = jax.jit(model.log_weights, static_argnums=3)(params, x, key, num)
    terms = ref.vae_terms(model, params, x, key, num)  # log q ~ +390 nats
    np.testing.assert_array_less(
        np.abs(log_w - terms["log_w"]), 1e-5 * np.abs(terms["log_qz"])
    )


def test_iwae_objective_and_its_metrics_match_float64():
    """-L_k = -log (1/k) sum_i w_i, ``elbo`` = mean log w, ``recon`` = -mean log p(x|z),
    ``kl`` = mean (log q - log p(z)), all from the float64 terms of the same draws."""
    model, params, x = _mlp_vae()
    key, num = jax.random.PRNGKey(4), 5
    hp = {"beta": jnp.float32(1.0)}
    loss, aux = objectives.negative_iwae_bound(
        params, x, key, hp, model=model, num_samples=num
    )
    terms = ref.vae_terms(model, params, x, key, num)
    bound = ref.log_mean_exp(terms["log_w"])
    np.testing.assert_allclose([loss, aux["iwae_bound"]], [-bound, bound], rtol=1e-5)
    np.testing.assert_allclose(aux["elbo"], terms["log_w"].mean(), rtol=1e-5)
    np.testing.assert_allclose(aux["recon"], -terms["log_px"].mean(), rtol=1e-5)
    kl = np.mean(terms["log_qz"] - terms["log_pz"])
    np.testing.assert_allclose(aux["kl"], kl, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_elbo_weighs_the_analytic_kl_by_beta(beta):
    """-ELBO_beta = -(E_q log p(x|z) - beta KL) with KL(q || N(0, I)) = (1/2) sum(
    sigma^2 + mu^2 - 1 - log sigma^2) (Kingma & Welling 2013, App. B) in NumPy and the
    reconstruction term from the float64 log p(x|z_s) of the same S draws."""
    model, params, x = _mlp_vae()
    key, num = jax.random.PRNGKey(5), 4
    loss, aux = objectives.negative_elbo(
        params, x, key, {"beta": jnp.float32(beta)}, model=model, num_samples=num
    )
    mean, logvar = (ref.f64(a) for a in model.apply(params, x, method="encode"))
    kl = 0.5 * np.sum(np.exp(logvar) + mean**2 - 1.0 - logvar)
    log_px = ref.vae_terms(model, params, x, key, num)["log_px"].mean()
    np.testing.assert_allclose(loss, -(log_px - beta * kl), rtol=1e-5)
    np.testing.assert_allclose([aux["kl"], aux["elbo"]], [kl, log_px - kl], rtol=1e-5)
