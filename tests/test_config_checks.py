"""Tests for vae_jax.config_checks: finite hyper-parameters, the seed's range, the
model-size estimate and the memory bound."""

import importlib
import math
import pkgutil

import jax
import pytest

from vae_jax import config_checks, configs, data

from helpers import make_config, model_config, tiny_model


@pytest.mark.parametrize(
    "name", [m.name for m in pkgutil.iter_modules(configs.__path__)]
)
def test_bundled_configs_pass(name):
    config = importlib.import_module(f"vae_jax.configs.{name}").get_config()
    config_checks.validate_config(config)


@pytest.mark.parametrize(
    "section,field,value",
    [
        ("optim", "learning_rate", math.inf),
        ("optim", "learning_rate", math.nan),
        ("optim", "eps", math.inf),
        ("optim", "grad_clip_norm", math.inf),
        ("optim", "weight_decay", math.nan),
        ("optim", "momentum", math.inf),
        ("objective", "beta", math.inf),
        ("objective", "sigma", math.nan),
        ("objective", "free_bits", math.inf),
    ],
)
def test_non_finite_hyperparameters_are_named(section, field, value):
    config = make_config(**{section: {field: value}})
    with pytest.raises(ValueError) as err:
        config_checks.validate_config(config)
    message = str(err.value)
    assert f"config.{section}.{field}={value!r} must be finite" in message
    assert "\n" not in message  # one problem, one line


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_seed_out_of_range_names_the_field(seed):
    with pytest.raises(ValueError, match=rf"config\.seed={seed} must be an integer"):
        config_checks.validate_config(make_config(seed=seed))


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_seed_range_ends_pass(seed):
    config_checks.validate_config(make_config(seed=seed))


@pytest.mark.parametrize(
    "shape,model",
    [
        ((2, 3), {}),
        ((2, 3), {"kind": "ae", "hidden": (9, 5, 3)}),
        ((2, 3), {"architecture": "linear", "hidden": ()}),
        ((8, 12), {"architecture": "conv", "conv_features": 3}),
        ((8, 12), {"kind": "ae", "architecture": "conv", "conv_features": 2}),
        ((2, 3), {"posterior": "full", "latent_dim": 5}),
        (
            (2, 3),
            {
                "stochastic_layers": 2,
                "hidden": (7, 6),
                "hidden2": (5, 4),
                "latent_dim": 3,
                "latent_dim2": 2,
            },
        ),
    ],
)
def test_estimate_parameters_counts_the_built_model(shape, model):
    _, params = tiny_model(shape, **model)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert config_checks.estimate_parameters(model_config(**model), shape) == count


def test_dataset_image_shapes_match_the_loaders():
    for name in ("digits", "synthetic"):  # offline; the others check in their loaders
        assert data.load_dataset(name).image_shape == data.IMAGE_SHAPES[name]
    assert set(data.IMAGE_SHAPES) == set(data.DATASETS)


def test_model_too_large_for_memory_is_refused_with_its_size():
    huge = make_config(model={"latent_dim": 10**10})  # ~4e12 parameters, ~56 TiB
    with pytest.raises(ValueError, match=r"about [\d,]+ parameters .* GiB .*memory"):
        config_checks.validate_config(huge)


def test_explicit_memory_bound(monkeypatch):
    config = make_config("quickstart", model={"hidden": (1000,)})
    count = config_checks.estimate_parameters(config.model, data.IMAGE_SHAPES["digits"])
    bound = count * config_checks.STATE_BYTES_PER_PARAMETER
    monkeypatch.setattr(config_checks, "MAX_STATE_BYTES", bound)
    config_checks.validate_config(config)  # exactly fits
    monkeypatch.setattr(config_checks, "MAX_STATE_BYTES", bound - 1)
    with pytest.raises(ValueError, match="MAX_STATE_BYTES; lower model.hidden"):
        config_checks.validate_config(config)
    # The data's own shape counts: a larger image than the dataset's table entry.
    monkeypatch.setattr(config_checks, "MAX_STATE_BYTES", bound)
    with pytest.raises(ValueError, match=r"shape \(28, 28\)"):
        config_checks.validate_against_data(config, (28, 28), binary=False)
