"""The VAE with a diagonal Gaussian posterior; Kingma & Welling 2013, §3 and App. C.

q(z|x) = N(mean(x), diag(exp(logvar(x)))), p(z) = N(0, I), p(x|z) Bernoulli or
Gaussian. ``VAEBase`` holds what every one-layer Gaussian-prior family shares (the
decoder, its likelihood, prior samples); ``full_covariance`` builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import distributions as dist
from vae_jax.models import layers

LIKELIHOODS = ("bernoulli", "gaussian")


class VAEBase(nn.Module):
    """Decoder p(x|z) and prior p(z) = N(0, I) of a one-stochastic-layer VAE.

    ``decode``: [..., K] -> dict of likelihood parameters, each [..., D]:
    ``{"logits"}`` (Bernoulli) or ``{"mean", "log_sigma"}`` (Gaussian). With
    ``sigma`` set the Gaussian scale is fixed; with ``sigma=None`` it is one learned
    scalar log sigma (shared over pixels), a parameter of the model. Subclasses add
    ``encode`` and the posterior-dependent protocol methods.

    ``logvar_range`` (lo, hi): the encoder's log-variance clipped to [lo, hi]
    (``clip_logvar``), the hardtanh(-6, 2) of Tomczak & Welling 2018's code
    (jmtomczak/vae_vampprior ``models/VAE.py``, ``q_z_logvar``); None = unclipped.
    Applied by ``VAE.encode`` and ``FlowVAE.encode``; ``FullCovarianceVAE`` rejects it.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    likelihood: str = "bernoulli"
    sigma: float | None = None
    dtype: Any = jnp.float32
    kernel_init: str = "lecun_normal"
    logvar_range: tuple[float, float] | None = None

    generative: ClassVar[bool] = True  # p(z) can be sampled

    def setup(self):
        init = layers.get_kernel_init(self.kernel_init)
        self.to_mean = nn.Dense(self.latent_dim, dtype=self.dtype, kernel_init=init)
        self.to_logvar = nn.Dense(self.latent_dim, dtype=self.dtype, kernel_init=init)
        if self.likelihood == "gaussian" and self.sigma is None:
            self.log_sigma = self.param("log_sigma", nn.initializers.zeros, ())

    def decode(self, z):
        out = self.decoder(z).astype(jnp.float32)
        if self.likelihood == "bernoulli":
            return {"logits": out}
        if self.sigma is None:
            log_sigma = self.log_sigma
        else:
            log_sigma = jnp.asarray(math.log(self.sigma), jnp.float32)
        return {"mean": out, "log_sigma": jnp.broadcast_to(log_sigma, out.shape)}

    def clip_logvar(self, logvar):
        """hardtanh_[lo, hi](logvar) for ``logvar_range`` (lo, hi): clipped values,
        zero gradient outside [lo, hi]; unchanged when it is None. [..., K]."""
        if self.logvar_range is None:
            return logvar
        lo, hi = self.logvar_range
        return jnp.clip(logvar, lo, hi)

    def __call__(self, x):
        mean = self.encode(x)[0]
        return self.decode(mean)

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def code(self, params, x: jax.Array) -> jax.Array:
        """The posterior mean E_q[z|x]: [..., D] -> [..., K]."""
        return self.apply(params, x, method="encode")[0]

    @nn.nowrap
    def decode_mean(self, params, z: jax.Array) -> jax.Array:
        """E[x|z]: [..., K] -> [..., D]."""
        return dist.decoder_mean(self.apply(params, z, method="decode"))

    @nn.nowrap
    def reconstruct(self, params, x: jax.Array) -> jax.Array:
        """E[x | z = E_q[z|x]]: [..., D] -> [..., D]."""
        return self.decode_mean(params, self.code(params, x))

    @nn.nowrap
    def sample_latents(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """z ~ p(z) = N(0, I): [S, K]."""
        del params
        return jax.random.normal(key, (num_samples, self.latent_dim))

    @nn.nowrap
    def posterior_means(self, params, x: jax.Array, key: jax.Array) -> tuple:
        """(E_q[z|x] [K],): the quantity whose variance over x defines active units
        (Burda et al. 2015, §5.2). x: [D]."""
        del key
        return (self.code(params, x),)

    @nn.nowrap
    def log_px(self, params, x: jax.Array, z: jax.Array) -> jax.Array:
        """log p(x|z_s) for each of S codes. x: [D]; z: [S, K] -> [S]."""
        decoded = self.apply(params, z, method="decode")  # each [S, D]
        return jax.vmap(dist.decoder_log_likelihood, in_axes=(None, 0))(x, decoded)

    @nn.nowrap
    def kl_per_dimension(self, params, xs: jax.Array) -> jax.Array | None:
        """KL(q(z_j|x) || N(0, 1)) per example and latent dim, where q factorises:
        xs: [B, D] -> [B, K]; None where it does not."""
        del params, xs
        return None

    @nn.nowrap
    def posterior_param_mask(self, params):
        """True on q(z|x)'s parameters phi, False on p(x|z)'s theta (the ``decoder``
        and a learned ``log_sigma``): a pytree of bools shaped like ``params``, for
        objectives that treat them apart (PIWAE, Rainforth et al. 2018; DReG,
        Tucker et al. 2019, eq. 7)."""

        def is_phi(path, _):
            return path[1].key not in ("decoder", "log_sigma")  # path[0]: "params"

        return jax.tree_util.tree_map_with_path(is_phi, params)


class VAE(VAEBase):
    """q(z|x) = N(mean(x), diag(exp(logvar(x)))); Kingma & Welling 2013, §3, App. C.

    ``encode``: [..., D] -> (mean [..., K], logvar [..., K]), logvar clipped to
    ``logvar_range`` if set; ``decode`` as ``VAEBase``.
    """

    def encode(self, x):
        h = self.encoder(x)
        mean = self.to_mean(h).astype(jnp.float32)
        return mean, self.clip_logvar(self.to_logvar(h).astype(jnp.float32))

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def elbo_terms(self, params, x: jax.Array, key: jax.Array, num_samples: int = 1):
        """(-E_q[log p(x|z)] by S reparameterised draws, KL(q(z|x) || p(z)) in closed
        form): Kingma & Welling 2013, eq. 10 and App. B. x: [D] -> (scalar, scalar)."""
        return self.elbo_terms_and_posterior(params, x, key, num_samples)[0]

    @nn.nowrap
    def elbo_terms_and_posterior(
        self, params, x: jax.Array, key: jax.Array, num_samples: int = 1
    ):
        """(``elbo_terms``, (z [S, K], mean [K], logvar [K])): the same terms and the
        draws z_s = mean + exp(logvar / 2) eps_s they came from, with q's parameters,
        for batch terms on q (``batch_penalty.with_code_penalty``) that share this
        encoder pass. x: [D]."""
        mean, logvar = self.apply(params, x, method="encode")  # [K], [K]
        z = dist.sample_diag_normal(key, mean, logvar, num_samples)  # [S, K]
        recon = -jnp.mean(self.log_px(params, x, z))
        kl = dist.kl_diag_to_std_normal(mean, logvar)
        return (recon, kl), (z, mean, logvar)

    @nn.nowrap
    def log_weights(
        self,
        params,
        x: jax.Array,
        key: jax.Array,
        num_samples: int,
        stop_q_grad: bool = False,
    ):
        """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s ~ q(z|x).

        Burda et al. 2015, eq. 8; z drawn as ``elbo_terms`` draws it for the same key.
        log q(z_s|x) from the drawn eps_s (``dist.diag_normal_logpdf_at_eps``): exact
        in float32 even when sigma << |mean|.

        ``stop_q_grad=True``: log q(z_s|x) sees mean and logvar under stop_gradient
        while z_s = mean + sigma eps_s keeps its path to them (Tucker et al. 2019,
        eqs. 5-6, the doubly-reparameterised surrogate): same values, gradients
        without the score-function term.
        x: [D] -> (log_w [S], log p(x|z_s) [S]).
        """
        mean, logvar = self.apply(params, x, method="encode")  # [K], [K]
        z, eps = dist.sample_diag_normal_and_eps(key, mean, logvar, num_samples)
        log_px = self.log_px(params, x, z)  # z, eps: [S, K]
        log_pz = jax.vmap(dist.std_normal_logpdf)(z)
        eps_q, logvar_q = eps, logvar
        if stop_q_grad:
            logvar_q = jax.lax.stop_gradient(logvar)
            mean_q = jax.lax.stop_gradient(mean)
            eps_live = (z - mean_q[None]) * jnp.exp(-0.5 * logvar_q)[None]  # [S, K]
            # value eps (exact, no z - mean cancellation), gradient d eps_live / dz
            eps_q = eps + (eps_live - jax.lax.stop_gradient(eps_live))
        log_qz = jax.vmap(dist.diag_normal_logpdf_at_eps, in_axes=(0, None))(
            eps_q, logvar_q
        )
        return log_px + log_pz - log_qz, log_px

    @nn.nowrap
    def posterior_logvar(self, params, x: jax.Array) -> jax.Array:
        """log Var_q[z_k|x], the encoder's logvar: [..., D] -> [..., K]."""
        return self.apply(params, x, method="encode")[1]

    @nn.nowrap
    def gaussian_posterior(self, params, x: jax.Array):
        """q(z|x) as (mean [K], scale_tril [K, K] = diag(exp(logvar / 2))). x: [D]."""
        mean, logvar = self.apply(params, x, method="encode")
        return mean, jnp.diag(jnp.exp(0.5 * logvar))

    @nn.nowrap
    def kl_per_dimension(self, params, xs: jax.Array) -> jax.Array:
        """KL(q(z_j|x) || N(0, 1)) for each example and latent dim j (Kingma & Welling
        2013, App. B, term by term). xs: [B, D] -> [B, K]."""
        mean, logvar = self.apply(params, xs, method="encode")  # [B, K] each
        kl_one = jax.vmap(jax.vmap(dist.kl_diag_to_std_normal))
        return kl_one(mean[..., None], logvar[..., None])  # [B, K]


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape: Sequence[int],
    likelihood: str = "bernoulli",
    sigma: float | None = None,
    vae_class: type[VAEBase] = VAE,
) -> VAEBase:
    """A one-stochastic-layer VAE of ``config.model`` (``vae_class``: the posterior
    family) with a Bernoulli or Gaussian likelihood; ``model_config.logvar_range``
    (None or (lo, hi)) becomes the model's ``logvar_range``."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"Unknown likelihood {likelihood!r}; choose one of {LIKELIHOODS}."
        )
    dtype = jnp.dtype(model_config.dtype)
    encoder, decoder = layers.encoder_decoder(model_config, image_shape, dtype)
    logvar_range = model_config.logvar_range
    if logvar_range is not None:
        lo, hi = logvar_range  # a JSON-restored config holds a tuple or list
        logvar_range = (float(lo), float(hi))
    return vae_class(
        encoder,
        decoder,
        model_config.latent_dim,
        likelihood,
        sigma,
        dtype,
        kernel_init=model_config.kernel_init,
        logvar_range=logvar_range,
    )
