"""Small configs, models and train states the tests share (``import helpers``: the
``tests`` folder is on ``sys.path``, see ``pythonpath`` in ``pyproject.toml``)."""

import importlib
import importlib.util
import math
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import optax

from vae_jax import models, train

REPO = pathlib.Path(__file__).resolve().parents[1]  # the repository root


def load_script(name: str):
    """The module ``scripts/<name>.py`` (scripts are not a package), executed once per
    process and kept in ``sys.modules`` (its absl flags are defined once; dataclasses
    look their module up there)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_config(base: str = "default", **sections) -> ml_collections.ConfigDict:
    """``vae_jax.configs.<base>.get_config()`` with each section updated.

    ``make_config("quickstart", model={"hidden": (32,)}, train={"num_steps": 10})``;
    a non-dict value replaces a top-level field (``seed=3``).
    """
    config = importlib.import_module(f"vae_jax.configs.{base}").get_config()
    for name, values in sections.items():
        if isinstance(values, dict):
            config[name].update(values)
        else:
            config[name] = values
    return config


def short_run_config(num_steps: int, **train) -> ml_collections.ConfigDict:
    """Quickstart (digits) with a (32,) MLP, ``num_steps`` steps in chunks of 5, logs
    and checkpoints every 10 steps; ``train`` overrides the rest of ``config.train``."""
    config = make_config("quickstart", model={"hidden": (32,)})
    config.train.update(
        num_steps=num_steps, steps_per_dispatch=5, log_every=10, checkpoint_every=10
    )
    config.train.update(train)
    return config


def straight_config(num_steps: int) -> ml_collections.ConfigDict:
    """``short_run_config`` in chunks of 10 steps (a chunk ends at every log step),
    without figures: the config of conftest's ``straight_run``."""
    return short_run_config(num_steps, steps_per_dispatch=10, write_figures=False)


# Config sections of the families the runner trains besides the VAE, for tiny runs.
FAMILY_CONFIGS = {
    "ae": {"model": {"kind": "ae"}, "objective": {"name": "mse"}},
    "full_covariance_vae": {"model": {"posterior": "full"}},
    "hierarchical_vae": {
        "model": {"stochastic_layers": 2, "hidden2": (16,), "latent_dim2": 3}
    },
}


def family_config(family: str, num_steps: int = 10) -> ml_collections.ConfigDict:
    """``short_run_config(num_steps)`` without figures, for the registry family
    ``family`` (a key of ``FAMILY_CONFIGS``)."""
    config = short_run_config(num_steps, write_figures=False)
    for section, fields in FAMILY_CONFIGS[family].items():
        config[section].update(fields)
    return config


def model_config(**fields) -> ml_collections.ConfigDict:
    """``default``'s model config with ``fields`` set."""
    return make_config(model=fields).model


def tiny_model(
    image_shape=(2, 3), *, likelihood="bernoulli", sigma=None, seed=0, **model
):
    """(model, params): ``default``'s model config updated by ``model``, initialised
    with ``jax.random.key(seed)`` on a zero image of ``image_shape``."""
    net = models.build_model(
        model_config(**model),
        likelihood=likelihood,
        image_shape=image_shape,
        sigma=sigma,
    )
    return net, net.init(jax.random.key(seed), jnp.zeros(math.prod(image_shape)))


def tiny_state(image_shape=(2, 3), *, learning_rate=1e-3, seed=0, **model):
    """An Adam ``TrainState`` of ``tiny_model``'s model, keyed as a run of ``seed``."""
    net = models.build_model(
        model_config(**model),
        likelihood="bernoulli",
        image_shape=image_shape,
    )
    keys = train.split_root_key(seed)
    return train.create_train_state(
        net,
        optax.adam(learning_rate),
        jnp.zeros(math.prod(image_shape)),
        keys["init"],
        keys["train"],
    )
