"""Validation of a run configuration before anything is compiled or loaded."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence

import ml_collections

from vae_jax import (
    corruptions,
    data,
    mmd,
    mmd_objectives,
    models,
    objectives,
    optim,
    rae_objectives,
    tc_objectives,
    vq_objectives,
)
from vae_jax.models import layers, vae


def choices() -> dict[str, tuple]:
    """Allowed values of the name fields, read from the registries they select from."""
    return {
        "model.kind": tuple(models.MODELS),
        "model.architecture": layers.ARCHITECTURES,
        "model.activation": layers.MLP_ACTIVATIONS,
        "model.code_activation": ("linear", "sigmoid", "relu", "tanh"),
        "model.dtype": ("float32", "bfloat16", "float16"),
        "model.kernel_init": tuple(layers.KERNEL_INITS),
        "model.bias_init": layers.BIAS_INITS,
        "model.stochastic_layers": (1, 2),
        "model.output_bias": ("zeros", "data_mean"),
        "objective.name": tuple(objectives.OBJECTIVES),
        "objective.likelihood": vae.LIKELIHOODS,
        "objective.corruption": tuple(corruptions.CORRUPTIONS),
        "objective.mmd_kernel": tuple(mmd.KERNELS),
        "objective.codebook_update": vq_objectives.CODEBOOK_UPDATES,
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
    "model.num_pseudo_inputs",
    "model.flow_length",
    "model.num_latents",
    "model.code_dim",
    "model.codebook_size",
    "model.num_classes",
    "objective.num_samples",
    "objective.num_groups",
    "objective.robust_scale",
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
    "objective.mmd_weight",
    "objective.mmd_scale",
    "objective.code_penalty",
    "objective.decoder_weight_decay",
    "objective.gradient_penalty",
    "objective.gradient_penalty_probes",
    "objective.commitment",
    "objective.tc_beta",
    "objective.tc_dataset_size",
    "optim.warmup_steps",
    "optim.momentum",
    "optim.weight_decay",
    "optim.grad_clip_norm",
    "train.num_epochs",
    "train.num_steps",
    "train.eval_every",
    "train.early_stopping_patience",
    "train.early_stopping_start",
)


def _get(config: ml_collections.ConfigDict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


SEED_MAX = 2**32 - 1  # seeds are uint32 (numpy's Generator, jax.random.PRNGKey)


def _leaves(config: ml_collections.ConfigDict, prefix: str = ""):
    """(dotted name, value) of every leaf field."""
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _problems(config: ml_collections.ConfigDict) -> list[str]:
    problems = []
    for field, allowed in choices().items():
        value = _get(config, field)
        if value not in allowed:
            problems.append(f"config.{field}={value!r} is not one of {allowed}")
    seed = config.seed
    if not isinstance(seed, numbers.Integral) or not 0 <= seed <= SEED_MAX:
        problems.append(
            f"config.seed={seed!r} must be an integer in [0, 2**32 - 1 = {SEED_MAX}]"
        )
    non_finite = {
        field: value
        for field, value in _leaves(config)
        if isinstance(value, numbers.Real) and not math.isfinite(value)
    }  # inf would pass `> 0`, nan fail it misleadingly: named before the ranges
    problems += [f"config.{f}={v!r} must be finite" for f, v in non_finite.items()]
    for field in POSITIVE:
        if field not in non_finite and not _get(config, field) > 0:
            problems.append(f"config.{field}={_get(config, field)!r} must be > 0")
    for field in NON_NEGATIVE:
        if field not in non_finite and not _get(config, field) >= 0:
            problems.append(f"config.{field}={_get(config, field)!r} must be >= 0")
    hidden = tuple(config.model.hidden)
    if any(not isinstance(w, int) or w <= 0 for w in hidden):
        problems.append(f"config.model.hidden={hidden!r} must be positive integers")
    if not 0 <= config.optim.b1 < 1 or not 0 <= config.optim.b2 < 1:
        problems.append("config.optim.b1 and b2 must lie in [0, 1)")
    if config.train.num_epochs <= 0 and config.train.num_steps <= 0:
        problems.append("set config.train.num_epochs or config.train.num_steps > 0")
    if config.train.early_stopping_patience > 0 and not (
        config.train.eval_every > 0 and config.data.valid_size != 0
    ):
        problems.append(
            "train.early_stopping_patience > 0 monitors the validation loss: it needs "
            "train.eval_every > 0 and a validation split (data.valid_size != 0)"
        )
    problems += _objective_problems(config)
    problems += mmd_objectives.config_problems(config)  # wae_mmd, info_vae, wae
    problems += rae_objectives.config_problems(config)  # rae_l2, rae_gp
    problems += vq_objectives.config_problems(config)  # vq
    problems += tc_objectives.config_problems(config)  # beta_tcvae
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
    problems += _posterior_problems(config)
    return problems + _encoder_and_gradient_problems(config)


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

# Families (``models.family_name``) whose encode clips a diagonal Gaussian's
# log-variance to config.model.logvar_range (``vae.VAEBase.clip_logvar``).
LOGVAR_RANGE_FAMILIES = ("vae", "vamp_vae", "cvae", "flow_vae")


def _encoder_and_gradient_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Gated MLP layers, the log-variance range, per-tensor gradient normalisation."""
    model, problems = config.model, []
    if model.activation == layers.GATED and model.architecture in ("conv", "conv1d"):
        problems.append(
            f"model.activation='gated' (gated dense layers) needs architecture='mlp', "
            f"got {model.architecture!r}: the conv trunks take an elementwise "
            f"activation, one of {tuple(layers.ACTIVATIONS)}"
        )
    bounds = model.logvar_range
    if bounds is not None:
        pair = isinstance(bounds, (tuple, list)) and len(bounds) == 2
        numbers_ok = pair and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in bounds
        )
        if not (numbers_ok and bounds[0] < bounds[1]):
            problems.append(
                f"config.model.logvar_range={bounds!r} must be None or (lo, hi), "
                "finite numbers with lo < hi"
            )
        elif model.kind in models.MODELS:  # else reported with the choices
            family = models.family_name(model)
            if family not in LOGVAR_RANGE_FAMILIES:
                problems.append(
                    f"model.logvar_range clips a diagonal Gaussian q(z|x)'s "
                    f"log-variance: families {LOGVAR_RANGE_FAMILIES} take it, "
                    f"{family!r} does not; set it to None"
                )
    normalize = config.optim.normalize_gradients
    if not isinstance(normalize, bool):
        problems.append(
            f"config.optim.normalize_gradients={normalize!r} must be True or False"
        )
    elif normalize and config.optim.grad_clip_norm > 0:
        problems.append(
            "optim.normalize_gradients=True rescales every parameter's gradient to "
            "unit norm after any clipping, which then does nothing: set "
            "optim.grad_clip_norm=0"
        )
    return problems


def _objective_problems(config: ml_collections.ConfigDict) -> list[str]:
    """The objective must be one the model family (``models.MODELS``) trains with."""
    kind, name = config.model.kind, config.objective.name
    if kind not in models.MODELS:
        return []  # reported with the choices
    family = models.MODELS[models.family_name(config.model)]
    if name not in family.objectives:
        message = (
            f"model.kind={kind!r} trains with objective.name in {family.objectives}"
        )
        if name in models.PARAM_SPLIT_OBJECTIVES:  # iwae_objectives.split_params
            message += (
                f"; objective.name={name!r} needs a family with "
                "posterior_param_mask and log_weights(..., stop_q_grad=True)"
            )
        return [message]
    beta, warmup = config.objective.beta, config.objective.kl_warmup_steps
    if name in NO_KL_WEIGHT and (beta != 1 or warmup > 0):  # no KL term to weigh
        message = (
            f"objective.name={name!r} ignores objective.beta and "
            "objective.kl_warmup_steps: set beta=1 and kl_warmup_steps=0 "
            f"(got beta={beta!r}, kl_warmup_steps={warmup!r})"
        )
        return [message]
    ciwae_beta = config.objective.ciwae_beta
    if name == "ciwae" and not 0 <= ciwae_beta <= 1:
        return [f"config.objective.ciwae_beta={ciwae_beta!r} must lie in [0, 1]"]
    return []


# Objectives of importance-weighted bounds without a KL term (Burda et al. 2015;
# Rainforth et al. 2018; Tucker et al. 2019): objective.beta must stay 1.
NO_KL_WEIGHT = ("iwae", "miwae", "ciwae", "piwae", "iwae_dreg")


def _autoencoder_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Denoising, sparse and centred-data settings (autoencoders only)."""
    obj, problems = config.objective, []
    if obj.name == "denoising_mse" and not (
        obj.noise_level >= 0 and (obj.corruption == "gaussian" or obj.noise_level <= 1)
    ):
        problems.append("objective.noise_level must be >= 0 (and <= 1 unless gaussian)")
    if obj.name == "robust_mse" and not obj.robust_shape <= 2:
        problems.append("objective.robust_shape (Barron's alpha) must be <= 2")
    if not 0 <= obj.trim_fraction < 1:
        problems.append(
            f"config.objective.trim_fraction={obj.trim_fraction!r} (trimmed_mse's "
            "alpha) must lie in [0, 1)"
        )
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


# ------------------------------------------------------------ model size
# float32 parameters, their gradients and Adam's two moments.
STATE_BYTES_PER_PARAMETER = 16
# Bound on that state in bytes; None: the host's physical memory.
MAX_STATE_BYTES: int | None = None


def state_bytes_limit() -> int | None:
    """``MAX_STATE_BYTES``, else the host's physical memory (None where unknown)."""
    if MAX_STATE_BYTES is not None:
        return MAX_STATE_BYTES
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
        return None


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out  # kernel and bias


def _mlp(
    n_in: int, widths: Sequence[int], n_out: int | None = None, gated: bool = False
):
    """(parameters, output width) of ``layers.MLP(widths, output_dim=n_out)``;
    ``gated``: each hidden layer a ``layers.GatedDense`` (two dense layers)."""
    total = 0
    for width in widths:
        total, n_in = total + (2 if gated else 1) * _dense(n_in, width), width
    if n_out is not None:
        total, n_in = total + _dense(n_in, n_out), n_out
    return total, n_in


def estimate_parameters(
    model: ml_collections.ConfigDict, image_shape: Sequence[int]
) -> int:
    """Parameter count of the model ``config.model`` builds for data of
    ``image_shape``, layer by layer as ``vae_jax.models`` sizes them (exact for the
    bundled families, less a learned Gaussian sigma's one scalar)."""
    data_dim, k = math.prod(image_shape), model.latent_dim
    hidden = tuple(model.hidden)
    if model.kind == "vae" and model.stochastic_layers == 2:  # hierarchical
        hidden2, k2 = tuple(model.hidden2), model.latent_dim2
        total = 0
        for n_in, widths, n_out in (
            (data_dim, hidden, k),  # q(z1|x)
            (k, hidden2, k2),  # q(z2|z1)
            (k2, hidden2[::-1], k),  # p(z1|z2)
        ):
            trunk, width = _mlp(n_in, widths)
            total += trunk + 2 * _dense(width, n_out)  # mean, log sigma
        return total + _mlp(k, hidden[::-1], data_dim)[0]
    if model.architecture in ("conv", "conv1d"):
        if len(image_shape) != (2 if model.architecture == "conv" else 1):
            return 0  # rejected by validate_against_data
        f, cells = model.conv_features, math.prod(layers.conv_cells(image_shape))
        w = 3 ** len(image_shape)  # weights of one 3-wide (3x3) kernel
        encoder, features = (w * f + f) + (w * f * 2 * f + 2 * f), cells * 2 * f
        decoder = _dense(k, cells * 2 * f) + (w * 2 * f * f + f) + (w * f + 1)
    else:  # a CVAE's label columns enter the encoder and, after z, the decoder
        labels = model.num_classes if model.kind == "cvae" else 0
        if model.architecture == "linear":
            encoder, features = 0, data_dim + labels
            decoder = _dense(k + labels, data_dim)
        else:
            gated = model.activation == layers.GATED
            encoder, features = _mlp(data_dim + labels, hidden, gated=gated)
            decoder = _mlp(k + labels, hidden[::-1], data_dim, gated)[0]
    if model.kind in ("ae", "wae", "rae"):
        heads = _dense(features, k)  # code
    else:
        heads = 2 * _dense(features, k)  # mean, log variance
        if model.posterior == "full":
            heads += _dense(features, k * (k - 1) // 2)  # below the diagonal
    if model.kind == "vamp_vae":
        heads += model.num_pseudo_inputs * data_dim  # the VampPrior's u: [C, D]
    if model.kind == "flow_vae":  # u_l, w_l [K] and b_l of L planar steps
        heads += _dense(features, model.flow_length * (2 * k + 1))
    return encoder + heads + decoder


def _size_problems(
    config: ml_collections.ConfigDict, image_shape: Sequence[int] | None
) -> list[str]:
    """The model's parameters, gradients and Adam state must fit ``state_bytes_limit``
    (activations and data come on top: a config that passes can still run out)."""
    limit = state_bytes_limit()
    if image_shape is None or limit is None:
        return []
    count = estimate_parameters(config.model, image_shape)
    need = count * STATE_BYTES_PER_PARAMETER
    if need <= limit:
        return []
    where = (
        "host memory" if MAX_STATE_BYTES is None else "config_checks.MAX_STATE_BYTES"
    )
    message = (
        f"config.model: about {count:,} parameters for data of shape "
        f"{tuple(image_shape)} need {need / 2**30:,.1f} GiB with gradients and Adam "
        f"state, more than the {limit / 2**30:,.1f} GiB of {where}; lower "
        "model.hidden or model.latent_dim (conv: model.conv_features)"
    )
    return [message]


def _raise(heading: str, problems: list[str]) -> None:
    """ValueError: one problem on one line, several as a list."""
    if len(problems) == 1:
        raise ValueError(f"{heading}: {problems[0]}")
    if problems:
        raise ValueError(f"{heading}:\n  " + "\n  ".join(problems))


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``ValueError`` listing every invalid field of ``config`` at once: names
    not in ``choices()``, non-finite numbers, out-of-range values (``POSITIVE``,
    ``NON_NEGATIVE``, the seed), settings that do not go together, then a model whose
    parameters and Adam state would not fit in memory (``_size_problems``)."""
    try:
        problems = _problems(config)
        if not problems:
            shape = data.IMAGE_SHAPES.get(config.data.name)
            problems = _size_problems(config, shape)
    except (KeyError, AttributeError, TypeError) as err:
        raise ValueError(f"Malformed config: {err}") from err
    _raise("Invalid config", problems)


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
    if config.model.architecture == "conv1d" and len(image_shape) != 1:
        problems.append(
            f"model.architecture='conv1d' needs series; data {config.data.name!r} "
            f"has image_shape={tuple(image_shape)} (use 'conv' for images)"
        )
    if config.data.binarize == "dynamic" and binary:
        problems.append(
            f"data {config.data.name!r} is already binary; use data.binarize='none'"
        )
    if not problems:
        problems = _size_problems(config, image_shape)
    _raise("Invalid config for this data", problems)
