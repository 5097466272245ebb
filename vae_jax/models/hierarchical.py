"""Two stochastic layers, as in Burda, Grosse & Salakhutdinov 2015 (IWAE), §5.

q(z1, z2 | x) = q(z1|x) q(z2|z1),  p(x, z1, z2) = p(z2) p(z1|z2) p(x|z1), with
p(z2) = N(0, I), Gaussian layers N(mean(h), diag(sigma(h)^2)), sigma = exp(linear)
(the authors' ``GaussianSampler``, yburda/iwae ``iwae.py``), tanh hidden units and a
Bernoulli p(x|z1). MNIST sizes: q: x-200-200-z1(100)-100-100-z2(50);
p: z2-100-100-z1-200-200-x. Registry name "hierarchical_vae" (``model.stochastic_layers=2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist
from vae_jax.models.layers import MLP


class GaussianLayer(nn.Module):
    """N(mean(h), diag(exp(2 log_sigma(h)))), h = tanh MLP(x); Burda et al. 2015, §5.

    [..., D_in] -> (mean [..., K], logvar [..., K]); logvar = 2 * (linear output), i.e.
    sigma = exp(linear) as in the authors' code.
    """

    hidden: Sequence[int]
    latent_dim: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = MLP(tuple(self.hidden), "tanh", dtype=self.dtype, name="trunk")(x)
        mean = nn.Dense(self.latent_dim, dtype=self.dtype, name="mean")(h)
        log_sigma = nn.Dense(self.latent_dim, dtype=self.dtype, name="log_sigma")(h)
        return mean.astype(jnp.float32), 2.0 * log_sigma.astype(jnp.float32)


class HierarchicalVAE(nn.Module):
    """Two-stochastic-layer VAE/IWAE model; Burda et al. 2015, §5 and App. (architecture).

    ``encode``: x [..., D] -> q(z1|x) (mean, logvar) [..., K1];
    ``encode2``: z1 [..., K1] -> q(z2|z1) [..., K2];
    ``prior1``: z2 [..., K2] -> p(z1|z2) (mean, logvar) [..., K1];
    ``decode``: z1 [..., K1] -> {"logits": [..., D]} (Bernoulli p(x|z1)).
    """

    data_dim: int
    hidden: Sequence[int] = (200, 200)  # x <-> z1
    hidden2: Sequence[int] = (100, 100)  # z1 <-> z2
    latent_dim: int = 100  # K1
    latent_dim2: int = 50  # K2
    dtype: Any = jnp.float32

    generative: ClassVar[bool] = True  # p(z2) p(z1|z2) can be sampled

    def setup(self):
        self.q1 = GaussianLayer(self.hidden, self.latent_dim, self.dtype)
        self.q2 = GaussianLayer(self.hidden2, self.latent_dim2, self.dtype)
        self.p1 = GaussianLayer(tuple(self.hidden2)[::-1], self.latent_dim, self.dtype)
        self.decoder = MLP(tuple(self.hidden)[::-1], "tanh", self.data_dim, self.dtype)

    def encode(self, x):
        return self.q1(x)

    def encode2(self, z1):
        return self.q2(z1)

    def prior1(self, z2):
        return self.p1(z2)

    def decode(self, z1):
        return {"logits": self.decoder(z1).astype(jnp.float32)}

    def __call__(self, x):
        """E[x | z1 = mean of q(z1|x)]: [..., D]; touches every layer (for ``init``)."""
        mean1, _ = self.q1(x)
        mean2, _ = self.q2(mean1)
        self.p1(mean2)
        return jax.nn.sigmoid(self.decode(mean1)["logits"])

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def log_weights(self, params, x: jax.Array, key: jax.Array, num_samples: int):
        """log w_s = log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1).

        (z1, z2)_s ~ q(z1|x) q(z2|z1), reparameterised; Burda et al. 2015, eq. 8 / §5.
        key1, key2 = split(key) draw eps1 [S, K1], eps2 [S, K2]; log q of each layer
        comes from its eps (``dist.diag_normal_logpdf_at_eps``), exact in float32 even
        when sigma << |mean|.
        x: [D] -> (log_w [S], log p(x|z1_s) [S]) in nats, S = num_samples.
        """
        key1, key2 = jax.random.split(key)
        mean1, logvar1 = self.apply(params, x, method="encode")  # [K1]
        z1, eps1 = dist.sample_diag_normal_and_eps(key1, mean1, logvar1, num_samples)
        mean2, logvar2 = self.apply(params, z1, method="encode2")  # [S, K2]
        eps2 = jax.random.normal(key2, mean2.shape, jnp.float32)
        z2 = mean2 + jnp.exp(0.5 * logvar2) * eps2  # [S, K2]
        prior_mean1, prior_logvar1 = self.apply(params, z2, method="prior1")  # [S, K1]
        logits = self.apply(params, z1, method="decode")["logits"]  # [S, D]
        log_px = jax.vmap(dist.bernoulli_logpmf, in_axes=(None, 0))(x, logits)
        log_pz1 = jax.vmap(dist.diag_normal_logpdf)(z1, prior_mean1, prior_logvar1)
        log_pz2 = jax.vmap(dist.std_normal_logpdf)(z2)
        log_q_at = dist.diag_normal_logpdf_at_eps
        log_qz1 = jax.vmap(log_q_at, in_axes=(0, None))(eps1, logvar1)
        log_qz2 = jax.vmap(log_q_at)(eps2, logvar2)
        return log_px + log_pz1 + log_pz2 - log_qz1 - log_qz2, log_px

    @nn.nowrap
    def elbo_terms(self, params, x: jax.Array, key: jax.Array, num_samples: int = 1):
        """(-(1/S) sum_s log p(x|z1_s), KL estimate (1/S) sum_s log q - log p(z)): no
        closed-form KL, so both by the S log-weights (Kingma & Welling 2013, eq. 6).
        x: [D] -> (scalar, scalar), nats."""
        log_w, log_px = self.log_weights(params, x, key, num_samples)  # [S], [S]
        return -jnp.mean(log_px), jnp.mean(log_px - log_w)

    @nn.nowrap
    def posterior_means(self, params, x: jax.Array, key: jax.Array) -> tuple:
        """(E_q[z1|x] [K1], E_q[z2|z1] [K2]) with z1 ~ q(z1|x): the quantities whose
        variance over x defines active units (yburda/iwae ``get_units_variances``).
        x: [D]."""
        mean1, logvar1 = self.apply(params, x, method="encode")
        z1 = dist.sample_diag_normal(key, mean1, logvar1)
        mean2, _ = self.apply(params, z1, method="encode2")
        return mean1, mean2

    @nn.nowrap
    def code(self, params, x: jax.Array) -> jax.Array:
        """E_q[z1|x]: [..., D] -> [..., K1]."""
        return self.apply(params, x, method="encode")[0]

    @nn.nowrap
    def posterior_logvar(self, params, x: jax.Array) -> jax.Array:
        """log Var_q[z1_k|x] of the layer ``code`` returns: [..., D] -> [..., K1]."""
        return self.apply(params, x, method="encode")[1]

    @nn.nowrap
    def decode_mean(self, params, z1: jax.Array) -> jax.Array:
        """E[x|z1] = sigmoid(logits): [..., K1] -> [..., D]."""
        return dist.decoder_mean(self.apply(params, z1, method="decode"))

    @nn.nowrap
    def reconstruct(self, params, x: jax.Array) -> jax.Array:
        """E[x | z1 = E_q[z1|x]]: [..., D] -> [..., D]."""
        return self.decode_mean(params, self.code(params, x))

    @nn.nowrap
    def sample_latents(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """z1 ~ p(z1) = E_{z2 ~ N(0, I)} p(z1|z2), ancestrally: [S, K1]."""
        key2, key1 = jax.random.split(key)
        z2 = jax.random.normal(key2, (num_samples, self.latent_dim2))
        mean1, logvar1 = self.apply(params, z2, method="prior1")  # [S, K1]
        eps = jax.random.normal(key1, mean1.shape, jnp.float32)
        return mean1 + jnp.exp(0.5 * logvar1) * eps

    @nn.nowrap
    def kl_per_dimension(self, params, xs: jax.Array) -> None:
        """None: the two-layer model's KL has no per-dimension closed form."""
        del params, xs


def build(
    model_config,
    *,
    image_shape: Sequence[int],
    likelihood: str = "bernoulli",
    sigma: float | None = None,
) -> HierarchicalVAE:
    """The two-layer model from ``config.model`` (hidden, hidden2, latent_dim,
    latent_dim2); Bernoulli p(x|z1) only."""
    del sigma
    if likelihood != "bernoulli":
        raise ValueError("The two-stochastic-layer VAE has a Bernoulli p(x|z1) only.")
    data_dim = 1
    for side in image_shape:
        data_dim *= side
    return HierarchicalVAE(
        data_dim=data_dim,
        hidden=tuple(model_config.hidden),
        hidden2=tuple(model_config.hidden2),
        latent_dim=model_config.latent_dim,
        latent_dim2=model_config.latent_dim2,
        dtype=jnp.dtype(model_config.dtype),
    )
