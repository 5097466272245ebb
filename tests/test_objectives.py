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


@pytest.mark.parametrize("warmup", [0, 1, 100])
def test_kl_warmup_schedule(warmup):
    config = make_config(objective={"beta": 2.0, "kl_warmup_steps": warmup})
    hparams = objectives.make_hparams(config)
    steps = (0, 1, 50, 100, 500)
    betas = [float(hparams(jnp.asarray(s))["beta"]) for s in steps]
    expected = [2.0 * (min(1.0, s / warmup) if warmup else 1.0) for s in steps]
    np.testing.assert_allclose(betas, expected, rtol=1e-6)


class _KLStub:
    """A model whose per-dimension KLs are a fixed [B, K] table (B != K)."""

    def __init__(self, table):
        self.table = jnp.asarray(table, jnp.float32)

    def kl_per_dimension(self, params, xs):
        del params, xs
        return self.table


def test_free_bits_penalty_is_beta_times_the_shortfall_of_each_dims_batch_mean_kl():
    """Kingma et al. 2016, eq. 15: beta sum_k max(0, lambda - mean_b KL_bk), and the
    share of dims below lambda (a dim exactly at lambda is not clamped)."""
    table = np.array([[0.1, 0.5, 0.0, 0.2], [0.3, 0.5, 0.2, 0.4], [0.2, 0.5, 0.1, 0.3]])
    lam, beta = 0.5, 3.0
    value, aux = objectives.free_bits_penalty(
        None,
        jnp.zeros((3, 5)),
        None,
        {"beta": beta},
        model=_KLStub(table),
        free_bits=lam,
    )
    mean_kl = table.mean(axis=0)  # [0.2, 0.5, 0.1, 0.3]: one dim exactly at lambda
    np.testing.assert_allclose(
        value, beta * np.maximum(lam - mean_kl, 0).sum(), rtol=1e-6
    )
    np.testing.assert_allclose(aux["free_bits_clamped"], np.mean(mean_kl < lam))
    assert float(aux["free_bits_clamped"]) == 0.75


@pytest.mark.parametrize("free_bits", [0.0, 0.5])
def test_elbo_objective_has_a_free_bits_term_only_when_lambda_is_positive(free_bits):
    config = make_config(objective={"free_bits": free_bits})
    model, _ = tiny_model((2, 3))
    loss_one = objectives.make_objective(config, model)
    has_penalty = getattr(loss_one, "batch_penalty", None) is not None
    assert has_penalty == (free_bits > 0)


def test_batch_mean_adds_the_batch_penalty_drawn_with_its_own_key():
    """mean_b loss(x_b) + penalty(xs, fold_in(key, 1)), the penalty's metrics merged."""

    def loss_one(params, x, key, hparams):
        value = jnp.sum(x) * params + jax.random.normal(key)
        return value, {"value": value}

    def penalty(params, xs, key, hparams):
        extra = 2.0 + jax.random.uniform(key) * params
        return extra, {"extra": extra}

    xs = jnp.arange(12.0).reshape(4, 3)
    key, params = jax.random.key(3), jnp.float32(0.5)
    with_penalty = objectives.with_batch_penalty(loss_one, penalty)
    value, aux = objectives.batch_mean(with_penalty)(params, xs, key, {})
    keys = jax.random.split(key, 4)
    values = [loss_one(params, x, k, {})[0] for x, k in zip(xs, keys)]
    extra = penalty(params, xs, jax.random.fold_in(key, 1), {})[0]
    np.testing.assert_allclose(value, np.mean(values) + extra, rtol=1e-6)
    np.testing.assert_allclose(aux["extra"], extra, rtol=1e-6)
    np.testing.assert_allclose(aux["value"], np.mean(values), rtol=1e-6)


def test_per_example_losses_refuse_an_unbatched_input():
    model, params = tiny_model((2, 3))
    loss = objectives.per_example(objectives.negative_elbo_for(model))
    with pytest.raises(ValueError, match="Expected a batch xs"):
        loss(params, jnp.zeros(6), jax.random.key(0), {"beta": 1.0})


def test_iwae_reports_the_mean_log_q_over_p_as_its_kl():
    model, params = tiny_model((2, 3))
    x, key = jnp.linspace(0.0, 1.0, 6), jax.random.key(2)
    _, aux = objectives.negative_iwae_bound(
        params, x, key, {}, model=model, num_samples=5
    )
    log_w, log_px = model.log_weights(params, x, key, 5)
    np.testing.assert_allclose(aux["kl"], np.mean(log_px - log_w), rtol=1e-5)
    assert float(aux["kl"]) > 0


def test_negative_elbo_for_defaults_to_one_draw_and_make_objective_reads_the_config():
    model, params = tiny_model((2, 3))
    x, key, hparams = jnp.linspace(0.0, 1.0, 6), jax.random.key(5), {"beta": 1.0}
    value, _ = objectives.negative_elbo_for(model)(params, x, key, hparams)
    recon, kl = model.elbo_terms(params, x, key, 1)
    np.testing.assert_allclose(value, recon + kl, rtol=1e-6)
    from_config = objectives.make_objective(make_config(), model)
    np.testing.assert_allclose(
        from_config(params, x, key, hparams)[0], value, rtol=1e-6
    )


def test_make_objective_reads_levels_from_the_config_unless_given():
    """The builders' ``level(field)``: the config's value, or a sweep's level."""
    model, params = tiny_model((2, 3), kind="ae")
    config = make_config(model={"kind": "ae"}, objective={"name": "denoising_mse"})
    x, key = jnp.linspace(0.0, 1.0, 6), jax.random.key(1)
    from_config = objectives.make_objective(config, model)(params, x, key, {})[0]
    level = {"noise_level": jnp.float32(config.objective.noise_level)}
    given = objectives.make_objective(config, model, level)(params, x, key, {})[0]
    other = {"noise_level": jnp.float32(0.9)}
    louder = objectives.make_objective(config, model, other)(params, x, key, {})[0]
    np.testing.assert_allclose(from_config, given, rtol=1e-6)
    assert abs(float(louder) - float(given)) > 1e-4
