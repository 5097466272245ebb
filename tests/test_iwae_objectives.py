"""MIWAE, CIWAE, PIWAE (Rainforth et al. 2018) and DReG (Tucker et al. 2019) on the
linear-Gaussian VAE: values against float64 NumPy from the same draws, gradients
against the estimators they must equal (same key) or match in expectation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from vae_jax import (
    config_checks,
    data,
    evaluate,
    iwae_objectives,
    loop,
    objectives,
    runs,
    writer,
)
from vae_jax.studies import theory

import log_weight_reference as ref
from helpers import make_config

D, K, LOG_S = 5, 2, float(np.log(0.8))
NEW = ("miwae", "ciwae", "piwae", "iwae_dreg")


def _setup(seed=0):
    """(model, params, x): p(x|z) = N(W z + b, 0.8^2 I), a random linear encoder, and
    one x: [D] drawn from the model."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, K)).astype(np.float32)
    b = rng.normal(size=D).astype(np.float32)
    model, params = theory.linear_gaussian_vae(W, b, LOG_S, jax.random.key(seed + 1))
    x = W @ rng.normal(size=K) + b + 0.8 * rng.normal(size=D)
    return model, params, jnp.asarray(x, jnp.float32)


def _loss(name, model, **kw):
    """The per-example loss of objective ``name`` (``negative_iwae_bound`` for iwae)."""
    fns = {
        "iwae": objectives.negative_iwae_bound,
        "miwae": iwae_objectives.negative_miwae,
        "ciwae": iwae_objectives.negative_ciwae,
        "piwae": iwae_objectives.negative_piwae,
        "iwae_dreg": iwae_objectives.negative_iwae_dreg,
    }
    return functools.partial(fns[name], model=model, **kw)


def _grad(loss, params, x, key):
    return jax.grad(lambda p: loss(p, x, key, {})[0])(params)


def _phi(grads):
    """Encoder (q) part of a gradient: {to_mean, to_logvar}."""
    return {k: v for k, v in grads["params"].items() if k != "decoder"}


def _theta(grads):
    return grads["params"]["decoder"]


def _flat(tree) -> jax.Array:
    return jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])


# ------------------------------------------------------------------------- values
@pytest.mark.parametrize("groups, k", [(1, 5), (3, 4)])
def test_values_match_their_definitions_in_float64(groups, k):
    """Each objective's value and bound metrics against its definition on float64 log
    weights (``log_weight_reference``, scipy densities) of the same M k draws, draw
    m k + i being sample i of group m: MIWAE = (1/M) sum_m log (1/k) sum_i w_mi,
    CIWAE = beta mean log w + (1 - beta) log mean w, PIWAE's value -L_{Mk} and DReG's
    -L_k (Burda et al. 2015, eq. 8)."""
    model, params, x = _setup()
    key, beta, n = jax.random.key(7), 0.3, groups * k
    log_w = ref.vae_terms(model, params, x, key, n)["log_w"]  # [n] float64
    lme = lambda a, axis=None: (
        logsumexp(a, axis=axis) - np.log(a.size if axis is None else a.shape[axis])
    )
    miwae = np.mean(lme(log_w.reshape(groups, k), axis=1))
    iwae_n, elbo = lme(log_w), np.mean(log_w)
    tol = {"rtol": 1e-5, "atol": 1e-4}

    value, aux = _loss("miwae", model, num_groups=groups, num_samples=k)(
        params, x, key, {}
    )
    np.testing.assert_allclose(-value, miwae, **tol)
    np.testing.assert_allclose(aux["miwae_bound"], miwae, **tol)
    np.testing.assert_allclose(aux["iwae_bound"], iwae_n, **tol)
    np.testing.assert_allclose(aux["elbo"], elbo, **tol)
    terms = ref.vae_terms(model, params, x, key, n)  # recon -E log p(x|z), kl E log q/p
    np.testing.assert_allclose(aux["recon"], -np.mean(terms["log_px"]), **tol)
    kl = np.mean(terms["log_qz"] - terms["log_pz"])
    np.testing.assert_allclose(aux["kl"], kl, **tol)

    value, aux = _loss("piwae", model, num_groups=groups, num_samples=k)(
        params, x, key, {}
    )
    np.testing.assert_allclose(-value, iwae_n, **tol)
    np.testing.assert_allclose(aux["miwae_bound"], miwae, **tol)

    log_w_k = ref.vae_terms(model, params, x, key, k)["log_w"]  # [k]
    value, aux = _loss("ciwae", model, num_samples=k, beta=beta)(params, x, key, {})
    ciwae = beta * np.mean(log_w_k) + (1 - beta) * lme(log_w_k)
    np.testing.assert_allclose(-value, ciwae, **tol)
    np.testing.assert_allclose(aux["ciwae_bound"], ciwae, **tol)

    value, aux = _loss("iwae_dreg", model, num_samples=k)(params, x, key, {})
    np.testing.assert_allclose(-value, lme(log_w_k), **tol)
    np.testing.assert_allclose(aux["iwae_bound"], lme(log_w_k), **tol)
    np.testing.assert_allclose(aux["elbo"], np.mean(log_w_k), **tol)
    if groups > 1:  # the bounds are ordered: MIWAE_{M,k} <= L_{Mk} for one draw too
        assert miwae < iwae_n - 1e-3


@pytest.mark.parametrize("name", NEW)
def test_registered_objectives_vmap_over_a_batch(name):
    """``make_objective`` builds each from ``config.objective`` (M = num_groups, k =
    num_samples, ciwae_beta); ``batch_mean`` (jit) equals the mean of the
    per-example losses called one by one with split keys."""
    model, params, _ = _setup()
    obj = {"name": name, "num_samples": 3, "num_groups": 2, "ciwae_beta": 0.2}
    loss_one = objectives.make_objective(make_config(objective=obj), model)
    bound = {
        "miwae": {"num_groups": 2, "num_samples": 3},
        "piwae": {"num_groups": 2, "num_samples": 3},
        "ciwae": {"num_samples": 3, "beta": 0.2},
        "iwae_dreg": {"num_samples": 3},
    }[name]
    direct = _loss(name, model, **bound)
    xs = jax.random.normal(jax.random.key(1), (4, D))
    key = jax.random.key(2)
    batched, aux = jax.jit(objectives.batch_mean(loss_one))(params, xs, key, {})
    keys = jax.random.split(key, 4)
    single = [direct(params, xs[i], keys[i], {})[0] for i in range(4)]
    np.testing.assert_allclose(batched, np.mean(single), rtol=1e-5)
    assert np.isfinite(aux["iwae_bound"])


def test_ciwae_beta_is_a_vmappable_level():
    """``objective.ciwae_beta`` comes through ``levels`` (a traced sweep value)."""
    model, params, x = _setup()
    config = make_config(objective={"name": "ciwae", "num_samples": 4})
    key = jax.random.key(3)

    def value(beta):
        loss_one = objectives.make_objective(config, model, levels={"ciwae_beta": beta})
        return loss_one(params, x, key, {})[0]

    betas = jnp.array([0.0, 1.0])
    values = jax.vmap(value)(betas)
    log_w = model.log_weights(params, x, key, 4)[0]
    np.testing.assert_allclose(values[0], -_lme(log_w), rtol=1e-6)  # -L_k
    np.testing.assert_allclose(values[1], -np.mean(log_w), rtol=1e-6)  # -ELBO


def _lme(log_w):
    return logsumexp(np.asarray(log_w, np.float64)) - np.log(log_w.size)


# -------------------------------------------------------------- stop_q_grad (DReG)
def test_stop_q_grad_keeps_values_and_gives_the_path_derivative():
    """``log_weights(..., stop_q_grad=True)``: the same log w, and d/d(mean bias) and
    d/d(logvar bias) of sum_s log w_s equal sum_s (d log w_s / d z_s)(d z_s / d .)
    in float64, with d log w / d z = W^T (x - W z - b) / s^2 - z + eps / sigma
    (Tucker et al. 2019, eq. 5: log q's parameters held fixed, z = mu + sigma eps)."""
    model, params, x = _setup()
    key, n = jax.random.key(5), 6
    log_w = model.log_weights(params, x, key, n)[0]
    log_w_sq = model.log_weights(params, x, key, n, stop_q_grad=True)[0]
    np.testing.assert_array_equal(log_w_sq, log_w)

    total = lambda p: jnp.sum(model.log_weights(p, x, key, n, stop_q_grad=True)[0])
    grads = jax.grad(total)(params)["params"]
    mean, logvar = (ref.f64(a) for a in model.apply(params, x, method="encode"))
    eps = ref.f64(jax.random.normal(key, (n, K)))
    sigma = np.exp(0.5 * logvar)
    z = mean + sigma * eps  # [S, K]
    dense = params["params"]["decoder"]["output"]
    W, b = ref.f64(dense["kernel"]).T, ref.f64(dense["bias"])
    resid = ref.f64(x) - z @ W.T - b  # [S, D]
    dlogw_dz = resid @ W * np.exp(-2 * LOG_S) - z + eps / sigma  # [S, K]
    np.testing.assert_allclose(
        grads["to_mean"]["bias"], dlogw_dz.sum(0), rtol=2e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        grads["to_logvar"]["bias"],
        (dlogw_dz * 0.5 * sigma * eps).sum(0),
        rtol=2e-5,
        atol=1e-5,
    )


def test_stop_q_grad_value_is_exact_when_sigma_is_tiny():
    """sigma = 1e-4 next to |mean| = 5: log q from the drawn eps, not from (z - mean) /
    sigma (which rounds to ~0.04 nats at K = 2 in float32)."""
    model, params, x = _setup()
    p = jax.tree.map(lambda a: a, params)
    p["params"]["to_mean"] = {"kernel": jnp.zeros((D, K)), "bias": jnp.full((K,), 5.0)}
    p["params"]["to_logvar"] = {
        "kernel": jnp.zeros((D, K)),
        "bias": jnp.full((K,), 2 * np.log(1e-4), jnp.float32),
    }
    key = jax.random.key(9)
    log_w = model.log_weights(p, x, key, 16)[0]
    log_w_sq = model.log_weights(p, x, key, 16, stop_q_grad=True)[0]
    np.testing.assert_array_equal(log_w_sq, log_w)


# ------------------------------------------------------------------------- gradients
def test_dreg_decoder_gradient_is_the_iwae_gradient_for_the_same_key():
    """d/d theta: sum_i w~_i d log w_i / d theta for both (Tucker et al. 2019, eq. 7);
    the encoder's gradients differ (DReG drops the score-function term)."""
    model, params, x = _setup()
    key, k = jax.random.key(11), 16
    g_dreg = _grad(_loss("iwae_dreg", model, num_samples=k), params, x, key)
    g_iwae = _grad(_loss("iwae", model, num_samples=k), params, x, key)
    np.testing.assert_allclose(
        _flat(_theta(g_dreg)), _flat(_theta(g_iwae)), rtol=1e-5, atol=1e-6
    )
    assert np.max(np.abs(_flat(_phi(g_dreg)) - _flat(_phi(g_iwae)))) > 1e-2


def test_piwae_gradients_are_iwae_for_theta_and_miwae_for_phi():
    """PIWAE (Rainforth et al. 2018): theta's gradient is L_{Mk}'s, phi's is
    MIWAE_{M,k}'s, for the same key (the same M k draws)."""
    model, params, x = _setup()
    key, groups, k = jax.random.key(13), 4, 3
    g_piwae = _grad(
        _loss("piwae", model, num_groups=groups, num_samples=k), params, x, key
    )
    g_iwae = _grad(_loss("iwae", model, num_samples=groups * k), params, x, key)
    g_miwae = _grad(
        _loss("miwae", model, num_groups=groups, num_samples=k), params, x, key
    )
    close = {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(_flat(_theta(g_piwae)), _flat(_theta(g_iwae)), **close)
    np.testing.assert_allclose(_flat(_phi(g_piwae)), _flat(_phi(g_miwae)), **close)
    # the two targets differ, so the test can tell which one each part follows
    assert np.max(np.abs(_flat(_phi(g_iwae)) - _flat(_phi(g_miwae)))) > 1e-2
    assert np.max(np.abs(_flat(_theta(g_iwae)) - _flat(_theta(g_miwae)))) > 1e-2


def test_dreg_encoder_gradient_is_unbiased_with_lower_variance_at_k64():
    """E[DReG phi-gradient] = E[IWAE phi-gradient] (Tucker et al. 2019, eq. 7):
    the paired difference over 8,000 keys is within 4.5 standard errors in every
    component; at k = 64 its variance is below half the IWAE estimator's in every
    component (measured: trace ratio ~0.13)."""
    model, params, x = _setup()
    k, n = 64, 8000

    def estimator(name):
        loss = _loss(name, model, num_samples=k)
        one = lambda key: _flat(_phi(_grad(loss, params, x, key)))
        return jax.jit(jax.vmap(one))

    keys = jax.random.split(jax.random.key(0), n)
    g_iwae = np.asarray(estimator("iwae")(keys), np.float64)  # [n, P]
    g_dreg = np.asarray(estimator("iwae_dreg")(keys), np.float64)
    diff = g_dreg - g_iwae
    z = diff.mean(0) / (diff.std(0, ddof=1) / np.sqrt(n))
    assert np.all(np.abs(z) < 4.5), z
    z_iwae = g_iwae.mean(0) / (g_iwae.std(0, ddof=1) / np.sqrt(n))
    assert np.max(np.abs(z_iwae)) > 20  # a gradient to match, far from 0
    ratio = g_dreg.var(0) / g_iwae.var(0)
    assert np.all(ratio < 0.5), ratio
    assert g_dreg.var(0).sum() / g_iwae.var(0).sum() < 0.25


# --------------------------------------------------------------------- config checks
@pytest.mark.parametrize("name", NEW)
def test_config_rejects_beta_and_warmup(name):
    for obj in ({"beta": 0.5}, {"kl_warmup_steps": 10}):
        config = make_config(objective={"name": name, **obj})
        with pytest.raises(ValueError, match=f"objective.name='{name}' ignores"):
            config_checks.validate_config(config)
    config_checks.validate_config(make_config(objective={"name": name}))


def test_config_checks_groups_ciwae_beta_and_families():
    bad = [
        ({"objective": {"name": "miwae", "num_groups": 0}}, "num_groups=0 must be > 0"),
        ({"objective": {"name": "ciwae", "ciwae_beta": 1.5}}, "must lie in \\[0, 1\\]"),
        (
            {"objective": {"name": "iwae_dreg"}, "model": {"stochastic_layers": 2}},
            "'iwae_dreg' needs a family with posterior_param_mask",
        ),
        (
            {"objective": {"name": "piwae"}, "model": {"posterior": "full"}},
            "'piwae' needs a family with posterior_param_mask",
        ),
    ]
    for sections, message in bad:
        with pytest.raises(ValueError, match=message):
            config_checks.validate_config(make_config(**sections))
    for posterior_or_layers in ({"stochastic_layers": 2}, {"posterior": "full"}):
        for name in ("miwae", "ciwae"):  # log_weights is all they need
            config = make_config(model=posterior_or_layers, objective={"name": name})
            config_checks.validate_config(config)


def test_split_params_needs_a_posterior_param_mask():
    class NoMask:
        pass

    with pytest.raises(ValueError, match="posterior_param_mask"):
        iwae_objectives.split_params(NoMask(), {})


# --------------------------------------------------------------------------- runner
@pytest.mark.slow  # MNIST, evaluation of 10,400 images at k = 16 (~1 min on CPU)
def test_dreg_config_trains_and_reports_the_iwae_bound(tmp_path):
    """The shipped DReG config, 50 steps at k = 16: the recorded valid/iwae_bound is
    the mean of L_k per example under the run's eval key (``negative_iwae_bound``,
    exact to float32), and agrees with ``Run.log_likelihood(x, k)`` (other draws)
    within 4 paired standard errors."""
    k = 16
    config = make_config("iwae_dreg_mnist")
    config.objective.num_samples = k
    config.train.update(num_steps=50, eval_every=50, log_every=50, checkpoint_every=50)
    config.train.steps_per_dispatch = 50
    try:
        final = loop.train_and_evaluate(config, str(tmp_path))
    except data.DataNotFoundError:
        pytest.skip("mnist files not found")
    assert np.isfinite(final["valid/iwae_bound"]) and np.isfinite(final["test/elbo"])
    assert final["valid/elbo"] < final["valid/iwae_bound"] < 0
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    recorded = [r["valid/iwae_bound"] for r in records if "valid/iwae_bound" in r]
    assert recorded[-1] == pytest.approx(final["valid/iwae_bound"])

    run = runs.load_run(tmp_path)
    x = run.eval_split("valid")
    fn = evaluate.make_per_example_fn(
        _loss("iwae", run.model, num_samples=k), {"beta": 1.0}
    )
    batch = run.config.train.eval_batch_size
    values = evaluate.per_example_values(fn, run.params, x, batch, run.keys["eval"])
    np.testing.assert_allclose(
        values["iwae_bound"].mean(), final["valid/iwae_bound"], rtol=1e-5
    )
    diff = run.log_likelihood(x, k) - values["iwae_bound"]
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(len(diff)) + 1e-3
