"""Objectives: the ELBO against an exactly solvable model, batching, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vae_jax import linear_gaussian, objectives

from helpers import make_config, tiny_model

D, K, SIGMA = 6, 2, 0.7


def _linear_gaussian_vae():
    return tiny_model(
        (2, 3), likelihood="gaussian", sigma=SIGMA, architecture="linear", latent_dim=K
    )


def _decoder_wb(params):
    dense = params["params"]["decoder"]["output"]
    return dense["kernel"].T, dense["bias"]  # W: [D, K], b: [D]


def test_elbo_matches_closed_form_and_bounds_log_marginal():
    model, params = _linear_gaussian_vae()
    x = jax.random.uniform(jax.random.PRNGKey(3), (D,))
    W, b = _decoder_wb(params)
    loss, aux = objectives.negative_elbo(
        params,
        x,
        jax.random.PRNGKey(4),
        {"beta": 1.0},
        model=model,
        num_samples=200_000,
    )
    mean, logvar = model.apply(params, x, method="encode")
    log_s = jnp.log(SIGMA)
    exact = linear_gaussian.elbo_diag(x, W, b, log_s, mean, logvar)
    np.testing.assert_allclose(-loss, exact, rtol=2e-3)
    np.testing.assert_allclose(aux["elbo"], exact, rtol=2e-3)
    gap = linear_gaussian.log_marginal(x, W, b, log_s) - aux["elbo"]
    np.testing.assert_allclose(
        gap,
        linear_gaussian.kl_to_posterior_diag(x, W, b, log_s, mean, logvar),
        atol=2e-2,
    )
    assert gap > 0


def test_beta_weighs_only_the_kl():
    model, params = _linear_gaussian_vae()
    x, key = jnp.linspace(0, 1, D), jax.random.PRNGKey(1)
    loss1, aux1 = objectives.negative_elbo(params, x, key, {"beta": 1.0}, model=model)
    loss3, aux3 = objectives.negative_elbo(params, x, key, {"beta": 3.0}, model=model)
    np.testing.assert_allclose(loss3 - loss1, 2 * aux1["kl"], rtol=1e-5)
    np.testing.assert_allclose(aux3["elbo"], aux1["elbo"], rtol=1e-6)
    assert aux1["kl"] >= 0


def test_batch_lifting_equals_loop_over_examples():
    model, params = _linear_gaussian_vae()
    loss_one = lambda p, x, k, h: objectives.negative_elbo(p, x, k, h, model=model)
    xs = jax.random.uniform(jax.random.PRNGKey(2), (5, D))
    key, hp = jax.random.PRNGKey(7), {"beta": 1.0}
    values, _ = objectives.per_example(loss_one)(params, xs, key, hp)
    keys = jax.random.split(key, 5)
    looped = [loss_one(params, xs[i], keys[i], hp)[0] for i in range(5)]
    np.testing.assert_allclose(values, np.array(looped), rtol=1e-5)
    mean, _ = jax.jit(objectives.batch_mean(loss_one))(params, xs, key, hp)
    np.testing.assert_allclose(mean, np.mean(looped), rtol=1e-5)


def test_elbo_gradient_matches_finite_differences():
    model, params = tiny_model((2, 2), hidden=(5,), latent_dim=2, activation="tanh")
    x = jnp.array([0.0, 1.0, 1.0, 0.0])
    # Fixed noise: the reparameterised loss is smooth in params.
    key = jax.random.PRNGKey(5)
    f = lambda p: objectives.negative_elbo(p, x, key, {"beta": 1.0}, model=model)[0]
    with jax.enable_x64():
        params64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        check_grads(  # jitted: one compile instead of one per eager op
            jax.jit(f),
            (params64,),
            order=1,
            modes=["rev"],
            eps=1e-3,
            atol=5e-2,
            rtol=5e-2,
        )


def test_squared_error_is_mean_over_pixels():
    model, params = tiny_model(
        (2, 3), kind="ae", architecture="mlp", hidden=(4,), latent_dim=2
    )
    x = jnp.linspace(0, 1, D)
    mse, _ = objectives.squared_error(params, x, None, {}, model=model)
    np.testing.assert_allclose(
        mse, np.mean((np.asarray(x) - model.apply(params, x)) ** 2), rtol=1e-6
    )


@pytest.mark.parametrize("warmup", [0, 100])
def test_kl_warmup_schedule(warmup):
    config = make_config(objective={"beta": 2.0, "kl_warmup_steps": warmup})
    hparams = objectives.make_hparams(config)
    betas = [float(hparams(jnp.asarray(s))["beta"]) for s in (0, 50, 100, 500)]
    expected = [2.0] * 4 if warmup == 0 else [0.0, 1.0, 2.0, 2.0]
    np.testing.assert_allclose(betas, expected, rtol=1e-6)
