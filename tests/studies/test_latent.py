"""AE vs VAE latent spaces: interpolation, grids, classifier confidence, figures."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax import data as data_lib
from vae_jax.studies import classifier, codes, latent

from helpers import tiny_model


def _model(kind, image_shape=(4, 4), seed=0):
    """A K = 2 AE or VAE with one hidden layer of 8 units, randomly initialised."""
    return tiny_model(image_shape, seed=seed, kind=kind, hidden=(8,), latent_dim=2)


def test_interpolate_shapes_and_points():
    z0, z1 = jnp.array([[0.0, 1.0], [2.0, -2.0]]), jnp.array([[4.0, 3.0], [0.0, 0.0]])
    line = latent.interpolate(z0, z1, 5)
    assert line.shape == (2, 5, 2)
    np.testing.assert_allclose(line[:, 0], z0)
    np.testing.assert_allclose(line[:, -1], z1)
    np.testing.assert_allclose(line[:, 2], (z0 + z1) / 2)
    np.testing.assert_allclose(line[0, 1], [1.0, 1.5])


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_interpolation_endpoints_are_reconstructions(kind):
    model, params = _model(kind)
    x = np.random.default_rng(0).uniform(size=(6, 16)).astype(np.float32)
    lines = latent.interpolation_images(model, params, x[:3], x[3:], 4)
    assert lines.shape == (3, 4, 16)
    recon = np.clip(np.asarray(model.reconstruct(params, x)), 0, 1)
    np.testing.assert_allclose(lines[:, 0], recon[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lines[:, -1], recon[3:], rtol=1e-5, atol=1e-6)
    assert lines.min() >= 0 and lines.max() <= 1


def test_product_grid_matches_normal_quantile_grid():
    q = jax.scipy.special.ndtri(jnp.linspace(0.05, 0.95, 7))
    np.testing.assert_allclose(
        latent.product_grid(q, q), codes.normal_quantile_grid(7), rtol=1e-6
    )
    grid = latent.product_grid(jnp.array([1.0, 2.0, 3.0]), jnp.array([10.0, 20.0]))
    assert grid.shape == (6, 2)  # 2 rows of 3; top row has the largest z2
    np.testing.assert_allclose(grid[:3], [[1, 20], [2, 20], [3, 20]])


def test_code_range_axes_and_gaussian_fit():
    rng = np.random.default_rng(0)
    chol = np.array([[2.0, 0.0], [1.0, 0.5]])
    z = rng.normal(size=(20000, 2)) @ chol.T + np.array([[3.0, -1.0]])
    axes = latent.code_range_axes(z, 5, percentiles=(0, 100))
    assert axes.shape == (2, 5)
    np.testing.assert_allclose(axes[:, 0], z.min(0))
    np.testing.assert_allclose(axes[:, -1], z.max(0))
    mean, fitted = latent.fit_gaussian(z)
    np.testing.assert_allclose(mean, [3.0, -1.0], atol=0.05)
    np.testing.assert_allclose(fitted, chol, atol=0.05)


def test_confidence_stats_of_known_probabilities():
    probs = np.array([[0.95, 0.05], [0.5, 0.5], [0.05, 0.95], [0.1, 0.9]])
    out = classifier.confidence_stats(probs, threshold=0.9)
    assert out["frac_confident"] == 0.5  # 0.9 itself is not > 0.9
    np.testing.assert_allclose(out["mean_max_prob"], (0.95 + 0.5 + 0.95 + 0.9) / 4)
    np.testing.assert_allclose(out["class_entropy"], np.log(2))  # argmax: 0, 0, 1, 1
    assert classifier.confidence_stats(probs[:1])["class_entropy"] == 0.0


def test_inception_score_limits_and_formula():
    num_classes = 4
    one_hot = np.eye(num_classes)[np.arange(40) % num_classes]  # confident, balanced
    np.testing.assert_allclose(classifier.inception_score(one_hot), num_classes)
    same = np.tile([[0.7, 0.1, 0.1, 0.1]], (10, 1))  # every row = the marginal
    np.testing.assert_allclose(classifier.inception_score(same), 1.0)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(num_classes), size=50)
    marginal = probs.mean(0)
    kl = [sum(p * np.log(p / marginal)) for p in probs]
    np.testing.assert_allclose(classifier.inception_score(probs), np.exp(np.mean(kl)))


def test_nearest_train_distance_matches_brute_force():
    rng = np.random.default_rng(1)
    train = rng.random((300, 16)).astype(np.float32)
    images = np.concatenate([train[:5], rng.random((45, 16))]).astype(np.float32)
    got = latent.nearest_train_distance(images, train, chunk=7)  # uneven chunks
    d2 = ((images[:, None] - train[None]) ** 2).mean(-1)  # [S, N]
    np.testing.assert_allclose(got, np.sqrt(d2.min(1)), rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(got[:5], 0.0, atol=2e-3)  # training images themselves


def test_prior_confidence_is_the_normal_tail_mass():
    """decode(z) = z (K = D = 1); confident iff x > 0.5, so the fraction is 1 - Phi(0.5)."""

    def predict_proba(x):  # [S, 1] -> [S, 2]
        sure = x[:, 0] > 0.5
        return np.stack([np.where(sure, 0.95, 0.6), np.where(sure, 0.05, 0.4)], 1)

    out = classifier.prior_confidence(
        lambda z: z, predict_proba, jax.random.PRNGKey(0), 40000, 1
    )
    np.testing.assert_allclose(out["frac_confident"], stats.norm.sf(0.5), atol=0.01)
    assert out["class_entropy"] == 0.0  # class 0 always wins


@pytest.fixture(scope="module")
def digits():
    return data_lib.load_dataset("digits")


@pytest.fixture(scope="module")
def digits_classifier(digits):
    return classifier.train_classifier(
        digits.train, digits.train_labels, jax.random.PRNGKey(0), num_steps=400
    )


def test_classifier_learns_digits(digits, digits_classifier):
    model, params = digits_classifier
    probs = classifier.class_probabilities(model, params, digits.test)
    assert probs.shape == (len(digits.test), 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert classifier.accuracy(model, params, digits.test, digits.test_labels) > 0.9


def _fits(image_shape):
    """Untrained models as ``autoencoders.fit`` triples (experiment, params, metrics)."""
    (ae, ae_params), (vae, vae_params) = (_model(k, image_shape) for k in ("ae", "vae"))
    return {
        "AE": (types.SimpleNamespace(model=ae), ae_params, {"mse": 0.1}),
        "VAE": (types.SimpleNamespace(model=vae), vae_params, {"elbo": -50.0}),
    }


@pytest.mark.slow  # every figure of the study; the reports (slow) draw them too
def test_compare_and_latent_maps_write_figures(digits, digits_classifier, tmp_path):
    fits = _fits(digits.image_shape)
    pairs = {n: (exp.model, params) for n, (exp, params, _) in fits.items()}
    predict = lambda x: classifier.class_probabilities(*digits_classifier, x)
    out = latent.compare(
        pairs,
        digits,
        jax.random.PRNGKey(1),
        predict_proba=predict,
        num_samples=100,
        workdir=tmp_path,
    )
    for key in (
        "test_images",
        "AE_prior",
        "AE_fitted_gaussian_prior",
        "VAE_prior",
        "AE_midpoints",
        "VAE_midpoints",
        "VAE_reconstructions",
    ):
        assert 0.0 <= out[key]["frac_confident"] <= 1.0
    assert out["test_images"]["frac_confident"] > 0.5  # real digits: mostly confident
    assert len(out["grid_axes"]["VAE"][0]) == 20
    # no labels (as Frey faces): scatter without colours, interpolation rows by index
    unlabeled = dataclasses.replace(digits, name="nolabels", test_labels=None)
    maps = codes.latent_maps_of(fits["AE"], fits["VAE"], unlabeled, workdir=tmp_path)
    assert len(maps["ae_code_std"]) == 2
    latent.interpolation_figure(pairs, unlabeled, tmp_path / "lines.png", num_pairs=2)
    for fig in ("prior_samples", "interpolations", "manifolds", "reconstructions"):
        assert (tmp_path / f"{fig}_digits.png").stat().st_size > 1000
    assert (tmp_path / "latent_ae_vs_vae_nolabels.png").exists()
    assert (tmp_path / "lines.png").exists()
