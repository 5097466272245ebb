"""Limitation 2: the over-complete AE study's scores on models with known behaviour
(the identity, a constant), its configs, and resuming from finished rows."""

import numpy as np
import pytest

from vae_jax import data
from vae_jax.studies import autoencoders, identity


class _Fixed:
    """A stand-in model: ``reconstruct`` applies ``fn``, ``code`` is the input."""

    def __init__(self, fn):
        self.fn = fn

    def reconstruct(self, params, x):
        return self.fn(x)

    def code(self, params, x):
        return x


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits")


def _other(dataset):
    """A second dataset: the digits upside down."""
    flip = lambda x: np.ascontiguousarray(x[:, ::-1])
    return data.Dataset(
        "flipped",
        flip(dataset.train),
        flip(dataset.valid),
        flip(dataset.test),
        None,
        None,
        None,
        dataset.image_shape,
    )


def test_the_identity_reconstructs_everything_and_detects_nothing(digits):
    row = identity.score_model(
        _Fixed(lambda x: x), None, digits, _other(digits), num_test=200, num_probe=500
    )
    assert row["mse_data"] == row["mse_other"] == row["mse_noise"] == 0.0
    assert row["auroc_other"] == row["auroc_noise"] == 0.5
    assert row["probe_accuracy"] > 0.85  # codes = pixels keep the digit


def test_a_model_of_the_data_flags_noise(digits):
    mean = digits.train.mean(axis=0)
    row = identity.score_model(
        _Fixed(lambda x: np.broadcast_to(mean, x.shape)),
        None,
        digits,
        _other(digits),
        num_test=200,
        num_probe=500,
    )
    errors = np.mean((digits.test[:200] - mean) ** 2, axis=1)
    np.testing.assert_allclose(row["mse_data"], errors.mean(), rtol=1e-6)
    assert row["auroc_noise"] > 0.99 and row["mse_noise"] > row["mse_data"]


def test_identity_config_sets_code_size_and_regulariser():
    config = identity.identity_config("denoising", 1024, 50)
    assert config.model.latent_dim == 1024 and config.model.hidden == ()
    assert config.objective.name == "denoising_mse"
    assert config.objective.corruption == "masking" and config.train.num_steps == 50
    with pytest.raises(ValueError, match="Unknown variant"):
        identity.identity_config("contractive", 8, 10)


def test_finished_rows_are_reused_and_new_ones_reported(digits, monkeypatch):
    done = {"plain/4": {"variant": "plain", "latent_dim": 4, "auroc_other": 0.7}}
    fitted, saved = [], {}
    real_fit = autoencoders.fit

    def fit(config, dataset):
        fitted.append(config.model.latent_dim)
        config.data.name = "digits"
        return real_fit(config, dataset)

    monkeypatch.setattr(autoencoders, "fit", fit)
    rows = identity.identity_study(
        digits,
        _other(digits),
        latent_dims=(4, 8),
        variants=("plain",),
        num_steps=20,
        num_test=100,
        done=done,
        on_row=saved.__setitem__,
    )
    assert fitted == [8] and list(saved) == ["plain/8"]
    assert rows[0] is done["plain/4"] or rows[0] == done["plain/4"]
    assert rows[1]["latent_dim"] == 8 and 0 <= rows[1]["auroc_noise"] <= 1


def test_the_linear_variant_has_a_linear_code():
    config = identity.identity_config("linear", 1024, 10)
    assert config.model.code_activation == "linear" and config.objective.name == "mse"
    assert identity.identity_config("plain", 8, 10).model.code_activation == "sigmoid"
