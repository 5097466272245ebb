"""VQ-VAE: an autoencoder with a discrete code; van den Oord, Vinyals & Kavukcuoglu
2017, "Neural Discrete Representation Learning", §3.

The encoder (the MLP or conv trunk of ``layers``, then a dense layer) gives N =
``model.num_latents`` code vectors z_e(x) [N, C], C = ``model.code_dim``; each is
replaced by its nearest entry of a learned codebook e [M, C], M =
``model.codebook_size`` (``vector_quantize.quantize``, eq. 1-2); the decoder g reads
the N quantised vectors z_q(x) flattened, [N * C]. Gradients pass the quantiser
straight through (§3.2). A dense layer, not a spatial map, gives the N vectors, so the
MLP and conv trunks share one code shape: the paper's conv VQ-VAE quantises each cell
of a feature map instead (N = H' W' vectors), which this layout would express as a
different encoder. Trained by ``vq_objectives`` (eq. 3). With ``count_probe`` (the
EMA codebook of App. A.1) it holds one more parameter, ``count_probe`` p [M], always
zero, through whose gradient the objective hands the entries' counts to the optimizer
(``vector_quantize.statistics_carrier``).

Protocol: ``code`` is z_q(x) flattened, [..., N * C] (continuous, so the ex-post
densities of ``studies.expost`` apply to it); ``code_indices`` the indices k [..., N];
``decode_mean`` g(z) of any z [..., N * C] (not snapped to the codebook: compose with
``quantize_code`` to do that); ``reconstruct`` g(z_q(x)). ``generative`` is False:
the paper samples through a learned prior over the indices (PixelCNN), not built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import vector_quantize as vq
from vae_jax.models import layers


class VQVAE(nn.Module):
    """Encoder z_e: [..., D] -> [..., N, C]; codebook e: [M, C]; decoder g: [..., N * C]
    -> [..., D]. The codebook starts as U(-sqrt(3 / C), sqrt(3 / C)) draws (E||e_j||^2
    = 1; Sonnet's ``VectorQuantizer`` default, variance scaling by fan-in C)."""

    encoder: nn.Module
    decoder: nn.Module
    num_latents: int  # N
    code_dim: int  # C
    codebook_size: int  # M
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"
    count_probe: bool = False  # + the zero parameter p [M] (EMA codebook updates)

    generative: ClassVar[bool] = False  # samples need a prior over the indices

    def setup(self):
        init = layers.get_kernel_init(self.kernel_init)
        self.to_code = nn.Dense(
            self.num_latents * self.code_dim, dtype=self.dtype, kernel_init=init
        )
        codebook_init = nn.initializers.variance_scaling(
            1.0, "fan_in", "uniform", in_axis=-1, out_axis=-2
        )
        self.codebook = self.param(
            vq.CODEBOOK, codebook_init, (self.codebook_size, self.code_dim)
        )
        if self.count_probe:
            zeros = nn.initializers.zeros_init()
            self.probe = self.param(vq.COUNT_PROBE, zeros, (self.codebook_size,))

    def encode(self, x):
        """z_e(x): [..., D] -> [..., N, C]."""
        h = self.to_code(self.encoder(x)).astype(jnp.float32)
        return h.reshape(*h.shape[:-1], self.num_latents, self.code_dim)

    def decode(self, z):
        """g(z): [..., N * C] -> [..., D]."""
        return self.decoder(z).astype(jnp.float32)

    def get_codebook(self):
        return self.codebook

    def get_count_probe(self):
        return self.probe

    def quantized(self, x):
        """(z_e [..., N, C], z_q [..., N, C], k [..., N], g(z_e + sg[z_q - z_e]) [..., D]):
        the forward pass of training, the decoder fed through the straight-through
        estimator (§3.2)."""
        z_e = self.encode(x)
        z_q, indices = vq.quantize(z_e, self.codebook)
        z_st = vq.straight_through(z_e, z_q)
        x_hat = self.decode(z_st.reshape(*z_st.shape[:-2], -1))
        return z_e, z_q, indices, x_hat

    def __call__(self, x):
        return self.quantized(x)[-1]

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def code_vectors(self, params, x: jax.Array) -> jax.Array:
        """z_e(x), before quantisation: [..., D] -> [..., N, C]."""
        return self.apply(params, x, method="encode")

    @nn.nowrap
    def codebook_of(self, params) -> jax.Array:
        """The codebook e: [M, C]."""
        return self.apply(params, method="get_codebook")

    @nn.nowrap
    def count_probe_of(self, params) -> jax.Array:
        """The zero parameter p: [M] (``count_probe=True`` only)."""
        return self.apply(params, method="get_count_probe")

    @nn.nowrap
    def forward(self, params, x: jax.Array):
        """``quantized``: (z_e, z_q, k, x_hat) of x [..., D] (``vq_objectives``)."""
        return self.apply(params, x, method="quantized")

    @nn.nowrap
    def code_indices(self, params, x: jax.Array) -> jax.Array:
        """k(x), the nearest codebook entry of each code vector: [..., D] -> int
        [..., N]."""
        _, indices = vq.quantize(self.code_vectors(params, x), self.codebook_of(params))
        return indices

    @nn.nowrap
    def code(self, params, x: jax.Array) -> jax.Array:
        """z_q(x) flattened: [..., D] -> [..., N * C]."""
        z_q, _ = vq.quantize(self.code_vectors(params, x), self.codebook_of(params))
        return z_q.reshape(*z_q.shape[:-2], -1)

    @nn.nowrap
    def quantize_code(self, params, z: jax.Array) -> jax.Array:
        """z [..., N * C] with each of its N vectors snapped to the nearest codebook
        entry: [..., N * C] -> [..., N * C]."""
        vectors = z.reshape(*z.shape[:-1], self.num_latents, self.code_dim)
        z_q, _ = vq.quantize(vectors, self.codebook_of(params))
        return z_q.reshape(z.shape)

    @nn.nowrap
    def decode_mean(self, params, z: jax.Array) -> jax.Array:
        """g(z): [..., N * C] -> [..., D]."""
        return self.apply(params, z, method="decode")

    @nn.nowrap
    def reconstruct(self, params, x: jax.Array) -> jax.Array:
        """g(z_q(x)): [..., D] -> [..., D]."""
        return self.apply(params, x)


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape: Sequence[int],
    likelihood: str | None = None,
    sigma: float | None = None,
) -> VQVAE:
    """The VQ-VAE of ``config.model``: architecture (its trunk and decoder),
    num_latents N, code_dim C, codebook_size M; ``latent_dim`` is unused (K = N C)."""
    del likelihood, sigma  # scored by squared error
    dtype = jnp.dtype(model_config.dtype)
    encoder, decoder = layers.encoder_decoder(model_config, image_shape, dtype)
    return VQVAE(
        encoder,
        decoder,
        model_config.num_latents,
        model_config.code_dim,
        model_config.codebook_size,
        dtype=dtype,
        kernel_init=model_config.kernel_init,
    )
