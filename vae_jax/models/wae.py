"""Wasserstein auto-encoder: a deterministic autoencoder with a prior to sample.

Tolstikhin, Bousquet, Gelly & Schoelkopf 2018, "Wasserstein Auto-Encoders", §2-3:
encoder z = f(x) (their Q(Z|X) deterministic), decoder x_hat = G(z), trained so that
the aggregate posterior Q_Z of the codes matches the prior P_Z = N(0, I)
(``mmd_objectives.wae_mmd_for``, Algorithm 2); then G(z), z ~ P_Z, is a generative
model. The network is ``autoencoder.Autoencoder``'s; the family adds the prior.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import flax.linen as nn
import jax

from vae_jax.models import autoencoder


class WAE(autoencoder.Autoencoder):
    """``Autoencoder`` (``encode``: [..., D] -> [..., K], ``decode``: [..., K] ->
    [..., D]) with the prior p(z) = N(0, I_K) of Tolstikhin et al. 2018, §4."""

    generative: ClassVar[bool] = True  # G(z), z ~ p(z), is the model's sample

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def sample_latents(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """z ~ p(z) = N(0, I): [S, K]."""
        del params
        return jax.random.normal(key, (num_samples, self.latent_dim))


build = functools.partial(autoencoder.build, ae_class=WAE)
