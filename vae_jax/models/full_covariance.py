"""A VAE whose posterior has a full covariance: q(z|x) = N(mean(x), L(x) L(x)^T).

The encoder outputs the mean, log diag L (as ``logvar`` = 2 log L_kk, the diagonal
VAE's head) and the strict lower triangle of L (``distributions.scale_tril_from_params``);
z = mean + L eps (Kingma & Welling 2013, §2.4) and KL(q || p(z)) is the closed form
of Doersch 2016, eq. 7 (``distributions.kl_full_normals`` at p(z) = N(0, I)). The
off-diagonal head starts at zero: at initialisation the model is the diagonal VAE.
Selected by ``config.model.posterior = "full"`` (registry name "full_covariance_vae").
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions as dist
from vae_jax.models import vae


def scale_tril(log_diag: jax.Array, lower: jax.Array) -> jax.Array:
    """``dist.scale_tril_from_params`` over leading dims.

    log_diag: [..., K]; lower: [..., K (K - 1) / 2]. Returns L: [..., K, K].
    """
    k, lead = log_diag.shape[-1], log_diag.shape[:-1]
    flat = jax.vmap(dist.scale_tril_from_params)(
        log_diag.reshape(-1, k), lower.reshape(-1, lower.shape[-1])
    )  # [prod(lead), K, K]
    return flat.reshape(*lead, k, k)


class FullCovarianceVAE(vae.VAEBase):
    """q(z|x) = N(mean(x), L(x) L(x)^T), L lower-triangular with positive diagonal.

    ``encode``: [..., D] -> (mean [..., K], scale_tril [..., K, K]); ``decode`` as
    ``vae.VAEBase``. K (K - 1) / 2 extra encoder outputs (zero-initialised).
    """

    def setup(self):
        super().setup()
        if self.logvar_range is not None:  # L's diagonal is not a variance of z_k
            raise ValueError(
                "FullCovarianceVAE does not clip its scale: logvar_range must be "
                f"None, got {self.logvar_range!r} (model.posterior='full')."
            )
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

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def elbo_terms(self, params, x: jax.Array, key: jax.Array, num_samples: int = 1):
        """(-E_q[log p(x|z)] with z = mean + L eps, S draws; KL(q(z|x) || p(z)) in
        closed form, Doersch 2016, eq. 7). x: [D] -> (scalar, scalar), nats."""
        mean, tril = self.apply(params, x, method="encode")  # [K], [K, K]
        z = dist.sample_full_normal(key, mean, tril, num_samples)  # [S, K]
        recon = -jnp.mean(self.log_px(params, x, z))
        return recon, dist.kl_full_normal_to_std_normal(mean, tril)

    @nn.nowrap
    def log_weights(self, params, x: jax.Array, key: jax.Array, num_samples: int):
        """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s = mean + L eps_s.

        Burda et al. 2015, eq. 8. log q(z_s|x) = log N(eps_s; 0, I) - sum_k log L_kk
        (change of variables: no triangular solve); the same eps, hence z, as
        ``dist.sample_full_normal`` and ``elbo_terms`` for the same key.
        x: [D] -> (log_w [S], log p(x|z_s) [S]).
        """
        mean, tril = self.apply(params, x, method="encode")  # [K], [K, K]
        eps = jax.random.normal(key, (num_samples, *mean.shape), jnp.float32)  # [S, K]
        z = mean[None] + eps @ tril.T  # [S, K]
        log_px = self.log_px(params, x, z)
        log_pz = jax.vmap(dist.std_normal_logpdf)(z)
        log_det = jnp.sum(jnp.log(jnp.diagonal(tril)))
        log_qz = jax.vmap(dist.std_normal_logpdf)(eps) - log_det
        return log_px + log_pz - log_qz, log_px

    @nn.nowrap
    def posterior_logvar(self, params, x: jax.Array) -> jax.Array:
        """log Var_q[z_k|x] = log (L L^T)_kk = log sum_j L_kj^2, the marginal
        log-variances (the correlations are dropped): [..., D] -> [..., K]."""
        _, tril = self.apply(params, x, method="encode")  # [..., K, K]
        return jnp.log(jnp.sum(jnp.square(tril), axis=-1))

    @nn.nowrap
    def gaussian_posterior(self, params, x: jax.Array):
        """q(z|x) as (mean [K], scale_tril [K, K]). x: [D]."""
        return self.apply(params, x, method="encode")


def posterior_correlations(model: FullCovarianceVAE, params, x: jax.Array) -> jax.Array:
    """Corr(q(z|x)) = S_ij / sqrt(S_ii S_jj), S = L L^T. x: [N, D] -> [N, K, K]."""
    _, tril = model.apply(params, x, method="encode")  # [N, K, K]
    cov = tril @ jnp.swapaxes(tril, -1, -2)
    std = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))  # [N, K]
    return cov / (std[:, :, None] * std[:, None, :])
