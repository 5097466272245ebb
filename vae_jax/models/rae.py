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

import functools

import flax.linen as nn
import jax

from vae_jax.models import autoencoder


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


build = functools.partial(autoencoder.build, ae_class=RegularizedAutoencoder)
