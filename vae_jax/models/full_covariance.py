"""A VAE whose posterior has a full covariance: q(z|x) = N(mean(x), L(x) L(x)^T).

The encoder outputs the mean, log diag L (as ``logvar`` = 2 log L_kk, the diagonal
VAE's head) and the strict lower triangle of L (``distributions.scale_tril_from_params``);
z = mean + L eps (Kingma & Welling 2013, §2.4) and KL(q || p(z)) is the closed form
of Doersch 2016, eq. 7 (``distributions.kl_full_normals`` at p(z) = N(0, I)). The
off-diagonal head starts at zero: at initialisation the model is the diagonal VAE.
Selected by ``config.model.posterior = "full"``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist
from vae_jax import models, objectives


def scale_tril(log_diag: jax.Array, lower: jax.Array) -> jax.Array:
    """``dist.scale_tril_from_params`` over leading dims.

    log_diag: [..., K]; lower: [..., K (K - 1) / 2]. Returns L: [..., K, K].
    """
    k, lead = log_diag.shape[-1], log_diag.shape[:-1]
    flat = jax.vmap(dist.scale_tril_from_params)(
        log_diag.reshape(-1, k), lower.reshape(-1, lower.shape[-1])
    )  # [prod(lead), K, K]
    return flat.reshape(*lead, k, k)


class FullCovarianceVAE(models.VAE):
    """q(z|x) = N(mean(x), L(x) L(x)^T), L lower-triangular with positive diagonal.

    ``encode``: [..., D] -> (mean [..., K], scale_tril [..., K, K]); ``decode`` as
    ``models.VAE``. K (K - 1) / 2 extra encoder outputs (zero-initialised).
    """

    def setup(self):
        super().setup()
        num_lower = self.latent_dim * (self.latent_dim - 1) // 2
        zeros = nn.initializers.zeros
        self.to_lower = nn.Dense(
            num_lower, dtype=self.dtype, kernel_init=zeros, bias_init=zeros
        )

    def encode(self, x):
        h = self.encoder(x)
        mean = self.to_mean(h).astype(jnp.float32)
        log_diag = 0.5 * self.to_logvar(h).astype(jnp.float32)
        return mean, scale_tril(log_diag, self.to_lower(h).astype(jnp.float32))


def kl_to_prior(mean: jax.Array, scale_tril: jax.Array) -> jax.Array:
    """KL(N(mean, L L^T) || N(0, I)) = 1/2 [||L||_F^2 + ||mean||^2 - K] - sum log L_kk.

    The general closed form ``dist.kl_full_normals`` (Doersch 2016, eq. 7) at mu1 = 0,
    S1 = I (tests/test_theory.py checks they agree): no triangular solves, which on
    CPU made a training step 5x slower. mean: [K]; scale_tril: [K, K]. Returns nats.
    """
    return dist.kl_full_normal_to_std_normal(mean, scale_tril)


def negative_elbo(params, x, key, hparams, *, model: nn.Module, num_samples: int = 1):
    """-ELBO = -E_q[log p(x|z)] + beta KL(q(z|x) || p(z)), z = mean + L eps, S draws.

    Kingma & Welling 2013, eq. 10 with a full-covariance q (closed-form KL, Doersch
    2016, eq. 7). x: [D] -> (scalar, {"recon", "kl", "elbo"}), nats per example.
    """
    mean, tril = model.apply(params, x, method="encode")  # [K], [K, K]
    z = dist.sample_full_normal(key, mean, tril, num_samples)  # [S, K]
    decoded = model.apply(params, z, method="decode")  # each [S, D]
    log_px = jax.vmap(objectives.log_likelihood, in_axes=(None, 0))(x, decoded)
    recon = -jnp.mean(log_px)
    kl = kl_to_prior(mean, tril)
    return recon + hparams["beta"] * kl, {
        "recon": recon,
        "kl": kl,
        "elbo": -(recon + kl),
    }


def log_weights(params, x, key, num_samples: int, *, model: nn.Module):
    """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s = mean + L eps_s.

    Burda et al. 2015, eq. 8. log q(z_s|x) = log N(eps_s; 0, I) - sum_k log L_kk
    (change of variables: no triangular solve); the same eps, hence z, as
    ``dist.sample_full_normal`` and ``negative_elbo`` for the same key.
    x: [D] -> (log_w [S], log p(x|z_s) [S]).
    """
    mean, tril = model.apply(params, x, method="encode")  # [K], [K, K]
    eps = jax.random.normal(key, (num_samples, *mean.shape), jnp.float32)  # [S, K]
    z = mean[None] + eps @ tril.T  # [S, K]
    decoded = model.apply(params, z, method="decode")
    log_px = jax.vmap(objectives.log_likelihood, in_axes=(None, 0))(x, decoded)
    log_pz = jax.vmap(dist.std_normal_logpdf)(z)
    log_det = jnp.sum(jnp.log(jnp.diagonal(tril)))
    log_qz = jax.vmap(dist.std_normal_logpdf)(eps) - log_det
    return log_px + log_pz - log_qz, log_px


def posterior_correlations(model: FullCovarianceVAE, params, x: jax.Array) -> jax.Array:
    """Corr(q(z|x)) = S_ij / sqrt(S_ii S_jj), S = L L^T. x: [N, D] -> [N, K, K]."""
    _, tril = model.apply(params, x, method="encode")  # [N, K, K]
    cov = tril @ jnp.swapaxes(tril, -1, -2)
    std = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))  # [N, K]
    return cov / (std[:, :, None] * std[:, None, :])
