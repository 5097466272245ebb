"""Validation of a run configuration before anything is compiled or loaded."""

from __future__ import annotations

import ml_collections

from vae_jax import corruptions, data, models, objectives, optim
from vae_jax.models import layers, vae


def choices() -> dict[str, tuple]:
    """Allowed values of the name fields, read from the registries they select from."""
    return {
        "model.kind": tuple(models.MODELS),
        "model.architecture": layers.ARCHITECTURES,
        "model.activation": tuple(layers.ACTIVATIONS),
        "model.code_activation": ("linear", "sigmoid", "relu", "tanh"),
        "model.dtype": ("float32", "bfloat16", "float16"),
        "model.kernel_init": tuple(layers.KERNEL_INITS),
        "model.stochastic_layers": (1, 2),
        "model.output_bias": ("zeros", "data_mean"),
        "objective.name": tuple(objectives.OBJECTIVES),
        "objective.likelihood": vae.LIKELIHOODS,
        "objective.corruption": tuple(corruptions.CORRUPTIONS),
        "data.name": data.DATASETS,
        "data.binarize": ("none", "dynamic"),
        "optim.name": tuple(optim.OPTIMIZERS),
        "optim.schedule": tuple(optim.SCHEDULES),
        "train.on_nonfinite": ("stop", "skip"),
        "train.data_parallel": ("auto", "on", "off"),
    }


POSITIVE = (
    "model.latent_dim",
    "model.conv_features",
    "objective.num_samples",
    "optim.learning_rate",
    "optim.eps",
    "train.batch_size",
    "train.steps_per_dispatch",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.eval_batch_size",
)
NON_NEGATIVE = (
    "objective.beta",
    "objective.sigma",
    "objective.kl_warmup_steps",
    "optim.warmup_steps",
    "optim.weight_decay",
    "optim.grad_clip_norm",
    "train.num_epochs",
    "train.num_steps",
    "train.eval_every",
)


def _get(config: ml_collections.ConfigDict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def _problems(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    for field, allowed in choices().items():
        value = _get(config, field)
        if value not in allowed:
            problems.append(f"config.{field}={value!r} is not one of {allowed}")
    for field in POSITIVE:
        if not _get(config, field) > 0:
            problems.append(f"config.{field}={_get(config, field)!r} must be > 0")
    for field in NON_NEGATIVE:
        if not _get(config, field) >= 0:
            problems.append(f"config.{field}={_get(config, field)!r} must be >= 0")
    hidden = tuple(config.model.hidden)
    if any(not isinstance(w, int) or w <= 0 for w in hidden):
        problems.append(f"config.model.hidden={hidden!r} must be positive integers")
    if not 0 <= config.optim.b1 < 1 or not 0 <= config.optim.b2 < 1:
        problems.append("config.optim.b1 and b2 must lie in [0, 1)")
    if config.train.num_epochs <= 0 and config.train.num_steps <= 0:
        problems.append("set config.train.num_epochs or config.train.num_steps > 0")
    problems += _objective_problems(config)
    if config.model.stochastic_layers == 2 and (
        config.model.kind != "vae"
        or config.model.architecture != "mlp"
        or config.objective.likelihood != "bernoulli"
        or not config.model.latent_dim2 > 0
        or any(not isinstance(w, int) or w <= 0 for w in tuple(config.model.hidden2))
    ):
        problems.append(
            "model.stochastic_layers=2 (Burda et al.'s two-layer model) needs kind='vae', "
            "architecture='mlp', likelihood='bernoulli', latent_dim2 > 0, positive hidden2"
        )
    problems += _autoencoder_problems(config)
    return problems + _posterior_problems(config)


def _posterior_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Full-covariance posterior and free bits (one-layer VAEs)."""
    model, problems = config.model, []
    posterior = model.posterior
    free_bits = config.objective.free_bits
    if posterior not in POSTERIORS:
        problems.append(
            f"config.model.posterior={posterior!r} is not one of {POSTERIORS}"
        )
    if not free_bits >= 0:
        problems.append(f"config.objective.free_bits={free_bits!r} must be >= 0")
    one_layer_vae = model.kind == "vae" and model.stochastic_layers == 1
    if posterior == "full" and not one_layer_vae:
        problems.append("model.posterior='full' needs kind='vae', stochastic_layers=1")
    if free_bits > 0 and not (
        one_layer_vae and posterior == "diagonal" and config.objective.name == "elbo"
    ):
        problems.append(
            "objective.free_bits > 0 needs objective.name='elbo' and a one-layer VAE "
            "with model.posterior='diagonal'"
        )
    return problems


POSTERIORS = ("diagonal", "full")


def _objective_problems(config: ml_collections.ConfigDict) -> list[str]:
    """The objective must be one the model family (``models.MODELS``) trains with."""
    kind, name = config.model.kind, config.objective.name
    if kind not in models.MODELS:
        return []  # reported with the choices
    family = models.MODELS[models.family_name(config.model)]
    if name not in family.objectives:
        return [
            f"model.kind={kind!r} trains with objective.name in {family.objectives}"
        ]
    return []


def _autoencoder_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Denoising, sparse and centred-data settings (autoencoders only)."""
    obj, problems = config.objective, []
    if obj.name == "denoising_mse" and not (
        obj.noise_level >= 0 and (obj.corruption == "gaussian" or obj.noise_level <= 1)
    ):
        problems.append("objective.noise_level must be >= 0 (and <= 1 unless gaussian)")
    if obj.name == "sparse_mse":
        if not 0 < obj.sparsity_target < 1 or not obj.sparsity_weight >= 0:
            problems.append(
                "sparse_mse needs 0 < sparsity_target < 1, sparsity_weight >= 0"
            )
        if config.model.code_activation != "sigmoid":
            problems.append(
                "objective.name='sparse_mse' needs model.code_activation='sigmoid'"
            )
    centred = config.data.center
    if centred and (config.model.kind != "ae" or config.data.binarize != "none"):
        problems.append(
            "data.center=True needs model.kind='ae' and data.binarize='none'"
        )
    return problems


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``ValueError`` listing every invalid field of ``config`` at once."""
    try:
        problems = _problems(config)
    except (KeyError, AttributeError, TypeError) as err:
        raise ValueError(f"Malformed config: {err}") from err
    if problems:
        raise ValueError("Invalid config:\n  " + "\n  ".join(problems))


def validate_against_data(
    config: ml_collections.ConfigDict, image_shape, binary: bool
) -> None:
    """Checks the parts of ``config`` that depend on the dataset (shapes, value range)."""
    problems = []
    if config.model.architecture == "conv" and (
        len(image_shape) != 2 or image_shape[0] % 4 or image_shape[1] % 4
    ):
        problems.append(
            f"model.architecture='conv' needs image sides divisible by 4; "
            f"data {config.data.name!r} has image_shape={tuple(image_shape)}"
        )
    if config.data.binarize == "dynamic" and binary:
        problems.append(
            f"data {config.data.name!r} is already binary; use data.binarize='none'"
        )
    if problems:
        raise ValueError("Invalid config for this data:\n  " + "\n  ".join(problems))
