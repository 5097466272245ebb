"""Ex-post samplers: the Gaussian mixture reproduces a known mixture's moments and
region masses within standard errors, the two-stage VAE trains through the library's
loop and matches its codes' moments, and a finished run of any family is sampled,
decoded and scored ex post."""

import jax
import numpy as np
import pytest

from vae_jax import loop, runs
from vae_jax.studies import expost

WEIGHTS = np.array([0.6, 0.3, 0.1])
MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [-3.0, 5.0]])
COVS = np.array(
    [[[1.0, 0.8], [0.8, 1.0]], [[0.5, -0.3], [-0.3, 2.0]], [[2.0, 0.5], [0.5, 0.3]]]
)


def _mixture_draws(n, seed):
    rng = np.random.default_rng(seed)
    c = rng.choice(3, size=n, p=WEIGHTS)
    eps = rng.normal(size=(n, 2))
    return MEANS[c] + np.einsum("nij,nj->ni", np.linalg.cholesky(COVS)[c], eps)


def _moments_and_errors(x):
    """mean [K], covariance [K, K] and their standard errors (the covariance's from
    the variance of the centred products)."""
    n, centred = len(x), x - x.mean(0)
    products = centred[:, :, None] * centred[:, None, :]  # [N, K, K]
    return (
        x.mean(0),
        products.mean(0),
        x.std(0) / np.sqrt(n),
        products.std(0) / np.sqrt(n),
    )


def _regions(x):
    """Shares of three of the quadrants around (1, 2): [3] (the mixture's modes fall in
    different ones; one Gaussian of the same moments spreads them differently)."""
    right, up = x[:, 0] > 1.0, x[:, 1] > 2.0
    return np.array([np.mean(right & up), np.mean(right & ~up), np.mean(~right & up)])


def test_gmm_sampler_reproduces_a_known_mixture_within_standard_errors():
    n = 20_000
    codes = _mixture_draws(n, seed=0)
    sampler = expost.fit_gmm(codes, num_components=3)
    order = np.argsort(sampler.weights)[::-1]
    np.testing.assert_allclose(sampler.weights[order], WEIGHTS, atol=0.02)
    np.testing.assert_allclose(sampler.means[order], MEANS, atol=0.1)
    z = sampler.sample(jax.random.key(0), n)
    assert z.shape == (n, 2) and z.dtype == np.float32
    mean_c, cov_c, mean_se, cov_se = _moments_and_errors(codes)
    mean_z, cov_z, _, _ = _moments_and_errors(z.astype(np.float64))
    # Samples against the codes (two independent samples: sqrt(2) SE) ...
    assert np.all(np.abs(mean_z - mean_c) < 4 * np.sqrt(2) * mean_se)
    assert np.all(np.abs(cov_z - cov_c) < 4 * np.sqrt(2) * cov_se)
    # ... and against the mixture's closed-form moments.
    true_mean = WEIGHTS @ MEANS
    second = np.einsum("c,cij->ij", WEIGHTS, COVS + MEANS[:, :, None] * MEANS[:, None])
    true_cov = second - np.outer(true_mean, true_mean)
    assert np.all(np.abs(mean_z - true_mean) < 4 * np.sqrt(2) * mean_se)
    assert np.all(np.abs(cov_z - true_cov) < 4 * np.sqrt(2) * cov_se)
    share_c, share_z = _regions(codes), _regions(z)
    share_se = np.sqrt(share_c * (1 - share_c) / n)
    assert np.all(np.abs(share_z - share_c) < 4 * np.sqrt(2) * share_se)
    # A fresh key gives fresh draws; the same key the same ones.
    np.testing.assert_array_equal(sampler.sample(jax.random.key(0), 5), z[:5])
    assert not np.allclose(sampler.sample(jax.random.key(1), 5), z[:5])


def test_two_stage_vae_trains_through_the_loop_and_matches_the_codes(monkeypatch):
    rng = np.random.default_rng(1)
    mixing = np.array([[3.0, 0.0, 0.0], [1.0, 0.5, 0.0], [-2.0, 0.3, 1.0]])
    codes = 5.0 + rng.normal(size=(4000, 3)) @ mixing.T  # shifted, scaled, correlated
    calls = []
    run_loop = loop.run_loop
    monkeypatch.setattr(
        loop, "run_loop", lambda *a, **k: calls.append(a[2]) or run_loop(*a, **k)
    )
    config = expost.two_stage_config(
        3, hidden=(32, 32), num_steps=600, batch_size=100, learning_rate=3e-3
    )
    sampler = expost.fit_two_stage(codes, config)
    assert calls == [600]  # one run of the library's loop, to the configured end
    assert len(sampler.objective) == 2 and sampler.objective[1] < sampler.objective[0]
    z = sampler.sample(jax.random.key(0), 4000).astype(np.float64)
    mean_c, std_c = codes.mean(0), codes.std(0)
    assert np.all(np.abs(z.mean(0) - mean_c) < 0.15 * std_c)
    np.testing.assert_allclose(z.std(0), std_c, rtol=0.25)
    corr_z, corr_c = np.corrcoef(z, rowvar=False), np.corrcoef(codes, rowvar=False)
    np.testing.assert_allclose(corr_z, corr_c, atol=0.15)


@pytest.fixture(params=["ae", "vae"])
def finished_run(request, family_run, straight_run):
    """A finished digits run of an autoencoder or a VAE, loaded back."""
    workdir = family_run("ae")[0] if request.param == "ae" else straight_run
    return runs.load_run(workdir)


def test_a_finished_run_of_any_family_is_sampled_ex_post(finished_run, tmp_path):
    run, key = finished_run, jax.random.key(2)
    codes = expost.training_codes(run, max_examples=300)
    np.testing.assert_array_equal(codes, run.encode(run.eval_split("train")[:300]))
    sampler = expost.fit_sampler(run, "gmm", max_examples=300, num_components=2)
    assert sampler.means.shape == (2, run.config.model.latent_dim)
    images = expost.decode_samples(run, sampler, 8, key)
    assert images.shape == (8, run.dataset.dim)
    expected = np.clip(run.decode(sampler.sample(key, 8)), 0.0, 1.0)
    np.testing.assert_array_equal(images, expected)
    normal = expost.fit_sampler(run, "normal", max_examples=300)
    assert normal.sample(key, 4).shape == (4, run.config.model.latent_dim)
    scores = expost.sample_quality(
        run, sampler, num_samples=200, cache_dir=tmp_path, classifier_steps=50
    )
    assert (
        scores["num_samples"] == 200 and scores["sampler"] == "GaussianMixtureSampler"
    )
    assert scores["frechet_distance"] > 0 and np.isfinite(scores["frechet_distance"])
    assert 1.0 <= scores["inception_score"] <= 10.0
    with pytest.raises(ValueError, match="Unknown sampler 'flow'"):
        expost.fit_sampler(run, "flow")


@pytest.mark.parametrize(
    "codes, message",
    [(np.zeros((1, 3)), "N >= 2"), (np.full((5, 2), np.nan), "NaN or inf")],
)
def test_bad_codes_are_rejected(codes, message):
    with pytest.raises(ValueError, match=message):
        expost.fit_gmm(codes)
