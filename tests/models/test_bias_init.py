"""model.bias_init = "torch_default": biases drawn as PyTorch's nn.Linear / nn.Conv2d
default, U(+-1/sqrt(fan_in)); other parameters untouched."""

import math

import jax
import numpy as np
import pytest

from vae_jax import build, config_checks
from vae_jax.configs import default
from vae_jax.models import layers


def test_biases_fill_plus_minus_one_over_sqrt_fan_in_of_their_own_kernel():
    params = {
        "params": {
            "dense": {
                "kernel": np.zeros((784, 400), np.float32),
                "bias": np.zeros(400, np.float32),
            },
            "conv": {
                "kernel": np.zeros((3, 3, 4, 8), np.float32),
                "bias": np.zeros(2000, np.float32),
            },
            "pseudo_inputs": np.full((5, 784), 0.5),
        }
    }
    out = layers.with_torch_default_biases(params, jax.random.key(0))["params"]
    for name, fan_in in (("dense", 784), ("conv", 3 * 3 * 4)):
        bias = np.asarray(out[name]["bias"])
        bound = 1 / math.sqrt(fan_in)
        assert np.abs(bias).max() <= bound
        # uniform on [-b, b]: it reaches the ends and has variance b^2 / 3
        assert np.abs(bias).max() > 0.95 * bound
        np.testing.assert_allclose(bias.var(), bound**2 / 3, rtol=0.15)
    np.testing.assert_array_equal(
        out["pseudo_inputs"], params["params"]["pseudo_inputs"]
    )
    np.testing.assert_array_equal(out["dense"]["kernel"], 0.0)


def test_config_field_reaches_every_bias_of_a_fresh_run():
    config = default.get_config()  # MLP VAE on digits
    zeros = build.build_experiment(config).init_state().params
    config.model.bias_init = "torch_default"
    state = build.build_experiment(config).init_state().params
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    biases = [(path, leaf) for path, leaf in flat if path[-1].key == "bias"]
    assert len(biases) >= 5
    kernels = dict(jax.tree_util.tree_flatten_with_path(state)[0])
    for path, bias in biases:
        kernel = kernels[(*path[:-1], jax.tree_util.DictKey("kernel"))]
        bound = 1 / math.sqrt(kernel.shape[0])
        assert 0 < np.abs(bias).max() <= bound, path
    zero_biases = [
        leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(zeros)[0]
        if path[-1].key == "bias"
    ]
    assert all(np.all(np.asarray(b) == 0) for b in zero_biases)


def test_unknown_bias_init_is_refused_with_the_choices():
    config = default.get_config()
    config.model.bias_init = "torch"
    with pytest.raises(ValueError, match="torch_default"):
        config_checks.validate_config(config)
