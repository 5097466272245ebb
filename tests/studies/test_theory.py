"""The VAE theory made executable: gradient estimators, full-covariance posterior,
Gaussian = MSE, free bits and the VI identity, each checked against exact answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

from vae_jax import config_checks, data, objectives
from vae_jax import distributions as dist
from vae_jax import linear_gaussian as lg
from vae_jax.models import full_covariance
from vae_jax.studies import autoencoders, theory
from vae_jax.studies import gradient_estimators as ge

from helpers import make_config, tiny_model

D, K = 6, 3
BETA1 = {"beta": jnp.float32(1.0)}


def _linear_model(seed: int = 0):
    """(W [D, K], b [D], log_s []) with correlated columns (non-diagonal posterior)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((D, K)) + 0.8 * rng.standard_normal((D, 1))
    b = rng.standard_normal(D)
    return tuple(jnp.asarray(a, jnp.float32) for a in (W, b, np.log(0.5)))


def _sample_x(W, b, log_s, n: int, seed: int) -> jax.Array:
    """n draws x = W z + b + s eps: [n, D]."""
    kz, ke = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(kz, (n, K))
    return z @ W.T + b[None] + jnp.exp(log_s) * jax.random.normal(ke, (n, D))


def _tiny_vae(posterior="diagonal", likelihood="bernoulli", sigma=None, seed=0):
    return tiny_model(
        (2, 3),
        likelihood=likelihood,
        sigma=sigma,
        seed=seed,
        hidden=(5,),
        latent_dim=K,
        posterior=posterior,
        activation="tanh",
    )


def _random_tril(seed: int) -> jax.Array:
    rng = np.random.default_rng(seed)
    log_diag = jnp.asarray(rng.uniform(-1.0, 0.3, K), jnp.float32)
    lower = jnp.asarray(rng.standard_normal(K * (K - 1) // 2), jnp.float32)
    return dist.scale_tril_from_params(log_diag, lower)


# ----------------------------------------------------------- 1. gradient estimators
@pytest.mark.parametrize("name", sorted(ge.ESTIMATORS))
def test_estimators_are_unbiased_on_the_linear_gaussian_model(name):
    """E[g] = grad_{mean, logvar} E_q[log p(x|z)], exact in closed form here."""
    W, b, log_s = _linear_model()
    x = _sample_x(W, b, log_s, 1, seed=1)[0]
    mean, logvar = jnp.array([0.3, -0.2, 0.5]), jnp.array([-0.5, 0.2, -1.0])
    f = lambda z: dist.gaussian_loglik(x, W @ z + b, log_s)

    def expected_f(mean, logvar):  # E_q log p(x|z) = ELBO + KL(q || p(z))
        elbo = lg.elbo_diag(x, W, b, log_s, mean, logvar)
        return elbo + dist.kl_diag_to_std_normal(mean, logvar)

    exact = np.concatenate(jax.grad(expected_f, argnums=(0, 1))(mean, logvar))
    estimator = ge.get_estimator(name)
    keys = jax.random.split(jax.random.key(2), 20_000)
    one = lambda key: jnp.concatenate(estimator(f, mean, logvar, key, 4))
    draws = np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)  # [R, 2K]
    stderr = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * stderr + 1e-4)
    assert np.all(stderr > 0)


def test_score_function_matches_reparameterised_reference_on_a_vae():
    """grad_phi of a tiny VAE's encoder: the score-function mean over 4000 x 25 draws is
    within Monte-Carlo error of a 200k-sample reparameterised reference."""
    model, params = _tiny_vae()
    x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    grad = lambda est, key, s: ravel_pytree(
        ge.encoder_grad(est, params, x, key, s, model=model)
    )[0]
    ref = grad(ge.reparameterised_grad, jax.random.key(0), 200_000)
    keys = jax.random.split(jax.random.key(1), 4000)
    sf = jax.jit(jax.vmap(lambda k: grad(ge.score_function_grad, k, 25)))(keys)
    sf = np.asarray(sf, np.float64)
    stderr = sf.std(axis=0) / np.sqrt(len(sf))
    moving = stderr > 0  # decoder leaves: exactly 0 in both
    assert moving.sum() > 20 and np.all(np.asarray(ref)[~moving] == 0)
    z = (sf.mean(axis=0) - np.asarray(ref))[moving] / stderr[moving]
    assert np.max(np.abs(z)) < 5.5, np.max(np.abs(z))


def test_reparameterised_variance_is_lower_and_falls_as_one_over_s():
    model, params = _tiny_vae()
    x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])

    def var(name, s):
        est = ge.get_estimator(name)
        v, _ = ge.gradient_variance(
            est, params, x, jax.random.key(s), s, 2000, model=model
        )
        return float(v)

    rp1, rp8, sf1 = var("reparameterised", 1), var("reparameterised", 8), None
    sf1 = var("score_function", 1)
    assert sf1 > 5 * rp1
    assert 5 < rp1 / rp8 < 12  # 8 in expectation
    with pytest.raises(ValueError, match="num_samples >= 2"):
        var("score_function_loo", 1)


@pytest.mark.parametrize("num_samples", [2, 5])
def test_leave_one_out_baseline_is_the_mean_of_the_other_draws(num_samples):
    """For one key: (1/S) sum_s (f(z_s) - b_s) grad log q(z_s), b_s the mean of the
    other S - 1 values, with the score of N(mean, diag exp(logvar)) in float64:
    d/dmean = (z - mean) / v, d/dlogvar = ((z - mean)^2 / v - 1) / 2; the same z_s as
    ``dist.sample_diag_normal`` draws for that key. S = 2 is the smallest allowed."""
    mean, logvar = jnp.array([0.3, -0.2, 0.5]), jnp.array([-0.5, 0.2, -1.0])
    f = lambda z: jnp.sum(jnp.sin(z)) + z[0] ** 2
    key = jax.random.key(num_samples)
    z = np.asarray(dist.sample_diag_normal(key, mean, logvar, num_samples), np.float64)
    values = np.sin(z).sum(axis=1) + z[:, 0] ** 2  # [S]
    baseline = (values.sum() - values) / (num_samples - 1)
    m, v = np.asarray(mean, np.float64), np.exp(np.asarray(logvar, np.float64))
    score_mean, score_logvar = (z - m) / v, 0.5 * ((z - m) ** 2 / v - 1.0)
    for use_baseline, centred in ((True, values - baseline), (False, values)):
        got = ge.score_function_grad(f, mean, logvar, key, num_samples, use_baseline)
        want = (
            centred @ score_mean / num_samples,
            centred @ score_logvar / num_samples,
        )
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_gradient_variance_is_the_trace_of_the_sample_covariance():
    """(sum_i Var[g_i] with ddof = 1, ||mean g||^2) over R estimates, one per key of
    ``split(key, R)``, against numpy in float64."""
    model, params = _tiny_vae()
    x = jnp.asarray([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    key, repeats, est = jax.random.key(3), 40, ge.score_function_grad
    trace, sq_norm = ge.gradient_variance(est, params, x, key, 4, repeats, model=model)
    one = lambda k: ravel_pytree(ge.encoder_grad(est, params, x, k, 4, model=model))[0]
    g = np.asarray(jax.vmap(one)(jax.random.split(key, repeats)), np.float64)  # [R, P]
    np.testing.assert_allclose(trace, g.var(axis=0, ddof=1).sum(), rtol=1e-4)
    np.testing.assert_allclose(sq_norm, np.sum(g.mean(axis=0) ** 2), rtol=1e-4)


def test_diagonal_gap_floor_is_the_kl_of_the_best_diagonal_q():
    """min over diagonal q of KL(q || p(z|x)) for p(z|x) = N(m, C), C^-1 = P = I +
    W^T W / s^2 (float64 here): q* = N(m, diag(1 / P_jj)) (Bishop 2006, §10.1.2), its
    KL by the general Gaussian formula; any other diagonal variances give more."""
    W, b, log_s = _linear_model()
    x = _sample_x(W, b, log_s, 1, seed=1)[0]
    w = np.asarray(W, np.float64)
    precision = np.eye(K) + w.T @ w / np.exp(2 * float(log_s))
    cov = np.linalg.inv(precision)

    def kl_to_posterior(var):  # KL(N(m, diag var) || N(m, C))
        logdet_c = np.linalg.slogdet(cov)[1]
        return 0.5 * (
            np.sum(np.diag(precision) * var) - K + logdet_c - np.log(var).sum()
        )

    best = 1.0 / np.diag(precision)
    floor = float(theory.diagonal_gap_floor(x, W, b, log_s))
    np.testing.assert_allclose(floor, kl_to_posterior(best), rtol=1e-4)
    assert floor > 0.01  # correlated columns: a diagonal q cannot be exact
    for scale in (0.8, 1.25):
        assert kl_to_posterior(best * scale) > floor


def test_rate_distortion_splits_the_rate_over_latent_dims():
    """kl_per_dim: the mean over x of KL(q(z_j|x) || N(0, 1)), one per dim [K], summing
    to the rate; distortion + rate = -ELBO."""
    model, params = _tiny_vae()
    x = jax.random.uniform(jax.random.key(5), (7, D))
    out = theory.rate_distortion(model, params, np.asarray(x), jax.random.key(6))
    mean, logvar = model.apply(params, x, method="encode")
    kl = 0.5 * (np.square(mean) + np.exp(logvar) - 1.0 - np.asarray(logvar))  # [N, K]
    np.testing.assert_allclose(out["kl_per_dim"], kl.mean(axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["rate"], kl.sum(axis=1).mean(), rtol=1e-4)
    np.testing.assert_allclose(out["distortion"] + out["rate"], -out["elbo"], rtol=1e-5)


# ------------------------------------------------------ 2. full-covariance posterior
def test_full_kl_matches_monte_carlo_and_the_general_formula():
    mean, tril = jnp.array([0.4, -1.0, 0.2]), _random_tril(3)
    kl = dist.kl_full_normal_to_std_normal(mean, tril)
    z = dist.sample_full_normal(jax.random.key(0), mean, tril, 400_000)  # [S, K]
    log_q = jax.vmap(dist.full_normal_logpdf, in_axes=(0, None, None))(z, mean, tril)
    mc = jnp.mean(log_q - jax.vmap(dist.std_normal_logpdf)(z))
    np.testing.assert_allclose(kl, mc, rtol=1e-2)
    general = dist.kl_full_normals(mean, tril, jnp.zeros(K), jnp.eye(K))
    np.testing.assert_allclose(kl, general, rtol=1e-5)


def _perturbed_lower(params, seed=0):
    """params with a random (non-zero) off-diagonal head."""
    lower = params["params"]["to_lower"]
    keys = jax.random.split(jax.random.key(seed), 2)
    new = {
        n: 0.5 * jax.random.normal(k, v.shape) for k, (n, v) in zip(keys, lower.items())
    }
    return {"params": {**params["params"], "to_lower": new}}


def test_full_encoder_outputs_a_cholesky_factor():
    model, params = _tiny_vae("full")
    assert isinstance(model, full_covariance.FullCovarianceVAE)
    assert model.generative  # the protocol's samples, codes and figures work
    xs = jax.random.uniform(jax.random.key(1), (4, D))
    mean, tril = model.apply(_perturbed_lower(params), xs, method="encode")  # [B, ...]
    assert mean.shape == (4, K) and tril.shape == (4, K, K)
    np.testing.assert_array_equal(np.triu(tril, 1), 0)
    assert np.all(np.diagonal(tril, axis1=1, axis2=2) > 0)
    assert np.abs(np.tril(tril, -1)).max() > 0.05
    params = _perturbed_lower(params)
    x, key = xs[0], jax.random.key(2)  # log-weights against the density's own formula
    log_w, log_px = model.log_weights(params, x, key, 7)
    mean, tril = model.apply(params, x, method="encode")
    z = dist.sample_full_normal(key, mean, tril, 7)  # [S, K]
    log_q = jax.vmap(dist.full_normal_logpdf, in_axes=(0, None, None))(z, mean, tril)
    expected = log_px + jax.vmap(dist.std_normal_logpdf)(z) - log_q
    np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-4)
    corr = full_covariance.posterior_correlations(model, params, xs)
    np.testing.assert_allclose(np.diagonal(corr, axis1=1, axis2=2), 1, rtol=1e-5)
    tril = np.asarray(model.apply(params, xs, method="encode")[1], np.float64)
    cov = tril @ tril.transpose(0, 2, 1)  # S = L L^T, float64
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    want = cov / (sd[:, :, None] * sd[:, None, :])
    assert np.abs(want - np.eye(K)).max() > 0.01  # correlated: the check has teeth
    np.testing.assert_allclose(corr, want, rtol=1e-4, atol=1e-6)


def test_full_equals_diagonal_while_the_lower_head_is_zero():
    """Zero-initialised off-diagonal head: same ELBO draws and log-weights as the
    diagonal VAE with the same shared parameters."""
    full, full_params = _tiny_vae("full")
    diag, _ = _tiny_vae("diagonal")
    shared = {n: v for n, v in full_params["params"].items() if n != "to_lower"}
    diag_params = {"params": shared}
    x, key = jnp.linspace(0, 1, D), jax.random.key(4)
    a = objectives.negative_elbo_for(full, 3)(full_params, x, key, BETA1)
    b = objectives.negative_elbo_for(diag, 3)(diag_params, x, key, BETA1)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
    lw_full = full.log_weights(full_params, x, key, 5)[0]
    lw_diag = diag.log_weights(diag_params, x, key, 5)[0]
    np.testing.assert_allclose(lw_full, lw_diag, rtol=1e-5)


def test_full_gradient_flows_to_the_off_diagonal_head():
    model, params = _tiny_vae("full")
    xs = jax.random.uniform(jax.random.key(1), (8, D))
    loss = objectives.batch_mean(objectives.negative_elbo_for(model))
    grads = jax.jit(jax.grad(lambda p: loss(p, xs, jax.random.key(2), BETA1)[0]))(
        params
    )
    g = grads["params"]["to_lower"]
    assert np.all(np.isfinite(ravel_pytree(grads)[0]))
    assert np.abs(g["kernel"]).max() > 1e-4 and np.abs(g["bias"]).max() > 1e-4
    rng = np.random.default_rng(0)  # the KL's gradient in L's parameters, numerically
    log_diag, lower = (jnp.asarray(rng.normal(size=n), jnp.float32) for n in (K, 3))
    mean = jnp.asarray([0.2, -0.4, 0.1])
    kl = lambda d, l: dist.kl_full_normal_to_std_normal(
        mean, dist.scale_tril_from_params(d, l)
    )
    check_grads(
        jax.jit(kl), (log_diag, lower), order=1, modes=("rev",), atol=1e-2, rtol=1e-2
    )


def test_full_posterior_trains_from_config():
    config = make_config(
        model={"posterior": "full", "hidden": (16,), "latent_dim": 3},
        train={"num_steps": 30, "batch_size": 32, "steps_per_dispatch": 30},
        data={"name": "synthetic"},
    )
    exp, params, metrics = autoencoders.fit(config, data.load_dataset("synthetic"))
    assert isinstance(exp.model, full_covariance.FullCovarianceVAE)
    assert np.isfinite(metrics["objective"]) and metrics["kl"] > 0
    assert np.abs(params["params"]["to_lower"]["kernel"]).max() > 0


def test_config_checks_for_posterior_and_free_bits():
    config = make_config(model={"posterior": "banded"})
    with pytest.raises(ValueError, match="model.posterior"):
        config_checks.validate_config(config)
    config.model.posterior, config.objective.free_bits = "full", 0.5
    with pytest.raises(ValueError, match="free_bits"):
        config_checks.validate_config(config)
    config.model.posterior = "diagonal"
    config_checks.validate_config(config)


# ------------------------------------------------------------ 3. Gaussian = MSE
@pytest.mark.parametrize("sigma", [0.05, 0.3, 2.0])
def test_gaussian_loss_is_a_scaled_squared_error_beta_vae(sigma):
    """2 sigma^2 (-ELBO_sigma) = SSE + 2 sigma^2 KL + const, and so are the gradients."""
    model, params = _tiny_vae(likelihood="gaussian", sigma=sigma)
    x, key = jnp.linspace(0, 1, D), jax.random.key(5)
    beta = theory.beta_for_sigma(sigma)

    def gauss(p):
        return objectives.negative_elbo_for(model, 2)(p, x, key, BETA1)[0]

    def mse(p):
        hp = {"beta": jnp.float32(beta)}
        return theory.negative_elbo_squared_error(
            p, x, key, hp, model=model, num_samples=2
        )[0]

    const = theory.gaussian_constant(sigma, D)
    np.testing.assert_allclose(beta * gauss(params), mse(params) + const, rtol=1e-5)
    g_gauss, g_mse = (ravel_pytree(jax.grad(f)(params))[0] for f in (gauss, mse))
    np.testing.assert_allclose(beta * g_gauss, g_mse, rtol=1e-4, atol=1e-6)
    one = objectives.negative_elbo_for(model, 1)(params, x, key, BETA1)[0]
    hp = {"beta": jnp.float32(beta)}  # the default draws one z, as the ELBO's S = 1
    default = theory.negative_elbo_squared_error(params, x, key, hp, model=model)[0]
    np.testing.assert_allclose(beta * one, default + const, rtol=1e-5)


# ------------------------------------------------------------------ 4. free bits
def test_free_bits_objective_clamps_the_batch_mean_kl_per_dimension():
    model, params = _tiny_vae()
    xs = jax.random.uniform(jax.random.key(1), (16, D))
    mean, logvar = model.apply(params, xs, method="encode")  # [B, K]
    kl_dims = 0.5 * (jnp.exp(logvar) + mean**2 - 1 - logvar)  # [B, K]
    kl_bar = np.asarray(kl_dims.mean(axis=0))
    lam = float(np.median(kl_bar))  # some dims below lambda, some above
    plain = objectives.negative_elbo_for(model)
    config = make_config(objective={"free_bits": lam})
    loss_one = objectives.make_objective(config, model)
    assert hasattr(loss_one, "batch_penalty")
    hp, key = {"beta": jnp.float32(2.0)}, jax.random.key(3)
    value, aux = objectives.batch_mean(loss_one)(params, xs, key, hp)
    _, plain_aux = objectives.batch_mean(plain)(params, xs, key, hp)
    expected = plain_aux["recon"] + 2.0 * np.sum(np.maximum(lam, kl_bar))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    np.testing.assert_allclose(aux["free_bits_clamped"], np.mean(kl_bar < lam))
    # a dim below lambda feels no KL gradient: d loss / d logvar_j = d recon / d logvar_j
    below = int(np.argmin(kl_bar))
    bias_grad = lambda f: jax.jit(
        jax.grad(lambda p: objectives.batch_mean(f)(p, xs, key, hp)[0])
    )(params)["params"]["to_logvar"]["bias"][below]
    recon_only = lambda p, x, k, h: plain(p, x, k, {"beta": 0.0})
    np.testing.assert_allclose(bias_grad(loss_one), bias_grad(recon_only), rtol=1e-5)


# ------------------------------------------------------------ 5. the VI identity
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_px_is_elbo_plus_kl_to_posterior_for_any_gaussian_q(seed):
    W, b, log_s = _linear_model(seed)
    x = _sample_x(W, b, log_s, 1, seed)[0]
    q_mean = jnp.asarray(np.random.default_rng(seed).standard_normal(K), jnp.float32)
    tril = _random_tril(seed)
    elbo = theory.elbo_full(x, W, b, log_s, q_mean, tril)
    kl = theory.kl_to_posterior_full(x, W, b, log_s, q_mean, tril)
    log_px = lg.log_marginal(x, W, b, log_s)
    assert kl > 0.1
    np.testing.assert_allclose(elbo + kl, log_px, atol=2e-4)
    logvar = jnp.asarray([-0.3, 0.2, -1.0])  # diagonal q: the existing closed form
    diag_tril = jnp.diag(jnp.exp(0.5 * logvar))
    np.testing.assert_allclose(
        theory.elbo_full(x, W, b, log_s, q_mean, diag_tril),
        lg.elbo_diag(x, W, b, log_s, q_mean, logvar),
        rtol=1e-5,
    )


@pytest.mark.parametrize("posterior", ["diagonal", "full"])
def test_library_elbo_estimates_the_exact_elbo(posterior):
    """The VAE objective's mean over z draws = the closed-form ELBO of its own q."""
    W, b, log_s = _linear_model()
    model, params = theory.linear_gaussian_vae(
        W, b, log_s, jax.random.key(0), posterior
    )
    if posterior == "full":
        params = _perturbed_lower(params)
    x = _sample_x(W, b, log_s, 1, seed=3)[0]
    loss = objectives.negative_elbo_for(model, 2000)
    keys = jax.random.split(jax.random.key(1), 100)
    draws = -jax.jit(jax.vmap(lambda k: loss(params, x, k, BETA1)[0]))(keys)  # [100]
    draws = np.asarray(draws, np.float64)
    mc, stderr = draws.mean(), draws.std() / np.sqrt(len(draws))
    exact = theory.exact_terms(model, params, x, W, b, log_s)
    assert abs(mc - exact["elbo"]) < 5 * stderr + 1e-3
    scale = abs(float(exact["elbo"])) + float(exact["kl_to_posterior"])  # float32 ulps
    np.testing.assert_allclose(
        exact["elbo"] + exact["kl_to_posterior"],
        exact["log_px"],
        atol=1e-6 * scale + 2e-4,
    )


@pytest.mark.slow
def test_training_the_encoder_closes_the_gap_only_a_full_q_can_close():
    """Along training: log p(x) = ELBO + KL(q || p(z|x)) at every record, ELBO <= L_k <=
    log p(x), and a diagonal q never beats the best diagonal KL (a theorem)."""
    W, b, log_s = _linear_model()
    x_train, x_eval = _sample_x(W, b, log_s, 512, 1), _sample_x(W, b, log_s, 64, 2)
    floor = float(theory.diagonal_gap_floor(x_eval[0], W, b, log_s))
    final = {}
    for posterior in ("diagonal", "full"):
        model, params = theory.linear_gaussian_vae(
            W, b, log_s, jax.random.key(0), posterior
        )
        _, records = theory.train_encoder(
            model,
            params,
            x_train,
            x_eval,
            (W, b, log_s),
            jax.random.key(1),
            num_steps=600,
            eval_every=300,
            learning_rate=0.1,
            iw_samples=(20,),
        )
        assert max(r["identity_error"] for r in records) < 1e-3
        first, last = records[0], records[-1]
        assert last["kl_to_posterior"] < 0.01 * first["kl_to_posterior"]
        assert last["elbo"] - 0.05 <= last["iwae_20"] <= last["log_px"] + 0.05
        if posterior == "diagonal":
            assert min(r["kl_to_posterior"] for r in records) >= floor - 1e-3
        final[posterior] = last["kl_to_posterior"]
    assert floor > 0.3 and final["full"] < 0.5 * final["diagonal"]
