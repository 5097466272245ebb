"""beta-TCVAE: the MWS / stratified estimators of q(z) (Chen et al. 2018, App. C),
the KL decomposition (eq. 2) and the ``beta_tcvae`` objective, against float64
numpy and closed forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from vae_jax import build, objectives, tc, tc_objectives
from vae_jax import data as data_lib
from vae_jax.configs import tcvae_mnist


def _log_normal(z, mean, logvar):
    """log N(z; mean, exp(logvar)) elementwise, float64."""
    return -0.5 * ((z - mean) ** 2 / np.exp(logvar) + logvar + np.log(2 * np.pi))


def _batch(rng, batch_size, latent_dim=3):
    means = rng.normal(size=(batch_size, latent_dim))
    logvars = rng.normal(scale=0.5, size=(batch_size, latent_dim)) - 1.0
    z = means + np.exp(0.5 * logvars) * rng.normal(size=means.shape)
    return z, means, logvars


@pytest.mark.parametrize("estimator", tc.ESTIMATORS)
def test_whole_data_set_as_batch_gives_the_exact_mixture_density(estimator):
    """B = N (the batch is the data set): both estimators weigh every posterior 1/N,
    so log q(z_b) and sum_j log q(z_bj) are the exact mixture log-densities."""
    rng = np.random.default_rng(0)
    z, means, logvars = _batch(rng, 7)
    per_dim = _log_normal(z[:, None], means[None], logvars[None])  # [B, N, K]
    want_joint = logsumexp(per_dim.sum(-1), axis=1) - np.log(7)
    want_prod = (logsumexp(per_dim, axis=1) - np.log(7)).sum(-1)
    got_joint, got_prod = tc.log_aggregate_posterior(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(means, jnp.float32),
        jnp.asarray(logvars, jnp.float32),
        7.0,
        estimator,
    )
    np.testing.assert_allclose(got_joint, want_joint, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_prod, want_prod, rtol=1e-5, atol=1e-5)


def test_stratified_weights_own_posterior_one_over_n():
    """B < N: log q(z_b) = log[q(z_b|x_b) / N + (N-1)/(N(B-1)) sum_{c != b} q(z_b|x_c)]."""
    rng = np.random.default_rng(1)
    z, means, logvars = _batch(rng, 5)
    n = 1000.0
    dens = np.exp(_log_normal(z[:, None], means[None], logvars[None]).sum(-1))
    off = dens.sum(1) - np.diag(dens)
    want = np.log(np.diag(dens) / n + (n - 1) / (n * 4) * off)
    got, _ = tc.log_aggregate_posterior(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(means, jnp.float32),
        jnp.asarray(logvars, jnp.float32),
        n,
        "stratified",
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_decomposition_sums_to_the_sampled_kl():
    """MI + TC + dim-KL = mean_b [log q(z_b|x_b) - log p(z_b)] on the same draws
    (Chen et al. eq. 2 holds exactly for the estimators), checked against float64."""
    rng = np.random.default_rng(2)
    z, means, logvars = _batch(rng, 16, latent_dim=4)
    terms = tc.kl_decomposition(
        jnp.asarray(z, jnp.float32),
        jnp.asarray(means, jnp.float32),
        jnp.asarray(logvars, jnp.float32),
        1e4,
    )
    log_q = _log_normal(z, means, logvars).sum(-1)
    log_p = _log_normal(z, 0.0, 0.0).sum(-1)
    want = np.mean(log_q - log_p)
    total = float(terms["mi"] + terms["tc"] + terms["dim_kl"])
    np.testing.assert_allclose(total, want, rtol=1e-5)
    np.testing.assert_allclose(float(terms["kl"]), want, rtol=1e-5)
    assert abs(float(terms["tc"])) > 0.05  # the split is not trivial


def _gaussian_population_tc(batch_size, reps, key, estimator):
    """TC estimates on batches of a population whose q(z) is a known Gaussian:
    means ~ N(0, A), q(z|x) = N(mean, s^2 I), so q(z) = N(0, A + s^2 I) (N -> inf).
    -> (mean of the estimates, its standard error, the true TC)."""
    a, s2 = np.array([[1.0, 0.9], [0.9, 1.0]]), 0.05
    chol = jnp.asarray(np.linalg.cholesky(a), jnp.float32)

    def one(key):
        k1, k2 = jax.random.split(key)
        means = jax.random.normal(k1, (batch_size, 2)) @ chol.T
        logvars = jnp.full_like(means, np.log(s2))
        z = means + np.sqrt(s2) * jax.random.normal(k2, means.shape)
        return tc.total_correlation(z, means, logvars, 1e9, estimator)

    estimates = np.asarray(
        jax.jit(lambda k: jax.lax.map(one, k))(jax.random.split(key, reps))
    )
    truth = tc.gaussian_total_correlation(a + s2 * np.eye(2))
    return estimates.mean(), estimates.std(ddof=1) / np.sqrt(reps), truth


@pytest.mark.parametrize("estimator", tc.ESTIMATORS)
def test_total_correlation_converges_on_a_known_gaussian(estimator):
    """TC(q(z)) of a correlated Gaussian is -log(1 - rho^2) / 2 = 0.663 nats (rho =
    0.9 / 1.05). Both estimates are biased at B = 16 (MWS up by ~0.1 nats, the own
    posterior's weight 1/B; stratified down by ~0.3, the log of an unbiased q-hat),
    at B = 1024 five times less and within 0.015 nats + 4 standard errors (measured:
    MWS +0.007, stratified -0.013, standard errors 0.003)."""
    key = jax.random.PRNGKey(0)
    small, small_se, truth = _gaussian_population_tc(16, 1000, key, estimator)
    large, large_se, _ = _gaussian_population_tc(
        1024, 100, jax.random.fold_in(key, 1), estimator
    )
    np.testing.assert_allclose(truth, -0.5 * np.log(1 - (0.9 / 1.05) ** 2))
    assert abs(small - truth) > 8 * small_se  # biased at small B
    assert abs(large - truth) < abs(small - truth) / 5
    assert abs(large - truth) < 4 * large_se + 0.015  # what is left of O(1/B)


# ------------------------------------------------------------------ objective
def _tiny_config(beta=6.0, n=500):
    config = tcvae_mnist.get_config()
    config.data.name = "digits"
    config.data.binarize = "none"
    config.data.valid_size = -1
    config.model.hidden = (16,)
    config.model.latent_dim = 3
    config.objective.tc_beta = beta
    config.objective.tc_dataset_size = n
    config.train.batch_size = 8
    return config


def test_objective_is_the_elbo_plus_beta_minus_one_tc():
    """batch_mean(beta_tcvae) = mean -ELBO (recon + closed-form KL, per-example keys
    split(key, B)) + (beta - 1) TC_hat of z_b ~ q(z|x_b), the ELBO's own draw."""
    config = _tiny_config(beta=6.0, n=500)
    exp = build.build_experiment(config)
    params = exp.init_state().params
    model, xs = exp.model, jnp.asarray(exp.dataset.train[:8])
    key = jax.random.PRNGKey(3)
    loss = objectives.batch_mean(objectives.make_objective(config, model))
    value, aux = jax.jit(loss)(params, xs, key, {"beta": jnp.float32(1.0)})

    keys = jax.random.split(key, 8)
    terms = jax.jit(jax.vmap(lambda x, k: model.elbo_terms(params, x, k, 1)))
    recon, kl = terms(xs, keys)
    mean, logvar = model.code(params, xs), model.posterior_logvar(params, xs)
    eps = jax.vmap(lambda k: jax.random.normal(k, (1, mean.shape[1]))[0])(keys)
    z = np.float64(mean + jnp.exp(0.5 * logvar) * eps)  # elbo_terms' draw per key
    per_dim = _log_normal(z[:, None], np.float64(mean)[None], np.float64(logvar)[None])
    log_qz = logsumexp(per_dim.sum(-1), axis=1) - np.log(8)
    log_prod = (logsumexp(per_dim, axis=1) - np.log(8)).sum(-1)
    tc_want = np.mean(log_qz - log_prod)
    want = float(jnp.mean(recon + kl)) + 5.0 * tc_want
    np.testing.assert_allclose(float(aux["tc"]), tc_want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(value), want, rtol=1e-5)
    np.testing.assert_allclose(float(aux["elbo"]), -float(jnp.mean(recon + kl)), 1e-5)


def test_objective_gradient_flows_through_the_shared_draws():
    """The gradient of batch_mean(beta_tcvae), whose TC reads the ELBO's draws, equals
    that of the same objective written out with a second encoder pass: gradients
    reach the encoder through z_b and through every q(z_b | x_c)."""
    config = _tiny_config(beta=6.0, n=500)
    exp = build.build_experiment(config)
    params = exp.init_state().params
    model, xs = exp.model, jnp.asarray(exp.dataset.train[:8])
    key, hparams = jax.random.PRNGKey(5), {"beta": jnp.float32(1.0)}
    keys = jax.random.split(key, 8)
    eps = jax.vmap(lambda k: jax.random.normal(k, (1, 3))[0])(keys)
    loss = objectives.batch_mean(objectives.make_objective(config, model))

    def written_out(p):
        recon, kl = jax.vmap(lambda x, k: model.elbo_terms(p, x, k, 1))(xs, keys)
        mean, logvar = model.code(p, xs), model.posterior_logvar(p, xs)
        z = mean + jnp.exp(0.5 * logvar) * eps
        return jnp.mean(recon + kl) + 5.0 * tc.total_correlation(z, mean, logvar, 500.0)

    got = jax.jit(jax.grad(lambda p: loss(p, xs, key, hparams)[0]))(params)
    want = jax.jit(jax.grad(written_out))(params)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=1e-5)


def test_dataset_size_defaults_to_the_training_set():
    """tc_dataset_size = 0 becomes N = the training set's size in build_experiment,
    on a copy (the caller's config keeps 0); make_objective without it refuses."""
    config = _tiny_config(n=0)
    dataset = build.load_data(config)
    exp = build.build_experiment(config, dataset)
    assert exp.config.objective.tc_dataset_size == dataset.train.shape[0]
    assert config.objective.tc_dataset_size == 0
    with pytest.raises(ValueError, match="tc_dataset_size"):
        objectives.make_objective(config, exp.model)
    assert isinstance(dataset, data_lib.Dataset)


def test_config_checks_refuse_a_kl_weight():
    config = _tiny_config()
    config.objective.beta = 2.0
    assert any("beta_tcvae" in p for p in tc_objectives.config_problems(config))


@pytest.mark.slow
def test_runner_trains_the_config(tmp_path):
    """A few steps of ``tcvae_mnist`` (on the bundled digits): finite objective, the
    TC estimate logged, and the run loads and evaluates."""
    from vae_jax import load_run, loop

    config = _tiny_config(n=0)
    config.train.num_steps = 20
    config.train.steps_per_dispatch = 10
    config.train.log_every = 10
    config.train.write_figures = False
    final = loop.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(final["test/elbo"])
    records = (tmp_path / "metrics.jsonl").read_text()
    assert '"train/tc"' in records
    run = load_run(str(tmp_path))
    assert np.all(np.isfinite(np.asarray(run.elbo(run.experiment.dataset.test[:4]))))
