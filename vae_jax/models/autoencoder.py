"""Deterministic autoencoder: code z = f(x), reconstruction x_hat = g(z).

Trained by mean squared error (plain, denoising or sparse: ``objectives``). The model
protocol (``vae_jax.models``) is the same as the VAEs' minus the likelihood terms:
``code``, ``decode_mean``, ``reconstruct``; an AE has no prior to sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.models import layers


class Autoencoder(nn.Module):
    """Deterministic code z = f(x) and reconstruction x_hat = g(z).

    ``encode``: [..., D] -> [..., K]; ``decode``: [..., K] -> [..., D] (the
    reconstruction, scored by mean squared error). ``code_activation`` = "sigmoid"
    gives the sparse AE's code layer; "linear" with no hidden layers gives the linear
    AE of PCA.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    code_activation: str = "linear"
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"

    generative: ClassVar[bool] = False  # no prior p(z) to sample from

    def setup(self):
        init = layers.get_kernel_init(self.kernel_init)
        self.to_code = nn.Dense(self.latent_dim, dtype=self.dtype, kernel_init=init)

    def encode(self, x):
        code = self.to_code(self.encoder(x))
        return layers.get_activation(self.code_activation)(code).astype(jnp.float32)

    def decode(self, z):
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, x):
        return self.decode(self.encode(x))

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def code(self, params, x: jax.Array) -> jax.Array:
        """z = f(x): [..., D] -> [..., K]."""
        return self.apply(params, x, method="encode")

    @nn.nowrap
    def decode_mean(self, params, z: jax.Array) -> jax.Array:
        """g(z): [..., K] -> [..., D]."""
        return self.apply(params, z, method="decode")

    @nn.nowrap
    def reconstruct(self, params, x: jax.Array) -> jax.Array:
        """g(f(x)): [..., D] -> [..., D]."""
        return self.apply(params, x)


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape: Sequence[int],
    likelihood: str | None = None,
    sigma: float | None = None,
    ae_class: type[Autoencoder] = Autoencoder,
) -> Autoencoder:
    """The autoencoder of ``config.model`` (architecture, latent_dim, code_activation);
    ``ae_class``: the family (a subclass adding its maths, e.g. ``wae.WAE``)."""
    del likelihood, sigma  # scored by squared error
    dtype = jnp.dtype(model_config.dtype)
    encoder, decoder = layers.encoder_decoder(model_config, image_shape, dtype)
    return ae_class(
        encoder,
        decoder,
        model_config.latent_dim,
        code_activation=model_config.code_activation,
        dtype=dtype,
        kernel_init=model_config.kernel_init,
    )
