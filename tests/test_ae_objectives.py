"""Denoising and sparse AE objectives: formulas, gradients, batch hook, config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vae_jax import ae_objectives, config_checks, corruptions, objectives
from vae_jax import data as data_lib
from vae_jax.studies import autoencoders

from helpers import make_config, tiny_model

D, K = 12, 5


def _sparse_config(weight=0.5, target=0.1):
    return make_config(
        model={
            "kind": "ae",
            "hidden": (),
            "latent_dim": K,
            "code_activation": "sigmoid",
        },
        objective={
            "name": "sparse_mse",
            "sparsity_target": target,
            "sparsity_weight": weight,
        },
    )


def _model_and_params(config):
    return tiny_model((3, 4), likelihood="gaussian", **config.model)


def test_bernoulli_kl_direct_formula():
    rho, rho_hat = 0.05, jnp.array([0.05, 0.2, 0.01])
    direct = [
        rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r))
        for r in (0.05, 0.2, 0.01)
    ]
    np.testing.assert_allclose(
        ae_objectives.bernoulli_kl(rho, rho_hat), direct, rtol=1e-5
    )


def test_sparse_batch_loss_matches_direct_formula_and_finite_differences():
    config = _sparse_config()
    model, params = _model_and_params(config)
    loss_one = objectives.make_objective(config, model)
    xs = jax.random.uniform(jax.random.key(1), (8, D))
    batch_loss = objectives.batch_mean(loss_one)
    value, aux = batch_loss(params, xs, jax.random.key(2), {"beta": 1.0})
    codes = np.asarray(model.apply(params, xs, method="encode"), np.float64)  # [B, K]
    recon = np.asarray(model.apply(params, xs), np.float64)
    rho_hat = codes.mean(0)
    kl = np.sum(0.1 * np.log(0.1 / rho_hat) + 0.9 * np.log(0.9 / (1 - rho_hat)))
    direct = np.mean((np.asarray(xs) - recon) ** 2) + 0.5 * kl
    np.testing.assert_allclose(value, direct, rtol=1e-5)
    np.testing.assert_allclose(aux["sparsity_kl"], kl, rtol=1e-5)
    # The penalty is a batch term: it is not the mean of per-example penalties.
    per_example_kl = np.mean(
        [np.sum(0.1 * np.log(0.1 / c) + 0.9 * np.log(0.9 / (1 - c))) for c in codes]
    )
    assert abs(per_example_kl - kl) > 1e-3
    f = jax.jit(lambda p: batch_loss(p, xs, jax.random.key(2), {"beta": 1.0})[0])
    check_grads(f, (params,), order=1, modes=("rev",), atol=2e-2, rtol=2e-2, eps=1e-3)


def test_sparse_step_raises_too_low_activations_towards_target():
    config = _sparse_config(weight=1.0, target=0.3)
    config.optim.learning_rate = 3e-2
    config.train.update(batch_size=50, num_steps=300, steps_per_dispatch=50)
    x = np.random.default_rng(0).uniform(size=(200, D)).astype(np.float32)
    dataset = data_lib.Dataset("toy", x, x[:0], x[:50], None, None, None, (3, 4))
    exp, params, metrics = autoencoders.fit(config, dataset)
    rho_hat = np.asarray(
        model_codes := exp.model.apply(params, x, method="encode")
    ).mean(0)
    np.testing.assert_allclose(rho_hat, 0.3, atol=0.05)
    assert model_codes.shape == (200, K) and np.isfinite(metrics["objective"])


def test_denoising_loss_corrupts_input_not_target():
    config = make_config(
        model={"kind": "ae", "hidden": (), "latent_dim": K},
        objective={
            "name": "denoising_mse",
            "corruption": "masking",
            "noise_level": 0.5,
        },
    )
    model, params = _model_and_params(config)
    loss_one = objectives.make_objective(config, model)
    x, key = jax.random.uniform(jax.random.key(3), (D,)), jax.random.key(4)
    value, _ = loss_one(params, x, key, {})
    x_tilde = corruptions.masking(key, x, 0.5)
    np.testing.assert_allclose(
        value, jnp.mean((x - model.apply(params, x_tilde)) ** 2), rtol=1e-6
    )
    other, _ = loss_one(params, x, jax.random.key(5), {})
    assert value != other  # fresh noise for a fresh key


def test_config_checks_for_the_new_objectives():
    config_checks.validate_config(_sparse_config())
    bad = _sparse_config()
    bad.model.code_activation = "linear"
    with pytest.raises(ValueError, match="sigmoid"):
        config_checks.validate_config(bad)
    bad = make_config(
        model={"kind": "ae"},
        objective={
            "name": "denoising_mse",
            "corruption": "masking",
            "noise_level": 1.5,
        },
    )
    with pytest.raises(ValueError, match="noise_level"):
        config_checks.validate_config(bad)
    bad = make_config(data={"center": True})  # a VAE on centred data
    with pytest.raises(ValueError, match="center"):
        config_checks.validate_config(bad)


@pytest.mark.slow  # the in-memory fit above covers the step; this adds orbax + figures
@pytest.mark.parametrize("name", ["sparse_mse", "denoising_mse", "linear_centred"])
def test_runner_trains_the_new_autoencoders_on_digits(name, tmp_path):
    from vae_jax import loop

    config = make_config(
        "quickstart",
        model={"kind": "ae", "hidden": (), "latent_dim": 16},
        objective={"name": "mse"},
    )
    if name == "sparse_mse":
        config.model.code_activation = "sigmoid"
        config.objective.name = name
    elif name == "denoising_mse":
        config.objective.update(
            name=name, corruption="salt_and_pepper", noise_level=0.2
        )
    else:
        config.model.architecture = "linear"
        config.data.center = True
    config.train.update(
        num_steps=20, steps_per_dispatch=10, log_every=10, checkpoint_every=20
    )
    final = loop.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(final["test/mse"])


class _IdentityCode:
    """A model whose code is its input: xs are the codes [B, K]."""

    def code(self, params, x):
        del params
        return x


def test_sparsity_penalty_stays_finite_when_a_unit_is_always_on_or_off():
    """rho_hat is clipped to [1e-6, 1 - 1e-6] before KL(rho || rho_hat) (Ng 2011, §3):
    a unit at exactly 0 or 1 over the batch costs a large finite amount, not inf."""
    codes = np.array([[1.0, 0.0, 0.3], [1.0, 0.0, 0.1]], np.float32)
    rho, weight = 0.05, 0.5
    value, aux = ae_objectives.sparsity_penalty(
        None,
        jnp.asarray(codes),
        None,
        {},
        model=_IdentityCode(),
        target=rho,
        weight=weight,
    )
    bounds = np.float32(1e-6), np.float32(1 - 1e-6)  # the clip's float32 bounds
    rho_hat = np.clip(codes.mean(0), *bounds).astype(np.float64)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    assert np.isfinite(float(value))
    np.testing.assert_allclose(aux["sparsity_kl"], kl.sum(), rtol=1e-4)
    np.testing.assert_allclose(value, weight * kl.sum(), rtol=1e-4)


# ------------------------------------------------------------ robust_mse (Barron 2019)
def _robust_config(scale=0.02, shape=0.0):
    return make_config(
        model={"kind": "ae", "hidden": (), "latent_dim": K},
        objective={"name": "robust_mse", "robust_scale": scale, "robust_shape": shape},
    )


@pytest.mark.parametrize(
    "shape, direct",  # closed forms in e and s (Barron 2019, §1 special cases)
    [
        (0.0, lambda e, s: s * np.log(1 + e / s)),  # Cauchy / Lorentzian
        (-2.0, lambda e, s: s * e / (s + e)),  # Geman-McClure
        (1.0, lambda e, s: 2 * s * (np.sqrt(1 + e / s) - 1)),  # pseudo-Huber
        (2.0, lambda e, s: e),  # the squared error itself
    ],
)
def test_robust_loss_matches_numpy_formula(shape, direct):
    e = np.array([0.0, 1e-4, 0.003, 0.02, 0.5, 4.0])
    for s in (0.001, 0.01, 1.0):
        np.testing.assert_allclose(
            ae_objectives.robust_loss(jnp.asarray(e), s, shape),
            direct(e, s),
            rtol=2e-5,
            atol=1e-9,
        )


@pytest.mark.parametrize("shape", [0.0, -2.0, 1.0])
def test_robust_loss_derivative_is_the_m_estimator_weight(shape):
    """drho/de = (1 + e/s)^(alpha/2 - 1): 1 / (1 + e/c^2) for the Cauchy loss."""
    s = 0.01
    e = jnp.array([0.0, 0.001, 0.01, 0.05, 0.3])
    grads = jax.vmap(jax.grad(lambda e: ae_objectives.robust_loss(e, s, shape)))(e)
    np.testing.assert_allclose(grads, (1 + e / s) ** (shape / 2 - 1), rtol=1e-5)
    if shape == 0.0:
        np.testing.assert_allclose(grads, 1 / (1 + e / s), rtol=1e-5)


def test_robust_objective_value_and_gradient_relative_to_mse():
    """loss = c^2 log(1 + e/c^2) of the example's MSE e, and its parameter gradient is
    the MSE objective's times 1/(1 + e/c^2) (chain rule through e)."""
    config = _robust_config(scale=0.02)
    model, params = _model_and_params(config)
    robust = objectives.make_objective(config, model)
    plain = objectives.make_objective(
        make_config(model=dict(config.model), objective={"name": "mse"}), model
    )
    x, key = jax.random.uniform(jax.random.key(7), (D,)), jax.random.key(8)
    value, aux = robust(params, x, key, {})
    recon = np.asarray(model.apply(params, x), np.float64)
    e = np.mean((np.asarray(x, np.float64) - recon) ** 2)
    np.testing.assert_allclose(aux["mse"], e, rtol=1e-5)
    np.testing.assert_allclose(value, 0.02 * np.log1p(e / 0.02), rtol=1e-5)
    np.testing.assert_allclose(aux["robust_weight"], 1 / (1 + e / 0.02), rtol=1e-5)
    g_robust = jax.grad(lambda p: robust(p, x, key, {})[0])(params)
    g_plain = jax.grad(lambda p: plain(p, x, key, {})[0])(params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(
            a, b / (1 + e / 0.02), rtol=1e-4, atol=1e-9
        ),
        g_robust,
        g_plain,
    )


def test_config_accepts_robust_mse_and_rejects_bad_fields():
    config_checks.validate_config(_robust_config())
    config_checks.validate_config(_robust_config(shape=-2.0))
    with pytest.raises(ValueError, match="robust_scale"):
        config_checks.validate_config(_robust_config(scale=0.0))
    with pytest.raises(ValueError, match="robust_shape"):
        config_checks.validate_config(_robust_config(shape=3.0))
    bad = _robust_config()
    bad.model.kind = "vae"  # no reconstruct: the AE family only
    with pytest.raises(ValueError, match="objective.name"):
        config_checks.validate_config(bad)


# ------------------------------------------- trimmed_mse (Shen & Sanghavi 2019, ITLM)
def _trimmed_config(trim_fraction=0.25):
    return make_config(
        model={"kind": "ae", "hidden": (), "latent_dim": K},
        objective={"name": "trimmed_mse", "trim_fraction": trim_fraction},
    )


def _per_example_mse(model, params, xs):
    recon = np.asarray(model.apply(params, xs), np.float64)
    return np.mean((np.asarray(xs, np.float64) - recon) ** 2, axis=1)  # [B]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("trim_fraction, dropped", [(0.25, 2), (0.3, 2), (0.6, 4)])
def test_trimmed_batch_loss_is_the_sum_of_the_smallest_errors_over_b(
    trim_fraction, dropped, jit
):
    """(1/B) sum of the B - floor(alpha B) smallest per-example MSEs = their mean times
    (B - k) / B; alpha = 0.3, B = 8 drops floor(2.4) = 2 (not ceil: 3)."""
    config = _trimmed_config(trim_fraction)
    model, params = _model_and_params(config)
    loss = objectives.batch_mean(objectives.make_objective(config, model))
    loss = jax.jit(loss) if jit else loss
    xs = jax.random.uniform(jax.random.key(11), (8, D)) * jnp.arange(1.0, 9.0)[:, None]
    value, aux = loss(params, xs, jax.random.key(12), {})
    errors = np.sort(_per_example_mse(model, params, xs))
    kept = errors[: 8 - dropped]
    assert ae_objectives.num_trimmed(8, trim_fraction) == dropped
    np.testing.assert_allclose(value, kept.sum() / 8, rtol=1e-5)
    np.testing.assert_allclose(value, kept.mean() * (8 - dropped) / 8, rtol=1e-5)
    np.testing.assert_allclose(aux["kept_mse"], kept.mean(), rtol=1e-5)
    np.testing.assert_allclose(aux["mse"], errors.mean(), rtol=1e-5)  # all B
    assert all(np.shape(v) == () for v in aux.values())  # an empty array would pass
    np.testing.assert_allclose(aux["trim_threshold"], errors[8 - dropped], rtol=1e-5)
    per_example, _ = objectives.per_example(objectives.make_objective(config, model))(
        params, xs, jax.random.key(12), {}
    )
    np.testing.assert_allclose(np.sort(per_example), errors, rtol=1e-5)  # plain MSE


def test_trimmed_gradient_ignores_the_outlier():
    """One example with a huge error is trimmed (alpha B = 1): the gradient is the
    plain MSE's over the other B - 1 examples, times (B - 1) / B."""
    config = _trimmed_config(1 / 8)
    model, params = _model_and_params(config)
    trimmed = objectives.batch_mean(objectives.make_objective(config, model))
    plain_config = make_config(model=dict(config.model), objective={"name": "mse"})
    plain = objectives.batch_mean(objectives.make_objective(plain_config, model))
    xs = jax.random.uniform(jax.random.key(13), (8, D))
    xs = xs.at[5].set(20.0)  # the outlier: MSE ~ 400 against ~ 0.3
    key = jax.random.key(14)
    grad = lambda f, x: jax.grad(lambda p: f(p, x, key, {})[0])(params)
    g_trimmed, g_all = grad(trimmed, xs), grad(plain, xs)
    g_kept = grad(plain, jnp.delete(xs, 5, axis=0))  # mean over 7
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(g_all))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b * 7 / 8, atol=1e-5 * scale),
        g_trimmed,
        g_kept,
    )
    gap = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), g_trimmed, g_all)
    assert max(jax.tree.leaves(gap)) > 0.1 * scale  # the outlier dominates plain MSE


def test_trimmed_with_alpha_zero_is_plain_mse():
    config = _trimmed_config(0.0)
    model, params = _model_and_params(config)
    trimmed = objectives.batch_mean(objectives.make_objective(config, model))
    plain_config = make_config(model=dict(config.model), objective={"name": "mse"})
    plain = objectives.batch_mean(objectives.make_objective(plain_config, model))
    xs, key = jax.random.uniform(jax.random.key(15), (6, D)), jax.random.key(16)
    value, _ = trimmed(params, xs, key, {})
    np.testing.assert_allclose(value, plain(params, xs, key, {})[0], rtol=1e-6)
    g_trimmed = jax.grad(lambda p: trimmed(p, xs, key, {})[0])(params)
    g_plain = jax.grad(lambda p: plain(p, xs, key, {})[0])(params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), g_trimmed, g_plain
    )


def test_config_accepts_trimmed_mse_and_rejects_alpha_outside_0_1():
    for alpha in (0.0, 0.2, 0.99):
        config_checks.validate_config(_trimmed_config(alpha))
    for alpha in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="trim_fraction"):
            config_checks.validate_config(_trimmed_config(alpha))
    bad = _trimmed_config()
    bad.model.kind = "vae"  # no reconstruct: the AE family only
    with pytest.raises(ValueError, match="objective.name"):
        config_checks.validate_config(bad)


def test_robust_defaults_are_the_cauchy_loss():
    """shape alpha = 0 by default, in the loss and in the objective."""
    import inspect

    e = jnp.array([0.0, 0.02, 3.0])
    np.testing.assert_allclose(
        ae_objectives.robust_loss(e, 0.01),
        0.01 * np.log1p(np.asarray(e) / 0.01),
        rtol=1e-6,
    )
    signature = inspect.signature(ae_objectives.robust_squared_error)
    assert signature.parameters["shape"].default == 0.0


@pytest.mark.parametrize("shape", [-2.0, 1.0])
def test_robust_weight_metric_is_the_loss_derivative(shape):
    """The logged weight is drho/de at the example's MSE for every shape alpha."""
    config = _robust_config(scale=0.02, shape=shape)
    model, params = _model_and_params(config)
    x = jax.random.uniform(jax.random.key(17), (D,))
    _, aux = objectives.make_objective(config, model)(params, x, jax.random.key(1), {})
    slope = jax.grad(lambda e: ae_objectives.robust_loss(e, 0.02, shape))(aux["mse"])
    np.testing.assert_allclose(aux["robust_weight"], slope, rtol=1e-5)
