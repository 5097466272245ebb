"""Regularised autoencoder (RAE); Ghosh et al. 2020, "From Variational to Deterministic
Autoencoders" (ICLR), eq. 11 and §2.2.

A deterministic autoencoder z = f(x), x_hat = g(z) (``autoencoder.Autoencoder``:
same modules, parameters and protocol) trained by

    L_RAE = ||x - g(f(x))||^2 + beta ||f(x)||^2 / 2 + lambda L_REG,

L_REG a smoothness term on the decoder g: ||theta||^2 of its weights ("rae_l2") or
||dg/dz||^2 at z = f(x) ("rae_gp"); ``rae_objectives`` holds the maths. The family
adds ``decoder_kernels`` to the autoencoder's protocol (the theta of ||theta||^2). It
has no prior p(z) (``generative`` is False); it becomes generative with a density
fitted to its training codes after training (Ghosh et al. 2020, §4, "ex-post density
estimation": ``studies.expost``).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax.models import autoencoder, layers


class RegularizedAutoencoder(autoencoder.Autoencoder):
    """``autoencoder.Autoencoder`` with ``decoder_kernels``; Ghosh et al. 2020, §2.2.

    ``encode``: [..., D] -> [..., K]; ``decode``: [..., K] -> [..., D].
    """

    @nn.nowrap
    def decoder_kernels(self, params) -> list[jax.Array]:
        """The kernels of the decoder g (dense weight matrices [F_in, F_out], conv
        filters [h, w, C_in, C_out]), biases excluded: the theta of the Tikhonov term
        ||theta||_2^2 (Ghosh et al. 2020, §2.2; the authors' Keras code regularises
        the decoder's kernels, not its biases). The encoder and the code layer are
        not in it."""
        decoder = params["params"]["decoder"]
        return [
            leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(decoder)
            if path[-1].key == "kernel"
        ]


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape: Sequence[int],
    likelihood: str | None = None,
    sigma: float | None = None,
) -> RegularizedAutoencoder:
    """The RAE of ``config.model`` (architecture, latent_dim, code_activation), built
    as ``autoencoder.build`` builds the plain autoencoder."""
    del likelihood, sigma  # scored by squared error
    dtype = jnp.dtype(model_config.dtype)
    encoder, decoder = layers.encoder_decoder(model_config, image_shape, dtype)
    return RegularizedAutoencoder(
        encoder,
        decoder,
        model_config.latent_dim,
        code_activation=model_config.code_activation,
        dtype=dtype,
        kernel_init=model_config.kernel_init,
    )
