"""Flax linen encoders, decoders, autoencoders and VAEs.

Modules are deterministic maps of ``(params, x)``: sampling, losses and RNG live in
``objectives.py``. Every module takes any leading dims (``[D]`` under ``vmap`` or
``[B, D]``) and works on flat data; conv modules reshape to ``image_shape`` inside.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "softplus": nn.softplus,
    "sigmoid": nn.sigmoid,
    "linear": lambda x: x,
}


# Dense-layer kernel initialisers by name; biases start at zero in every case.
KERNEL_INITS: dict[str, Callable[..., Any]] = {
    "lecun_normal": nn.initializers.lecun_normal(),  # Flax's default
    "glorot_uniform": nn.initializers.glorot_uniform(),  # Keras's default
    # U(+-1/sqrt(fan_in)) = VarianceScaling(1/3, fan_in, uniform): PyTorch's nn.Linear
    # default and XifengGuo/DEC-keras's autoencoder init.
    "torch_default": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
}


def get_kernel_init(name: str) -> Callable[..., Any]:
    """Looks up a Dense kernel initialiser by name; unknown names raise with the choices."""
    if name not in KERNEL_INITS:
        raise ValueError(
            f"Unknown kernel_init {name!r}; choose one of {sorted(KERNEL_INITS)}."
        )
    return KERNEL_INITS[name]


def get_activation(name: str) -> Callable[[Any], Any]:
    """Looks up an activation by name; unknown names raise with the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}."
        )
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers with an activation after each, then an optional linear output layer.

    [..., D_in] -> [..., output_dim] (or [..., widths[-1]] when ``output_dim`` is None).
    """

    widths: Sequence[int]
    activation: str = "relu"
    output_dim: int | None = None
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        dense = functools.partial(
            nn.Dense, dtype=self.dtype, kernel_init=get_kernel_init(self.kernel_init)
        )
        for width in self.widths:
            x = act(dense(width)(x))
        if self.output_dim is not None:
            x = dense(self.output_dim, name="output")(x)
        return x


class ConvTrunk(nn.Module):
    """Two stride-2 3x3 convolutions, flattened: [..., H*W] -> [..., H/4*W/4*2F]."""

    image_shape: Sequence[int]
    features: int = 32
    activation: str = "relu"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        lead = x.shape[:-1]
        h = x.reshape(*lead, *self.image_shape, 1)
        for mult in (1, 2):
            conv = nn.Conv(
                self.features * mult, (3, 3), strides=(2, 2), dtype=self.dtype
            )
            h = act(conv(h))
        return h.reshape(*lead, -1)


class ConvHead(nn.Module):
    """Dense to a (H/4, W/4, 2F) map, two stride-2 transposed convs: [..., K] -> [..., H*W]."""

    image_shape: Sequence[int]
    features: int = 32
    activation: str = "relu"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        act = get_activation(self.activation)
        height, width = self.image_shape
        lead = z.shape[:-1]
        h = act(
            nn.Dense(
                (height // 4) * (width // 4) * 2 * self.features, dtype=self.dtype
            )(z)
        )
        h = h.reshape(*lead, height // 4, width // 4, 2 * self.features)
        h = act(
            nn.ConvTranspose(self.features, (3, 3), strides=(2, 2), dtype=self.dtype)(h)
        )
        h = nn.ConvTranspose(1, (3, 3), strides=(2, 2), dtype=self.dtype)(h)
        return h.reshape(*lead, height * width)


class Autoencoder(nn.Module):
    """Deterministic code z = f(x) and reconstruction x_hat = g(z).

    ``encode``: [..., D] -> [..., K]; ``decode``: [..., K] -> [..., D] (the
    reconstruction, scored by mean squared error). ``code_activation`` = "sigmoid" gives the sparse AE's
    code layer; "linear" with no hidden layers gives the linear AE of PCA.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    code_activation: str = "linear"
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"

    def setup(self):
        init = get_kernel_init(self.kernel_init)
        self.to_code = nn.Dense(self.latent_dim, dtype=self.dtype, kernel_init=init)

    def encode(self, x):
        return get_activation(self.code_activation)(
            self.to_code(self.encoder(x))
        ).astype(jnp.float32)

    def decode(self, z):
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, x):
        return self.decode(self.encode(x))


class VAE(nn.Module):
    """q(z|x) = N(mean(x), diag(exp(logvar(x)))) and p(x|z); Kingma & Welling 2013, §3, App. C.

    ``encode``: [..., D] -> (mean [..., K], logvar [..., K]).
    ``decode``: [..., K] -> dict of likelihood parameters, each [..., D]:
    ``{"logits"}`` (Bernoulli) or ``{"mean", "log_sigma"}`` (Gaussian). With
    ``sigma`` set the Gaussian scale is fixed; with ``sigma=None`` it is one learned
    scalar log sigma (shared over pixels), a parameter of the model.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    likelihood: str = "bernoulli"
    sigma: float | None = None
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"

    def setup(self):
        init = get_kernel_init(self.kernel_init)
        self.to_mean = nn.Dense(self.latent_dim, dtype=self.dtype, kernel_init=init)
        self.to_logvar = nn.Dense(self.latent_dim, dtype=self.dtype, kernel_init=init)
        if self.likelihood == "gaussian" and self.sigma is None:
            self.log_sigma = self.param("log_sigma", nn.initializers.zeros, ())

    def encode(self, x):
        h = self.encoder(x)
        return self.to_mean(h).astype(jnp.float32), self.to_logvar(h).astype(
            jnp.float32
        )

    def decode(self, z):
        out = self.decoder(z).astype(jnp.float32)
        if self.likelihood == "bernoulli":
            return {"logits": out}
        if self.sigma is None:
            log_sigma = self.log_sigma
        else:
            log_sigma = jnp.asarray(math.log(self.sigma), jnp.float32)
        return {"mean": out, "log_sigma": jnp.broadcast_to(log_sigma, out.shape)}

    def __call__(self, x):
        mean, _ = self.encode(x)
        return self.decode(mean)


MODEL_KINDS = ("vae", "ae")
ARCHITECTURES = ("mlp", "conv", "linear")
LIKELIHOODS = ("bernoulli", "gaussian")


def _encoder_decoder(
    config: ml_collections.ConfigDict, image_shape: Sequence[int], dtype
):
    """Encoder trunk [..., D] -> [..., F] and full decoder [..., K] -> [..., D]."""
    arch = config.architecture
    data_dim = math.prod(image_shape)
    init = config.get("kernel_init", "lecun_normal")
    if arch == "mlp":
        hidden = tuple(config.hidden)
        return (
            MLP(hidden, config.activation, dtype=dtype, kernel_init=init),
            MLP(hidden[::-1], config.activation, data_dim, dtype, init),
        )
    if arch == "linear":
        return (
            MLP((), dtype=dtype, kernel_init=init),
            MLP((), output_dim=data_dim, dtype=dtype, kernel_init=init),
        )
    if arch == "conv":
        if len(image_shape) != 2 or image_shape[0] % 4 or image_shape[1] % 4:
            raise ValueError(
                f"architecture='conv' needs 2-D images with sides divisible by 4, "
                f"got image_shape={tuple(image_shape)}."
            )
        shape = tuple(image_shape)
        feats = config.conv_features
        return (
            ConvTrunk(shape, feats, config.activation, dtype),
            ConvHead(shape, feats, config.activation, dtype),
        )
    raise ValueError(f"Unknown architecture {arch!r}; choose one of {ARCHITECTURES}.")


def build_model(
    model_config: ml_collections.ConfigDict,
    *,
    likelihood: str,
    image_shape: Sequence[int],
    sigma: float | None = None,
) -> nn.Module:
    """Builds an ``Autoencoder`` or ``VAE`` from ``config.model`` for data of ``image_shape``."""
    dtype = jnp.dtype(model_config.dtype)
    encoder, decoder = _encoder_decoder(model_config, image_shape, dtype)
    if model_config.kind == "ae":
        return Autoencoder(
            encoder,
            decoder,
            model_config.latent_dim,
            code_activation=model_config.code_activation,
            dtype=dtype,
            kernel_init=model_config.get("kernel_init", "lecun_normal"),
        )
    if model_config.kind == "vae" and model_config.get("stochastic_layers", 1) == 2:
        from vae_jax.models import (
            hierarchical,  # lazy: hierarchical imports this module
        )

        return hierarchical.build(model_config, image_shape)
    if model_config.kind == "vae":
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"Unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}."
            )
        vae = VAE
        if model_config.get("posterior", "diagonal") == "full":
            from vae_jax.models import full_covariance  # lazy: it imports this module

            vae = full_covariance.FullCovarianceVAE
        return vae(encoder, decoder, model_config.latent_dim, likelihood, sigma, dtype,
                   kernel_init=model_config.get("kernel_init", "lecun_normal"))  # fmt: skip
    raise ValueError(
        f"Unknown model kind {model_config.kind!r}; choose one of {MODEL_KINDS}."
    )


def output_bias_from_data(train_x, clip: float = 1e-3) -> jnp.ndarray:
    """logit of the clipped training-set mean, the Bernoulli decoder's initial output
    bias (Burda et al. 2015; yburda/iwae ``get_train_bias_np``). train_x: [N, D] -> [D]."""
    mean = jnp.clip(
        jnp.mean(jnp.asarray(train_x, jnp.float32), axis=0), clip, 1.0 - clip
    )
    return jnp.log(mean) - jnp.log1p(-mean)


def with_output_bias(params, bias):
    """``params`` with the decoder's output bias (``decoder/output/bias``) set to ``bias`` [D]."""
    decoder = dict(params["params"]["decoder"])
    decoder["output"] = {**decoder["output"], "bias": jnp.asarray(bias, jnp.float32)}
    return {**params, "params": {**params["params"], "decoder": decoder}}
