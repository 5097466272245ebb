"""The bundled configs (``vae_jax/configs``): each has its ``experiments/configs``
re-export, and the conv Fashion-MNIST config trains (tiny widths, 5 steps).
``tests/test_config_checks.py`` validates every one of them."""

import importlib
import pkgutil

import numpy as np
import pytest

from vae_jax import configs, data, loop, writer

from helpers import make_config

NAMES = [m.name for m in pkgutil.iter_modules(configs.__path__)]


@pytest.mark.parametrize("name", NAMES)
def test_every_config_has_its_experiments_re_export(name):
    ours = importlib.import_module(f"vae_jax.configs.{name}").get_config
    assert importlib.import_module(f"experiments.configs.{name}").get_config is ours


@pytest.mark.slow  # XLA:CPU compiles the convolutions for ~20 s
def test_vae_fashion_conv_trains_five_steps(tmp_path):
    """The config as shipped (conv VAE, Fashion-MNIST, dynamic binarization) with 2
    conv channels and K = 2: 5 steps, evaluation, checkpoint and figures."""
    config = make_config(
        "vae_fashion_conv",
        model={"conv_features": 2, "latent_dim": 2},
        train={
            "num_steps": 5,
            "steps_per_dispatch": 5,
            "log_every": 5,
            "checkpoint_every": 5,
            "eval_batch_size": 2000,
        },
    )
    assert config.model.architecture == "conv" and config.data.binarize == "dynamic"
    try:
        final = loop.train_and_evaluate(config, str(tmp_path))
    except data.DataNotFoundError:
        pytest.skip("fashion_mnist files not found")
    assert np.isfinite(final["test/elbo"]) and final["test/kl"] >= 0
    assert np.isfinite(final["valid/elbo"])  # the 10,000 held-out training images
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if "train/objective" in r] == [5]
    for name in ("curves.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0
