"""The ``wae`` family and the MMD objectives (``wae_mmd``, ``info_vae``): each loss
against its definition computed in float64 numpy from the same codes and keys, the
config checks, and the runner (single runs, a vmapped sweep over lambda, load_run)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_checks, loop, models, objectives, runs
from vae_jax.models import autoencoder, wae
from vae_jax.sweep import launch, spec

from helpers import make_config, model_config, tiny_model

B, K = 6, 3
SHAPE = (2, 4)  # D = 8


def _batch(seed=0):
    return jax.random.uniform(jax.random.key(seed), (B, 8))


def _np_imq(x, y, c):
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return c / (c + d2)


def _np_rbf(x, y, s):
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * s**2))


def _np_mmd2(x, y, kernel):
    """Gretton et al. 2012, eq. 3 with explicit i != j loops, float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    xx = sum(kxx[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(kyy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return xx + yy - 2 * kxy.mean()


def _loss(config, model, params, xs, key):
    """The training loss of ``config.objective`` on the batch: (value, metrics)."""
    loss_one = objectives.make_objective(config, model)
    hparams = objectives.make_hparams(config)(jnp.asarray(0))
    return objectives.batch_mean(loss_one)(params, xs, key, hparams)


def test_wae_is_a_generative_autoencoder():
    model, params = tiny_model(SHAPE, kind="wae", hidden=(5,), latent_dim=K)
    assert isinstance(model, wae.WAE) and isinstance(model, autoencoder.Autoencoder)
    assert model.generative
    assert not autoencoder.Autoencoder.generative
    z = model.sample_latents(params, jax.random.key(1), 4000)
    assert z.shape == (4000, K)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=4 / np.sqrt(4000))
    np.testing.assert_allclose(z.std(0), 1.0, atol=0.05)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert count == config_checks.estimate_parameters(
        model_config(kind="wae", hidden=(5,), latent_dim=K), SHAPE
    )
    assert "wae_mmd" in models.MODELS["wae"].objectives


@pytest.mark.parametrize("kernel,scale", [("imq", 0.0), ("imq", 1.7), ("rbf", 0.0)])
def test_wae_mmd_matches_its_definition(kernel, scale):
    """(1/B) sum_b ||x_b - g(f(x_b))||^2 + lambda MMD^2_u(f(x), z ~ p(z)), the prior
    draws ``sample_latents`` with the batch penalty's key fold_in(key, 1)."""
    model, params = tiny_model(SHAPE, kind="wae", hidden=(5,), latent_dim=K)
    config = make_config(
        model={"kind": "wae"},
        objective={
            "name": "wae_mmd",
            "mmd_weight": 3.5,
            "mmd_kernel": kernel,
            "mmd_scale": scale,
        },
    )
    xs, key = _batch(), jax.random.key(7)
    value, metrics = _loss(config, model, params, xs, key)

    x = np.asarray(xs, np.float64)
    codes = np.asarray(model.code(params, xs), np.float64)
    recon = np.asarray(
        model.decode_mean(params, jnp.asarray(codes, jnp.float32)), np.float64
    )
    prior = model.sample_latents(params, jax.random.fold_in(key, 1), B)
    cost = ((x - recon) ** 2).sum(axis=1).mean()  # summed over pixels
    if kernel == "imq":
        c = scale or 2.0 * K
        mmd2 = _np_mmd2(codes, prior, lambda a, b: _np_imq(a, b, c))
    else:
        mmd2 = _np_mmd2(codes, prior, lambda a, b: _np_rbf(a, b, np.sqrt(K)))
    np.testing.assert_allclose(value, cost + 3.5 * mmd2, rtol=2e-5)
    np.testing.assert_allclose(metrics["squared_error"], cost, rtol=2e-5)
    np.testing.assert_allclose(metrics["mse"], cost / 8, rtol=2e-5)
    np.testing.assert_allclose(metrics["mmd2"], mmd2, rtol=1e-4, atol=1e-6)


def test_info_vae_matches_its_definition():
    """(1/B) sum_b [recon_b + (1 - alpha) KL_b] + (alpha + lambda - 1) MMD^2_u(z ~
    q(z|x_b), z ~ p(z)); KL in float64 from the encoder's mean and logvar, z_b the
    ELBO's own draw (key b of split(key, B)), the prior draws from the penalty's key
    fold_in(key, 1)."""
    model, params = tiny_model(SHAPE, hidden=(5,), latent_dim=K)
    alpha, lam = 0.3, 2.5
    config = make_config(
        objective={
            "name": "info_vae",
            "info_alpha": alpha,
            "mmd_weight": lam,
            "mmd_kernel": "rbf",
        }
    )
    xs, key = _batch(1), jax.random.key(8)
    value, metrics = _loss(config, model, params, xs, key)

    mean = np.asarray(model.code(params, xs), np.float64)
    logvar = np.asarray(model.posterior_logvar(params, xs), np.float64)
    kl = 0.5 * (mean**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=1)  # [B]
    keys = jax.random.split(key, B)  # the per-example keys of batch_mean
    recon = np.array([model.elbo_terms(params, xs[b], keys[b], 1)[0] for b in range(B)])
    eps = np.stack([np.asarray(jax.random.normal(k, (1, K))[0]) for k in keys])
    z = mean + np.exp(0.5 * logvar) * np.float64(eps)
    prior = model.sample_latents(params, jax.random.fold_in(key, 1), B)
    mmd2 = _np_mmd2(z, prior, lambda a, b: _np_rbf(a, b, np.sqrt(K)))
    expected = (recon + (1 - alpha) * kl).mean() + (alpha + lam - 1) * mmd2
    np.testing.assert_allclose(value, expected, rtol=2e-5)
    np.testing.assert_allclose(metrics["kl"], kl.mean(), rtol=2e-5)
    np.testing.assert_allclose(metrics["elbo"], -(recon + kl).mean(), rtol=2e-5)
    np.testing.assert_allclose(metrics["mmd2"], mmd2, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "sections,message",
    [
        (
            {"objective": {"name": "info_vae", "info_alpha": 0.5, "mmd_weight": 0.03}},
            "must be >= 0",
        ),
        (
            {"objective": {"name": "info_vae", "info_alpha": 1.5}},
            "info_alpha=1.5 must be <= 1",
        ),
        ({"objective": {"name": "info_vae", "beta": 2.0}}, "set beta=1"),
        (
            {"objective": {"name": "info_vae", "mmd_kernel": "laplace"}},
            "mmd_kernel='laplace'",
        ),
        (
            {
                "objective": {"name": "wae_mmd", "mmd_weight": -1.0},
                "model": {"kind": "wae"},
            },
            "mmd_weight=-1.0 must be >= 0",
        ),
        (
            {
                "objective": {"name": "wae_mmd"},
                "model": {"kind": "wae", "code_activation": "tanh"},
            },
            "code_activation='linear'",
        ),
        (
            {"objective": {"name": "mse"}, "model": {"kind": "wae"}},
            "kind='wae' trains with",
        ),
        (
            {"objective": {"name": "info_vae"}, "model": {"posterior": "full"}},
            "trains with",
        ),
    ],
)
def test_invalid_mmd_configs_are_refused(sections, message):
    with pytest.raises(ValueError, match=message):
        config_checks.validate_config(make_config(**sections))


def _digits(name, **train):
    """``vae_jax.configs.<name>`` on the bundled digits, a few steps, no figures."""
    config = make_config(name, data={"name": "digits"})
    if config.data.valid_size == 0:
        config.data.valid_size = -1
    config.train.update(
        num_steps=30,
        steps_per_dispatch=10,
        log_every=10,
        checkpoint_every=30,
        eval_batch_size=200,
        write_figures=False,
        **train,
    )
    return config


@pytest.mark.slow  # ~20-50 s on 2 CPU cores, compiles dominating
def test_wae_config_sweeps_lambda_vmapped_and_samples(tmp_path):
    """wae_mnist's model on digits: a vmapped sweep over lambda runs, each config's
    logged objective is its squared error + its own lambda MMD^2, and load_run samples."""
    sweep = [{"objective.mmd_weight": 0.0}, {"objective.mmd_weight": 50.0}]
    rows = launch.run_sweep(_digits("wae_mnist"), sweep, tmp_path, mode="vmap")
    assert [r["status"] for r in rows] == ["done", "done"]
    for row, overrides in zip(rows, sweep):
        lam = overrides["objective.mmd_weight"]
        objective = float(row["train/objective"])
        expected = float(row["train/squared_error"]) + lam * float(row["train/mmd2"])
        np.testing.assert_allclose(objective, expected, rtol=1e-3)
        assert np.isfinite(float(row["test/mse"]))
    assert float(rows[1]["train/mmd2"]) > 0
    run = runs.load_run(tmp_path / spec.run_name(sweep[1]))
    assert run.generative and not run.latent
    samples = run.sample(5, jax.random.key(0))
    assert samples.shape == (5, 64) and np.all(np.isfinite(samples))


@pytest.mark.slow  # ~20-50 s on 2 CPU cores, compiles dominating
def test_infovae_config_trains_and_loads(tmp_path):
    config = _digits("infovae_mnist")
    final = loop.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(final["test/elbo"])
    run = runs.load_run(tmp_path)
    # The recorded test/elbo is the ELBO at weight 1 (not the InfoVAE loss): the same
    # number as Run.elbo's -ELBO objective gives with the run's eval key.
    x = run.eval_split("test")
    np.testing.assert_allclose(run.elbo(x).mean(), final["test/elbo"], rtol=1e-5)
    elbo, ll = run.elbo(x[:40], jax.random.key(1)), run.log_likelihood(x[:40], 50)
    assert ll.shape == elbo.shape == (40,) and ll.mean() > elbo.mean()
