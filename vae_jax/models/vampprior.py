"""The VAE with a VampPrior: p(z) = (1/C) sum_c q(z | u_c); Tomczak & Welling 2018.

The "variational mixture of posteriors" prior of Tomczak & Welling 2018 (AISTATS,
§ "The variational mixture of posteriors prior"): a uniform mixture of the encoder's
own Gaussian posterior evaluated at C learned pseudo-inputs u_c [C, D]. Encoder,
decoder and q(z|x) = N(mean(x), diag(exp(logvar(x)))) are ``vae.VAE``'s.

Parameterisation as in the authors' code (jmtomczak/vae_vampprior, ``Model.
add_pseudoinputs`` and ``VAE.log_p_z``):
  * u = hardtanh_{[0, 1]}(W), W [C, D] a bias-free linear "means" layer applied to
    the C x C identity (so u_c is row c of W, clipped to the data range [0, 1]); W is
    stored directly (parameter ``pseudo_inputs``): ``eye(C) @ W = W`` without the
    C x C x D product.
  * W_ij ~ N(0.05, 0.01^2) at initialisation (their MNIST loaders' setting of
    ``pseudoinputs_mean`` / ``pseudoinputs_std``); C = 500 for MNIST
    (``number_components``, ``config.model.num_pseudo_inputs``).
  * log p(z) = logsumexp_c [log N(z; mean(u_c), diag(exp(logvar(u_c)))) - log C],
    one component per pseudo-input, the max subtracted before exponentiating.
  * Encoder and decoder are the config's, as for ``vae``. Their gated 300-300
    trunks, He init and logvar hardtanh(-6, 2) are the settings
    ``model.activation="gated"``, ``kernel_init="he_normal_untruncated"`` and
    ``logvar_range=(-6, 2)`` (``configs/vamp_paper_mnist.py``); the clipping acts
    in ``encode``, so on the prior's components q(z | u_c) too, as in their code.
Not followed: their option to initialise u from training images
(``use_training_data_init``) and their sampler (one draw from each of the first N
components); ``sample_latents`` draws from the mixture itself.

KL(q(z|x) || p(z)) has no closed form; ``elbo_terms`` estimates it from the same S
draws that give the reconstruction term (Kingma & Welling 2013, eq. 6, the generic
SGVB estimator A). C is a shape: a sweep over it runs in process mode.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from jax.scipy.special import logsumexp

from vae_jax import distributions as dist
from vae_jax.models import vae

# The authors' initialisation of the pseudo-input layer W for MNIST: N(mean, std^2).
PSEUDO_INPUT_INIT_MEAN = 0.05
PSEUDO_INPUT_INIT_STD = 0.01


def pseudo_input_init(key, shape, dtype=jnp.float32):
    """W_ij ~ N(0.05, 0.01^2), the authors' MNIST initialisation. shape: (C, D)."""
    noise = jax.random.normal(key, shape, dtype)
    return PSEUDO_INPUT_INIT_MEAN + PSEUDO_INPUT_INIT_STD * noise


def mixture_logpdf(z: jax.Array, means: jax.Array, logvars: jax.Array) -> jax.Array:
    """log (1/C) sum_c N(z; means_c, diag(exp(logvars_c))) by logsumexp over c.

    Each component's log-density is computed exactly, -(1/2) [sum_k (z_k - mean_ck)^2
    exp(-logvar_ck) + sum_k logvar_ck + K log 2 pi] (``dist.diag_normal_logpdf``),
    the sum over k written as a contraction so that its gradient, under ``vmap`` over
    draws and examples, is a matrix product (the elementwise form's backward ran 8x
    slower on CPU); then combined as max_c a_c + log sum_c exp(a_c - max_c a_c) -
    log C: no overflow or underflow however far z lies from every component.
    z: [K]; means, logvars: [C, K]. Returns a scalar.
    """
    sq = jnp.square(z[None] - means)  # [C, K]
    weighted = jnp.einsum("ck,ck->c", sq, jnp.exp(-logvars))
    per_component = -0.5 * (weighted + jnp.sum(logvars, -1) + z.size * dist.LOG_2PI)
    return logsumexp(per_component) - math.log(means.shape[0])


class VampPriorVAE(vae.VAE):
    """``vae.VAE`` with the VampPrior p(z) = (1/C) sum_c q(z | u_c).

    ``pseudo_input_values``: () -> u [C, D]; ``prior_components``: () -> (means
    [C, K], logvars [C, K]) of q(z | u_c). ``encode`` / ``decode`` as ``vae.VAE``.
    num_pseudo_inputs: C; data_dim: D (the pseudo-inputs live in data space).
    """

    num_pseudo_inputs: int = 500
    data_dim: int = 0

    def setup(self):
        super().setup()
        if self.num_pseudo_inputs <= 0 or self.data_dim <= 0:
            raise ValueError(
                "VampPriorVAE needs num_pseudo_inputs > 0 and data_dim > 0, got "
                f"{self.num_pseudo_inputs} and {self.data_dim}."
            )
        shape = (self.num_pseudo_inputs, self.data_dim)
        self.pseudo_inputs = self.param("pseudo_inputs", pseudo_input_init, shape)

    def pseudo_input_values(self):
        """u = hardtanh_{[0, 1]}(W): [C, D] (authors' ``means(idle_input)``)."""
        return jnp.clip(self.pseudo_inputs, 0.0, 1.0)

    def prior_components(self):
        """(mean(u_c), logvar(u_c)) of every mixture component: ([C, K], [C, K])."""
        return self.encode(self.pseudo_input_values())

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def log_prior(self, params, z: jax.Array) -> jax.Array:
        """log p(z) = log (1/C) sum_c q(z | u_c) (``mixture_logpdf``). z: [S, K] -> [S].

        Under ``vmap`` over examples the C components are computed once per call: they
        depend on ``params`` alone.
        """
        means, logvars = self.apply(params, method="prior_components")  # [C, K] each
        return jax.vmap(mixture_logpdf, in_axes=(0, None, None))(z, means, logvars)

    @nn.nowrap
    def _log_densities(self, params, x, key, num_samples, stop_q_grad=False):
        """((log p(x|z_s), log p(z_s), log q(z_s|x)), each [S], at S draws z_s ~ q(z|x);
        (z [S, K], mean [K], logvar [K])).

        log q from the drawn eps_s (exact in float32, ``dist.diag_normal_logpdf_at_eps``).
        With ``stop_q_grad`` it is log N(z_s; sg(mean), sg(logvar)) with z_s still
        reparameterised (Tucker et al. 2019, eq. 5-6): written eps + (e - sg(e)) with
        e = (z_s - sg(mean)) / sg(sigma), its value is the same eps bit for bit and its
        gradient flows through z_s only.
        """
        mean, logvar = self.apply(params, x, method="encode")  # [K], [K]
        z, eps = dist.sample_diag_normal_and_eps(key, mean, logvar, num_samples)
        posterior = (z, mean, logvar)
        if stop_q_grad:
            mean, logvar = jax.lax.stop_gradient((mean, logvar))
            eps_z = (z - mean[None]) * jnp.exp(-0.5 * logvar)[None]  # [S, K]
            eps = eps + (eps_z - jax.lax.stop_gradient(eps_z))
        log_qz = jax.vmap(dist.diag_normal_logpdf_at_eps, in_axes=(0, None))(
            eps, logvar
        )
        log_px = self.log_px(params, x, z)
        return (log_px, self.log_prior(params, z), log_qz), posterior

    @nn.nowrap
    def elbo_terms_and_posterior(
        self, params, x: jax.Array, key: jax.Array, num_samples: int = 1
    ):
        """((-(1/S) sum_s log p(x|z_s), (1/S) sum_s [log q(z_s|x) - log p(z_s)]), (z
        [S, K], mean [K], logvar [K])): the terms from the same S reparameterised draws
        z_s ~ q(z|x), their sum minus the generic SGVB estimator A (Kingma & Welling
        2013, eq. 6; the KL has no closed form under the mixture prior: a single
        estimate can be < 0, its expectation is >= 0), then the draws and q's
        parameters. ``elbo_terms`` (``vae.VAE``) is the first pair. x: [D], nats.
        """
        (log_px, log_pz, log_qz), posterior = self._log_densities(
            params, x, key, num_samples
        )
        return (-jnp.mean(log_px), jnp.mean(log_qz - log_pz)), posterior

    @nn.nowrap
    def log_weights(
        self,
        params,
        x: jax.Array,
        key: jax.Array,
        num_samples: int,
        stop_q_grad: bool = False,
    ):
        """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s ~ q(z|x), p(z) the
        VampPrior (Burda et al. 2015, eq. 8); z drawn as ``elbo_terms`` draws it for the
        same key. ``stop_q_grad``: q's mean and logvar under stop_gradient in log q only
        (values unchanged; Tucker et al. 2019, eq. 5-6); p(z)'s own dependence on the
        encoder, through the pseudo-inputs, keeps its gradient.
        x: [D] -> (log_w [S], log p(x|z_s) [S]).
        """
        (log_px, log_pz, log_qz), _ = self._log_densities(
            params, x, key, num_samples, stop_q_grad
        )
        return log_px + log_pz - log_qz, log_px

    @nn.nowrap
    def sample_latents(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """z ~ p(z): a component c ~ Uniform{1..C}, then z = mean(u_c) + sigma(u_c) eps,
        eps ~ N(0, I) (ancestral sampling of the mixture). Returns [S, K]."""
        means, logvars = self.apply(params, method="prior_components")  # [C, K] each
        key_c, key_eps = jax.random.split(key)
        c = jax.random.randint(key_c, (num_samples,), 0, self.num_pseudo_inputs)
        eps = jax.random.normal(key_eps, (num_samples, self.latent_dim), jnp.float32)
        return means[c] + jnp.exp(0.5 * logvars[c]) * eps

    @nn.nowrap
    def posterior_param_mask(self, params):
        """``vae.VAEBase``'s mask with the pseudo-inputs on p's side (False): they are
        prior parameters. The encoder is both q's and the prior's, so objectives that
        split phi from theta (PIWAE, DReG) are not listed for this family: DReG's
        w^2 weights hold for q's paths only, not for p's direct use of the encoder."""
        mask = super().posterior_param_mask(params)
        return {**mask, "params": {**mask["params"], "pseudo_inputs": False}}

    @nn.nowrap
    def kl_per_dimension(self, params, xs: jax.Array) -> jax.Array | None:
        """None: the mixture prior does not factorise over latent dims."""
        del params, xs
        return None


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape: Sequence[int],
    likelihood: str = "bernoulli",
    sigma: float | None = None,
) -> VampPriorVAE:
    """``vae.build``'s VAE with a VampPrior of C = ``model_config.num_pseudo_inputs``
    pseudo-inputs of shape [D = prod(image_shape)]."""
    vae_class = functools.partial(
        VampPriorVAE,
        num_pseudo_inputs=model_config.num_pseudo_inputs,
        data_dim=math.prod(image_shape),
    )
    return vae.build(
        model_config,
        image_shape=image_shape,
        likelihood=likelihood,
        sigma=sigma,
        vae_class=vae_class,
    )
