"""Frechet distance against closed forms and scipy; the feature classifier is trained
once and then read from its cache."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from vae_jax import data
from vae_jax.studies import classifier, sample_quality


def _random_cov(rng, h):
    a = rng.normal(size=(h, h))
    return a @ a.T / h + 0.1 * np.eye(h)


def test_frechet_distance_of_gaussians_matches_closed_forms():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = rng.uniform(0.5, 2.0, size=4), rng.uniform(0.5, 2.0, size=4)
    # Diagonal: ||m1 - m2||^2 + sum_k (s1_k - s2_k)^2.
    expected = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
    got = sample_quality.frechet_distance_gaussians(
        m1, np.diag(s1**2), m2, np.diag(s2**2)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # General covariances (non-commuting): tr (S1 S2)^(1/2) by scipy's sqrtm.
    c1, c2 = _random_cov(rng, 5), _random_cov(rng, 5)
    n1, n2 = rng.normal(size=5), rng.normal(size=5)
    cross = np.trace(scipy.linalg.sqrtm(c1 @ c2)).real
    expected = np.sum((n1 - n2) ** 2) + np.trace(c1 + c2) - 2 * cross
    got = sample_quality.frechet_distance_gaussians(n1, c1, n2, c2)
    np.testing.assert_allclose(got, expected, rtol=1e-8)
    assert (
        sample_quality.frechet_distance_gaussians(m1, c1[:4, :4], m1, c1[:4, :4]) < 1e-9
    )


def test_frechet_distance_of_samples():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4000, 3))
    assert sample_quality.frechet_distance(a, a) < 1e-9
    b = rng.normal(size=(4000, 3)) * 2.0 + 1.0  # N(1, 4 I): distance 3 + 3 (2 - 1)^2
    np.testing.assert_allclose(sample_quality.frechet_distance(a, b), 6.0, rtol=0.05)


def test_frechet_distance_of_a_rank_deficient_sample_to_itself_is_zero():
    """N < H rows: singular covariances whose eigenvalues round below 0 (~ -1e-16) and
    a raw distance of ~ -1e-7; the clamps keep every square root real and the result
    exactly 0, never NaN or negative. A shift by 1 in each of 12 dims gives 12."""
    a = np.random.default_rng(0).standard_normal((8, 12))
    assert sample_quality.frechet_distance(a, a) == 0.0
    np.testing.assert_allclose(sample_quality.frechet_distance(a, a + 1.0), 12.0, 1e-6)


def test_feature_classifier_is_cached(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int32)
    ds = data.Dataset("toy", x[:100], x[:0], x[100:], y[:100], None, y[100:], (2, 3))
    net = sample_quality.feature_classifier(ds, tmp_path, hidden=(8,), num_steps=200)
    assert net.features(x).shape == (120, 8) and net.features(x).min() >= 0
    probs = net.probabilities(x)
    assert probs.shape == (120, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert net.info["test_accuracy"] > 0.7

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(classifier, "train_classifier", no_training)
    cached = sample_quality.feature_classifier(ds, tmp_path, hidden=(8,), num_steps=200)
    np.testing.assert_array_equal(cached.features(x), net.features(x))
    assert cached.info == net.info
    with pytest.raises(AssertionError, match="trained again"):  # other settings
        sample_quality.feature_classifier(ds, tmp_path, hidden=(8,), num_steps=100)
    unlabeled = data.Dataset("toy", x, x[:0], x, None, None, None, (2, 3))
    with pytest.raises(ValueError, match="no labels"):
        sample_quality.feature_classifier(unlabeled, tmp_path)


def test_pooled_conv_features_ignore_a_shift_by_the_total_stride():
    """Convolutions commute with shifts and the global mean pool forgets position, so
    content moved by 4 pixels (the two stride-2 layers) has the same features."""
    net = classifier.ConvNet((28, 28), 10)
    params = net.init(jax.random.key(0), jnp.zeros((1, 784)))
    image = np.zeros((28, 28), np.float32)
    image[8:20, 8:20] = np.random.default_rng(0).uniform(size=(12, 12))
    moved = np.roll(image, 4, axis=1)
    embed = lambda x: net.apply(
        params, x.reshape(1, -1), method=classifier.ConvNet.embed
    )
    a, b = embed(image), embed(moved)
    assert a.shape == (1, 32)
    np.testing.assert_allclose(a, b, atol=1e-5)
    odd = embed(np.roll(image, 1, axis=1))  # not a multiple of the stride: moves
    assert float(jnp.max(jnp.abs(odd - a))) > 1e-3
