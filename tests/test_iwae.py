"""IWAE bound, log-likelihood evaluation and active units against exact answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import distributions as dist
from vae_jax import evaluate, linear_gaussian, objectives

import log_weight_reference as ref
from helpers import make_config, tiny_model

D, K, SIGMA = 6, 2, 0.7


def _linear_gaussian_vae(seed=0):
    return tiny_model(
        (2, 3),
        likelihood="gaussian",
        sigma=SIGMA,
        seed=seed,
        architecture="linear",
        latent_dim=K,
    )


def _exact(params, x):
    """(log p(x), closed-form ELBO) of the VAE's linear-Gaussian decoder and its q."""
    dense = params["params"]["decoder"]["output"]
    W, b, log_s = dense["kernel"].T, dense["bias"], jnp.log(SIGMA)  # [D, K], [D]
    return W, b, log_s


def _mean_bound(model, params, xs, k, repeats, seed):
    """Means and standard errors of L_k(x) over `repeats` draws, per row of xs: [N, D]."""
    log_weights = model.log_weights
    keys = jax.random.split(jax.random.PRNGKey(seed), repeats)
    bound = lambda x, key: dist.log_mean_exp(log_weights(params, x, key, k)[0])
    per_x = jax.vmap(jax.vmap(bound, in_axes=(None, 0)), in_axes=(0, None))
    values = np.asarray(jax.jit(per_x)(xs, keys), np.float64)  # [N, repeats]
    return values.mean(axis=1), values.std(axis=1) / np.sqrt(repeats)


def test_bounds_are_ordered_below_the_exact_log_marginal():
    """ELBO <= E L_5 <= E L_50 <= log p(x) (Burda et al. 2015, Thm. 1), each gap
    many standard errors wide; E L_1 = the closed-form ELBO (catches lost constants)."""
    model, params = _linear_gaussian_vae()
    W, b, log_s = _exact(params, None)
    xs = jax.random.uniform(jax.random.PRNGKey(3), (3, D)) * 2.0
    l1s, se1s = _mean_bound(model, params, xs, 1, 40_000, seed=10)
    l5s, se5s = _mean_bound(model, params, xs, 5, 20_000, seed=20)
    l50s, se50s = _mean_bound(model, params, xs, 50, 4_000, seed=30)
    for i, x in enumerate(xs):
        log_px = float(linear_gaussian.log_marginal(x, W, b, log_s))
        mean, logvar = model.apply(params, x, method="encode")
        elbo = float(linear_gaussian.elbo_diag(x, W, b, log_s, mean, logvar))
        l1, l5, l50, se1, se5, se50 = (
            l1s[i],
            l5s[i],
            l50s[i],
            se1s[i],
            se5s[i],
            se50s[i],
        )
        assert abs(l1 - elbo) < 5 * se1 + 1e-3, (l1, elbo, se1)
        assert se1 < 0.1 and se5 < 0.1 and se50 < 0.1  # << log 5 and log(2 pi) / 2
        assert elbo + 5 * se5 < l5, (elbo, l5, se5)
        assert l5 + 5 * (se5 + se50) < l50, (l5, l50)
        assert l50 < log_px, (l50, log_px)  # an off-by-log(k) L_50 would sit 3.9 above


def _near_posterior_encoder(params, x_dim):
    """Sets q(z|x) to N(exact posterior mean, 1.5 diag(posterior cov)): a good proposal."""
    W, b, log_s = _exact(params, None)
    _, cov = linear_gaussian.posterior(jnp.zeros(x_dim), W, b, log_s)  # cov: [K, K]
    gain = cov @ W.T * jnp.exp(-2.0 * log_s)  # [K, D]: mean = gain (x - b)
    p = jax.tree.map(lambda a: a, params)
    p["params"]["to_mean"] = {"kernel": gain.T, "bias": -gain @ b}
    p["params"]["to_logvar"] = {
        "kernel": jnp.zeros((x_dim, K)),
        "bias": jnp.log(1.5 * jnp.diagonal(cov)),
    }
    return p


def test_chunked_bound_converges_to_log_marginal():
    """L_5000 (500 per chunk) -> log p(x) within 0.01 nats for a good q; ELBO is lower."""
    model, params = _linear_gaussian_vae(seed=1)
    params = _near_posterior_encoder(params, D)
    W, b, log_s = _exact(params, None)
    log_weights = model.log_weights
    xs = jax.random.uniform(jax.random.PRNGKey(4), (4, D)) * 2.0
    bound = lambda x, key: evaluate.iwae_bound(log_weights, params, x, key, 5000, 500)
    keys = jax.random.split(jax.random.PRNGKey(5), 4)
    l5000 = jax.jit(jax.vmap(bound))(xs, keys)
    exact = jax.vmap(linear_gaussian.log_marginal, in_axes=(0, None, None, None))(
        xs, W, b, log_s
    )
    np.testing.assert_allclose(l5000, exact, atol=1e-2)
    mean, logvar = jax.vmap(lambda x: model.apply(params, x, method="encode"))(xs)
    elbo = jax.vmap(linear_gaussian.elbo_diag, in_axes=(0, None, None, None, 0, 0))(
        xs, W, b, log_s, mean, logvar
    )
    assert np.all(np.asarray(exact - elbo) > 0.05)  # the bound had something to close


def _mlp_vae():
    model, params = tiny_model((2, 4), hidden=(7,), latent_dim=3, activation="tanh")
    x = (jax.random.uniform(jax.random.PRNGKey(1), (8,)) > 0.5).astype(jnp.float32)
    return model, params, x


def test_iwae_with_one_sample_is_the_single_sample_elbo():
    model, params, x = _mlp_vae()
    key, hp = jax.random.PRNGKey(2), {"beta": jnp.float32(1.0)}
    iwae, aux = objectives.negative_iwae_bound(
        params, x, key, hp, model=model, num_samples=1
    )
    _, elbo_aux = objectives.negative_elbo(params, x, key, hp, model=model)
    sampled = -jnp.mean(model.log_weights(params, x, key, 1)[0])
    np.testing.assert_allclose(iwae, sampled, rtol=1e-6)
    np.testing.assert_allclose(aux["recon"], elbo_aux["recon"], rtol=1e-6)  # same z
    mean, logvar = model.apply(params, x, method="encode")
    z = dist.sample_diag_normal(key, mean, logvar, 1)[0]
    kl_one = dist.diag_normal_logpdf(z, mean, logvar) - dist.std_normal_logpdf(z)
    np.testing.assert_allclose(iwae, elbo_aux["recon"] + kl_one, rtol=1e-5)
    # In expectation the sampled KL is the analytic one: -L_1 == -ELBO on average.
    keys = jax.random.split(jax.random.PRNGKey(3), 20_000)
    one = lambda k: objectives.negative_iwae_bound(
        params, x, k, hp, model=model, num_samples=1
    )[0]
    values = np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)
    se = values.std() / np.sqrt(len(values))
    assert se < 0.05
    np.testing.assert_allclose(
        values.mean(), _exact_elbo(model, params, x), atol=5 * se
    )


def _exact_elbo(model, params, x):
    """-ELBO with the analytic KL and E_q log p(x|z) from 200k samples."""
    loss, _ = objectives.negative_elbo(
        params,
        x,
        jax.random.PRNGKey(99),
        {"beta": 1.0},
        model=model,
        num_samples=50_000,
    )
    return float(loss)


def test_chunked_bound_equals_unchunked_for_the_same_samples():
    model, params, x = _mlp_vae()
    log_weights = jax.jit(model.log_weights, static_argnums=3)
    key, k, chunk = jax.random.PRNGKey(4), 1234, 100  # 13 chunks, the last one partial
    bound = jax.jit(evaluate.iwae_bound, static_argnums=(0, 4, 5))
    chunked = bound(log_weights, params, x, key, k, chunk)
    draws = [
        log_weights(params, x, jax.random.fold_in(key, c), chunk)[0] for c in range(13)
    ]
    np.testing.assert_allclose(
        chunked, dist.log_mean_exp(jnp.concatenate(draws)[:k]), rtol=1e-6
    )
    whole = bound(log_weights, params, x, key, k, k)
    ref = dist.log_mean_exp(log_weights(params, x, jax.random.fold_in(key, 0), k)[0])
    np.testing.assert_allclose(whole, ref, rtol=1e-6)


def test_dataset_log_likelihood_masks_padding_and_reports_stderr():
    model, params, _ = _mlp_vae()
    xs = (jax.random.uniform(jax.random.PRNGKey(5), (7, 8)) > 0.5).astype(jnp.float32)
    ll_fn = evaluate.make_log_likelihood_fn(model.log_weights, 50, 20)
    key = jax.random.PRNGKey(6)
    out = evaluate.evaluate_log_likelihood(ll_fn, params, np.asarray(xs), 3, key, 50)
    log_weights = model.log_weights
    bound = jax.jit(lambda x, k: evaluate.iwae_bound(log_weights, params, x, k, 50, 20))
    rows = []
    for i in range(7):  # batch i // 3, position i % 3
        row_key = jax.random.split(jax.random.fold_in(key, i // 3), 3)[i % 3]
        rows.append(float(bound(xs[i], row_key)))
    np.testing.assert_allclose(out["log_likelihood"], np.mean(rows), rtol=1e-5)
    np.testing.assert_allclose(out["nll"], -np.mean(rows), rtol=1e-5)
    for log_every in (1, 2):  # in groups of batches, with progress lines: same numbers
        grouped = evaluate.evaluate_log_likelihood(
            ll_fn, params, np.asarray(xs), 3, key, 50, log_every=log_every
        )
        assert grouped == pytest.approx(out, rel=1e-6)
    np.testing.assert_allclose(
        out["nll_stderr"], np.std(rows, ddof=1) / np.sqrt(7), rtol=1e-4
    )
    assert out["num_examples"] == 7 and out["nll"] > 0
    each = evaluate.evaluate_log_likelihood(
        ll_fn, params, np.asarray(xs), 3, key, 50, per_example=True
    )["log_likelihoods"]
    np.testing.assert_allclose(each, rows, rtol=1e-5)  # per image, padding dropped


def test_active_units_counts_units_the_encoder_uses():
    model, params = _linear_gaussian_vae()
    kernel = params["params"]["to_mean"]["kernel"]  # [D, K]
    params["params"]["to_mean"]["kernel"] = kernel.at[:, 0].set(0.0)  # unit 0 ignores x
    xs = jax.random.uniform(jax.random.PRNGKey(7), (300, D))
    means_fn = model.posterior_means
    out = evaluate.active_units(means_fn, params, np.asarray(xs), jax.random.PRNGKey(0))
    (variances,) = out["variances"]
    assert out["active_units"] == [1] and variances[0] < 1e-10 and variances[1] > 1e-2
    bias = float(params["params"]["to_mean"]["bias"][1])
    means = np.asarray(xs) @ np.asarray(kernel[:, 1]) + bias
    np.testing.assert_allclose(variances[1], np.var(means), rtol=1e-4)
    few = evaluate.active_units(
        means_fn, params, np.asarray(xs), jax.random.PRNGKey(0), 2
    )
    assert few["active_units"] == [int(np.var(means[:2]) >= 1e-2)]


def test_objective_registry_and_config_checks():
    from vae_jax import config_checks

    config = make_config(objective={"name": "iwae", "num_samples": 5})
    config_checks.validate_config(config)
    model, params, x = _mlp_vae()
    loss_one = objectives.make_objective(config, model)
    assert loss_one.func is objectives.negative_iwae_bound
    assert loss_one.keywords["num_samples"] == 5
    loss, aux = loss_one(params, x, jax.random.PRNGKey(0), {"beta": 1.0})
    np.testing.assert_allclose(loss, -aux["iwae_bound"])
    # L_5 and the mean log-weight of the same 5 draws, from float64 scipy terms (an
    # ordering check such as iwae_bound >= elbo would hold for any log-weights).
    terms = ref.vae_terms(model, params, x, jax.random.PRNGKey(0), 5)
    np.testing.assert_allclose(
        [aux["iwae_bound"], aux["elbo"]],
        [ref.log_mean_exp(terms["log_w"]), terms["log_w"].mean()],
        rtol=1e-5,
    )
    config.model.stochastic_layers, config.model.architecture = 2, "conv"
    with np.testing.assert_raises_regex(ValueError, "stochastic_layers=2"):
        config_checks.validate_config(config)


def test_per_example_values_use_each_rows_documented_key():
    """Batch b draws with fold_in(key, first_batch + b) split B ways; first_batch
    defaults to 0, so a caller can split the batches and get the same numbers."""
    model, params, _ = _mlp_vae()
    xs = (jax.random.uniform(jax.random.PRNGKey(9), (7, 8)) > 0.5).astype(jnp.float32)
    hp = {"beta": jnp.float32(1.0)}
    loss_one = objectives.negative_elbo_for(model)
    fn = evaluate.make_per_example_fn(loss_one, hp)
    key = jax.random.PRNGKey(10)
    values = evaluate.per_example_values(fn, params, np.asarray(xs), 3, key)
    assert {k: len(v) for k, v in values.items()} == dict.fromkeys(values, 7)  # no pad
    for i in range(7):
        row_key = jax.random.split(jax.random.fold_in(key, i // 3), 3)[i % 3]
        want = loss_one(params, xs[i], row_key, hp)[0]
        np.testing.assert_allclose(values["loss"][i], want, rtol=1e-5)
    xb = np.asarray(xs[:6]).reshape(2, 3, 8)
    later = fn(params, xb[1:], key, 1)["loss"]
    np.testing.assert_allclose(later[0], fn(params, xb, key)["loss"][1], rtol=1e-6)


def test_log_likelihood_fn_starts_at_batch_zero_by_default():
    model, params, _ = _mlp_vae()
    xb = (jax.random.uniform(jax.random.PRNGKey(11), (2, 3, 8)) > 0.5).astype(
        jnp.float32
    )
    ll_fn = evaluate.make_log_likelihood_fn(model.log_weights, 20, 10)
    key = jax.random.PRNGKey(12)
    np.testing.assert_array_equal(ll_fn(params, xb, key), ll_fn(params, xb, key, 0))


@pytest.mark.parametrize("values", [[2.5], [1.0, 4.0], [1.0, 2.0, 6.0]])
def test_mean_and_stderr_against_numpy(values):
    mean, stderr = evaluate.mean_and_stderr(np.asarray(values, np.float32))
    want = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    assert mean == pytest.approx(np.mean(values)) and stderr == pytest.approx(want)


def test_nll_defaults_follow_burda_et_al():
    """k = 5000 importance samples by default (Burda et al. 2015, §5)."""
    import inspect

    for fn in (evaluate.make_log_likelihood_fn, evaluate.evaluate_model):
        assert inspect.signature(fn).parameters["num_samples"].default == 5000
