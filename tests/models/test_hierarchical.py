"""Two-stochastic-layer model, Burda's schedule and the decoder bias init."""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from vae_jax import build, evaluate, objectives, optim, train
from vae_jax.models import hierarchical

from helpers import make_config, tiny_model

D = 12


def _two_layer(**overrides):
    """(config, model, params): a 12-(9, 8)-5-(7,)-3 two-layer VAE."""
    fields = {
        "stochastic_layers": 2,
        "hidden": (9, 8),
        "hidden2": (7,),
        "latent_dim": 5,
        "latent_dim2": 3,
        **overrides,
    }
    return make_config(model=fields), *tiny_model((3, 4), **fields)


def test_shapes_and_parameter_count():
    _, model, params = _two_layer()
    assert isinstance(model, hierarchical.HierarchicalVAE)
    x = jnp.zeros((4, D))
    mean1, logvar1 = model.apply(params, x, method="encode")
    mean2, logvar2 = model.apply(params, mean1, method="encode2")
    prior_mean, prior_logvar = model.apply(params, mean2, method="prior1")
    logits = model.apply(params, mean1, method="decode")["logits"]
    assert (
        mean1.shape == logvar1.shape == prior_mean.shape == prior_logvar.shape == (4, 5)
    )
    assert mean2.shape == logvar2.shape == (4, 3) and logits.shape == (4, D)
    assert model.apply(params, x[0]).shape == (D,)  # unbatched works too
    # q1: 12-9-8-(5+5); q2: 5-7-(3+3); p1: 3-7-(5+5); p(x|z1): 5-8-9-12.
    dense = lambda i, o: i * o + o
    q = dense(12, 9) + dense(9, 8) + 2 * dense(8, 5) + dense(5, 7) + 2 * dense(7, 3)
    p = dense(3, 7) + 2 * dense(7, 5) + dense(5, 8) + dense(8, 9) + dense(9, 12)
    expected = q + p
    assert sum(a.size for a in jax.tree.leaves(params)) == expected


def test_log_weights_match_their_definition_and_bounds_are_ordered():
    _, model, params = _two_layer()
    x = (jax.random.uniform(jax.random.PRNGKey(1), (D,)) > 0.5).astype(jnp.float32)
    log_w, log_px = model.log_weights(params, x, jax.random.PRNGKey(2), 6)
    assert log_w.shape == log_px.shape == (6,) and np.all(np.asarray(log_px) < 0)
    key = jax.random.PRNGKey(3)
    hp = {"beta": jnp.float32(1.0)}
    elbo = lambda k: (
        -objectives.negative_elbo(params, x, k, hp, model=model, num_samples=1)[0]
    )
    bound = lambda k, n: (
        -objectives.negative_iwae_bound(params, x, k, hp, model=model, num_samples=n)[0]
    )
    np.testing.assert_allclose(bound(key, 1), elbo(key), rtol=1e-6)
    keys = jax.random.split(key, 4000)
    elbos = np.asarray(jax.jit(jax.vmap(elbo))(keys), np.float64)
    bounds = np.asarray(jax.jit(jax.vmap(lambda k: bound(k, 20)))(keys), np.float64)
    se = elbos.std() / np.sqrt(len(keys)) + bounds.std() / np.sqrt(len(keys))
    assert elbos.mean() + 3 * se < bounds.mean()  # ELBO < L_20 in expectation


@pytest.mark.slow
def test_two_layer_trains_and_reports_active_units_per_layer():
    """One IWAE step trains; then, with unit 0 of each layer made constant in x (its
    mean weights zeroed), the counts per layer are those of Var_x E_q[z_u] >= 0.01
    computed here: layer 1 E_q[z1|x], layer 2 E_q[z2|z1] at z1 ~ q(z1|x) drawn with
    the row's key (yburda/iwae ``get_units_variances``; Burda et al. 2015, §5.2)."""
    config, model, _ = _two_layer()
    config.objective.name, config.objective.num_samples = "iwae", 3
    loss_one = objectives.make_objective(config, model)
    state = train.create_train_state(
        model,
        optax.adam(1e-2),
        jnp.zeros(D),
        jax.random.PRNGKey(0),
        jax.random.PRNGKey(1),
    )
    step = train.make_train_step(
        loss_one, objectives.make_hparams(config), binarize=True
    )
    x = jax.random.uniform(jax.random.PRNGKey(2), (16, D))
    state, metrics = step(state, x)
    assert np.isfinite(metrics["objective"]) and int(state.step) == 1
    params = jax.tree.map(jnp.array, state.params)
    for layer in ("q1", "q2"):  # unit 0 of each layer ignores its input
        kernel = params["params"][layer]["mean"]["kernel"]
        params["params"][layer]["mean"]["kernel"] = kernel.at[:, 0].set(0.0)
    xb = np.asarray(jax.random.uniform(jax.random.PRNGKey(4), (200, D)) > 0.5, "f4")
    key = jax.random.PRNGKey(3)
    units = evaluate.active_units(model.posterior_means, params, xb, key)
    mean1, logvar1 = model.apply(params, xb, method="encode")  # [N, K1]
    eps = np.stack([jax.random.normal(k, (5,)) for k in jax.random.split(key, 200)])
    z1 = mean1 + jnp.exp(0.5 * logvar1) * eps  # [N, K1], the row keys' draws
    mean2, _ = model.apply(params, z1, method="encode2")  # [N, K2]
    for got, means, count in zip(units["variances"], (mean1, mean2), (5, 3)):
        var = np.var(np.asarray(means, np.float64), axis=0)  # diag Cov_x
        np.testing.assert_allclose(got, var, rtol=1e-4, atol=1e-12)
        assert var[0] < 1e-12 and 0 < np.sum(var >= 0.01) < count
    assert units["active_units"] == [
        int(np.sum(np.var(np.asarray(m, np.float64), axis=0) >= 0.01))
        for m in (mean1, mean2)
    ]


def test_burda_schedule_boundaries_and_rates():
    rates = optim.burda_rates(1e-3)
    np.testing.assert_allclose(
        rates, [1e-3, 7.2e-4, 5.2e-4, 3.7e-4, 2.7e-4, 1.9e-4, 1.4e-4, 1e-4], rtol=1e-9
    )
    spe = 10
    ends = [optim.burda_stage_end(i, spe) for i in range(8)]
    assert ends == [10, 40, 130, 400, 1210, 3640, 10930, 32800]  # 3280 epochs in all
    optim_config = ml_collections.ConfigDict(
        {"schedule": "burda", "learning_rate": 1e-3}
    )
    schedule = optim.make_schedule(optim_config, total_steps=123, steps_per_epoch=spe)
    for i, end in enumerate(ends):
        start = ends[i - 1] if i else 0
        np.testing.assert_allclose(
            [schedule(start), schedule(end - 1)], [rates[i]] * 2, rtol=1e-6
        )
    np.testing.assert_allclose(schedule(10**6), 1e-4, rtol=1e-6)
    with np.testing.assert_raises(ValueError):
        optim.make_schedule(optim_config, total_steps=123)


def test_iwae_config_builds_with_data_mean_bias_and_schedule(monkeypatch):
    config = make_config(
        "iwae_mnist",
        data={"name": "synthetic", "binarize": "none", "valid_size": -1},
        model={"hidden": (8,), "latent_dim": 3},
        train={"batch_size": 16, "num_epochs": 1},
    )
    exp = build.build_experiment(config)
    state = exp.init_state()
    mean = np.clip(exp.dataset.train.mean(axis=0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(
        state.params["params"]["decoder"]["output"]["bias"],
        np.log(mean / (1 - mean)),
        rtol=1e-4,
        atol=1e-5,
    )
    assert exp.steps_per_epoch == 32
    updates, _ = exp.tx.update(
        jax.tree.map(jnp.ones_like, state.params), state.opt_state, state.params
    )
    assert np.all(np.isfinite(jax.tree.leaves(updates)[0]))


def _chain(prefix, sizes):
    """{"<prefix>/Dense_i": (in, out)} for an MLP through ``sizes``."""
    pairs = itertools.pairwise(sizes)
    return {f"{prefix}/Dense_{i}": shape for i, shape in enumerate(pairs)}


@pytest.mark.parametrize(
    "fields, sizes",
    [  # Burda et al. 2015, §5: x-200-200-z1(100)-100-100-z2(50), mirrored in p
        ({}, (784, (200, 200), (100, 100), 100, 50)),
        (  # unequal widths: p's trunks are q's reversed
            {"hidden": (9, 8), "hidden2": (7, 6), "latent_dim": 5, "latent_dim2": 3},
            (D, (9, 8), (7, 6), 5, 3),
        ),
    ],
)
def test_layer_sizes_are_burdas_and_p_mirrors_q(fields, sizes):
    d, hidden, hidden2, k1, k2 = sizes
    model = hierarchical.HierarchicalVAE(data_dim=d, **fields)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(d))
    flat = jax.tree_util.tree_flatten_with_path(params["params"])[0]
    got = {
        "/".join(str(p.key) for p in path[:-1]): leaf.shape
        for path, leaf in flat
        if path[-1].key == "kernel"
    }
    heads = lambda name, width, k: {
        f"{name}/mean": (width, k),
        f"{name}/log_sigma": (width, k),
    }
    expected = {
        **_chain("q1/trunk", (d, *hidden)),
        **heads("q1", hidden[-1], k1),
        **_chain("q2/trunk", (k1, *hidden2)),
        **heads("q2", hidden2[-1], k2),
        **_chain("p1/trunk", (k2, *hidden2[::-1])),
        **heads("p1", hidden2[0], k1),
        **_chain("decoder", (k1, *hidden[::-1])),
        "decoder/output": (hidden[0], d),
    }
    assert got == expected


def test_prior_samples_have_the_moments_of_the_two_layer_prior():
    """z1 ~ p(z1) = E_{z2 ~ N(0, I)} N(mean1(z2), diag sigma1(z2)^2): over 20,000 draws
    E[z1] = E[mean1(z2)] and Var[z1] = E[sigma1^2] + Var[mean1(z2)] (total variance),
    both computed here from independent z2, within 6 standard errors."""
    _, model, params = _two_layer(hidden2=(7, 6))
    assert model.generative  # runs, studies and figures sample its prior
    params = jax.tree.map(jnp.array, params)
    head = params["params"]["p1"]["log_sigma"]
    head["bias"] = head["bias"] - 1.0  # sigma1 ~ e^-1: the noise term is visible
    n = 20_000
    z1 = np.asarray(model.sample_latents(params, jax.random.PRNGKey(5), n), np.float64)
    z2 = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    mean1, logvar1 = model.apply(params, z2, method="prior1")
    mean1, var1 = np.asarray(mean1, np.float64), np.exp(np.asarray(logvar1, np.float64))
    want_mean, want_var = mean1.mean(0), var1.mean(0) + mean1.var(0)
    assert np.all(var1.mean(0) > 0.2 * want_var)
    se_mean = np.sqrt(2 * want_var / n)  # both sides are estimates
    np.testing.assert_array_less(np.abs(z1.mean(0) - want_mean), 6 * se_mean)
    fourth = np.mean((z1 - z1.mean(0)) ** 4, axis=0)
    se_var = np.sqrt(2 * (fourth - z1.var(0) ** 2) / n)
    np.testing.assert_array_less(np.abs(z1.var(0) - want_var), 6 * se_var)


def test_protocol_reads_the_first_layer_and_draws_one_sample_by_default():
    _, model, params = _two_layer()
    x = jax.random.uniform(jax.random.PRNGKey(1), (4, D))
    mean1, logvar1 = model.apply(params, x, method="encode")
    np.testing.assert_array_equal(model.posterior_logvar(params, x), logvar1)
    np.testing.assert_array_equal(model.code(params, x), mean1)
    key = jax.random.PRNGKey(2)
    default = model.elbo_terms(params, x[0], key)
    np.testing.assert_array_equal(default, model.elbo_terms(params, x[0], key, 1))
