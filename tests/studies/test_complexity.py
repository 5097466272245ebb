"""Limitation 5: the per-dataset scores of the same VAE (NLL per image and per
dimension, the relative Frechet distance) against their definitions."""

import types

import numpy as np
import pytest

from vae_jax import data
from vae_jax.studies import autoencoders, complexity, sample_quality

from helpers import make_config


class _FirstPixels:
    """A stand-in feature net: features = the first 12 pixels, uniform classes."""

    info = types.MappingProxyType({"test_accuracy": 0.5})

    def features(self, x):
        return np.asarray(x, np.float64)[:, :12]

    def probabilities(self, x):
        return np.full((len(x), 10), 0.1)


def test_relative_frechet_divides_by_the_real_feature_variance():
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(size=(300, 64)), rng.uniform(size=(300, 64)) ** 2
    net = _FirstPixels()
    fd = sample_quality.frechet_distance(net.features(fake), net.features(real))
    spread = np.trace(np.cov(net.features(real), rowvar=False))
    np.testing.assert_allclose(
        complexity.relative_frechet(net, fake, real), fd / spread, rtol=1e-10
    )


@pytest.fixture(scope="module")
def trained():
    digits = data.load_dataset("digits")
    config = make_config("quickstart", train={"num_steps": 300, "write_figures": False})
    exp, params, _ = autoencoders.fit(config, digits)
    return exp, params, digits


def test_nll_per_dimension_and_the_bound_tightening_with_k(trained):
    exp, params, digits = trained
    rows = {
        k: complexity.score_dataset(
            exp, params, digits, _FirstPixels(), num_test=150, num_samples=k
        )[0]
        for k in (1, 50)
    }
    for row in rows.values():
        np.testing.assert_allclose(
            row["bits_per_dim"], row["nll_nats"] / (64 * np.log(2)), rtol=1e-12
        )
        assert row["dataset"] == "digits" and np.isfinite(row["sample_fd_relative"])
    assert rows[50]["nll_nats"] < rows[1]["nll_nats"]  # L_50 >= L_1 (Burda et al.)


def test_complexity_config_keeps_the_model_and_budget():
    a = complexity.complexity_config("mnist", 100)
    b = complexity.complexity_config("fashion_mnist", 100)
    assert a.model == b.model and a.train == b.train and a.objective == b.objective
    assert b.data.name == "fashion_mnist" and b.data.binarize == "dynamic"
