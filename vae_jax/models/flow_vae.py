"""A VAE whose posterior is a planar normalizing flow of a diagonal Gaussian.

q_0(z_0|x) = N(mean(x), diag(exp(logvar(x)))), z_L = f_L(... f_1(z_0)) with planar
steps f_l(z) = z + u_l h(w_l^T z + b_l) (Rezende & Mohamed 2015, eq. 10), and
log q(z_L|x) = log q_0(z_0|x) - sum_l log|det J_l| (eq. 13). The flow is amortised
as in the paper (§4.1, §6): the encoder outputs the L steps' (u_l, w_l, b_l) from x
beside mean and logvar, and each u_l is made invertible by App. A
(``flows.invertible_u``). KL(q || p(z)) has no closed form: the ELBO's KL is the Monte
Carlo mean of log q(z_L|x) - log p(z_L) over the same S draws as the reconstruction
(Kingma & Welling 2013, eq. 6, estimator A). Selected by ``config.model.kind =
"flow_vae"``, L = ``config.model.flow_length``.

Planar rather than inverse autoregressive flows (Kingma et al. 2016): the flow of the
paper this family reproduces, with an O(L K) log-determinant and no extra network;
IAF scales better to large K but needs a MADE per step and a context vector.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from vae_jax import distributions as dist
from vae_jax import flows
from vae_jax.models import layers, vae


class FlowVAE(vae.VAEBase):
    """q(z_L|x): a diagonal Gaussian pushed through L amortised planar steps.

    ``encode``: [..., D] -> (mean [..., K], logvar [..., K], u [..., L, K],
    w [..., L, K], b [..., L]) (u raw: ``flows.planar_flow`` makes it invertible;
    logvar, the base Gaussian's, clipped to ``logvar_range`` if set);
    ``decode`` as ``vae.VAEBase``. L (2K + 1) extra encoder outputs.
    ``kl_per_dimension`` is ``VAEBase``'s None: q(z_L|x) does not factorise.
    """

    flow_length: int = 10  # L

    def setup(self):
        super().setup()
        init = layers.get_kernel_init(self.kernel_init)
        size = self.flow_length * (2 * self.latent_dim + 1)
        self.to_flow = nn.Dense(size, dtype=self.dtype, kernel_init=init)

    def encode(self, x):
        h = self.encoder(x)
        mean = self.to_mean(h).astype(jnp.float32)
        logvar = self.clip_logvar(self.to_logvar(h).astype(jnp.float32))
        flow = self.to_flow(h).astype(jnp.float32)  # [..., L (2K + 1)]
        lead, n, k = flow.shape[:-1], self.flow_length, self.latent_dim
        u = flow[..., : n * k].reshape(*lead, n, k)
        w = flow[..., n * k : 2 * n * k].reshape(*lead, n, k)
        return mean, logvar, u, w, flow[..., 2 * n * k :]

    # ------------------------------------------------------------ posterior draws
    @nn.nowrap
    def sample_and_log_q(
        self,
        params,
        x: jax.Array,
        key: jax.Array,
        num_samples: int,
        stop_q_grad: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        """S draws z_L ~ q(z|x) and log q(z_L|x) = log q_0(z_0|x) - sum_l log|det J_l|
        (Rezende & Mohamed 2015, eq. 13); z_0 = mean + exp(logvar / 2) eps_s.

        ``stop_q_grad``: log q(z_L|x) as a function of z_L with q's parameters (mean,
        logvar, u, w, b) under ``stop_gradient`` (Tucker et al. 2019, eq. 5-6). The
        flow has no closed-form inverse, so the value is the plain one and the
        gradient path is a first-order surrogate sg(g)^T (z_L - sg(z_L)) with
        g = grad_{z_L} log q = J^-T grad_{z_0}[log q_0 - sum_l log|det J_l|]
        (``flows.solve_jacobian_transpose``): values unchanged, only gradients differ.
        x: [D] -> (z_L [S, K], log q(z_L|x) [S]).
        """
        mean, logvar, u, w, b = self.apply(params, x, method="encode")
        z0, eps = dist.sample_diag_normal_and_eps(key, mean, logvar, num_samples)
        flow = jax.vmap(flows.planar_flow, in_axes=(0, None, None, None))
        z, log_det = flow(z0, u, w, b)  # [S, K], [S]
        log_q0 = jax.vmap(dist.diag_normal_logpdf_at_eps, in_axes=(0, None))(
            eps, logvar
        )
        log_q = log_q0 - log_det
        if not stop_q_grad:
            return z, log_q
        logvar, u, w, b = jax.lax.stop_gradient((logvar, u, w, b))
        score = jax.vmap(_score, in_axes=(0, 0, None, None, None, None))(
            jax.lax.stop_gradient(z0), eps, logvar, u, w, b
        )  # [S, K] = grad_{z_L} log q(z_L|x)
        path = jnp.sum(score * (z - jax.lax.stop_gradient(z)), axis=-1)  # zeros
        return z, jax.lax.stop_gradient(log_q) + path

    # ------------------------------------------------------------ model protocol
    @nn.nowrap
    def elbo_terms(self, params, x: jax.Array, key: jax.Array, num_samples: int = 1):
        """(-E_q[log p(x|z)], KL(q(z|x) || p(z))), both by the same S draws z_L ~ q:
        Kingma & Welling 2013, eq. 6 (estimator A; no closed-form KL through a flow).
        x: [D] -> (scalar, scalar), nats."""
        z, log_q = self.sample_and_log_q(params, x, key, num_samples)
        log_px = self.log_px(params, x, z)
        kl = jnp.mean(log_q - jax.vmap(dist.std_normal_logpdf)(z))
        return -jnp.mean(log_px), kl

    @nn.nowrap
    def log_weights(
        self,
        params,
        x: jax.Array,
        key: jax.Array,
        num_samples: int,
        stop_q_grad: bool = False,
    ):
        """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x), z_s = z_L ~ q(z|x).

        Burda et al. 2015, eq. 8; the same z as ``elbo_terms`` draws for the same key.
        ``stop_q_grad``: see ``sample_and_log_q`` (the DReG surrogate).
        x: [D] -> (log_w [S], log p(x|z_s) [S]).
        """
        z, log_q = self.sample_and_log_q(params, x, key, num_samples, stop_q_grad)
        log_px = self.log_px(params, x, z)
        return log_px + jax.vmap(dist.std_normal_logpdf)(z) - log_q, log_px

    @nn.nowrap
    def code(self, params, x: jax.Array) -> jax.Array:
        """The flow applied to q_0's mean, F(mean(x)): [..., D] -> [..., K].

        A deterministic code, not E_q[z|x]: F is nonlinear, so E[F(z_0)] != F(E z_0).
        """
        mean, _, u, w, b = self.apply(params, x, method="encode")
        k, n, lead = self.latent_dim, self.flow_length, mean.shape[:-1]
        flow = jax.vmap(lambda *a: flows.planar_flow(*a)[0])
        z = flow(
            mean.reshape(-1, k),
            u.reshape(-1, n, k),
            w.reshape(-1, n, k),
            b.reshape(-1, n),
        )
        return z.reshape(*lead, k)

    @nn.nowrap
    def posterior_means(self, params, x: jax.Array, key: jax.Array) -> tuple:
        """(F(mean(x)) [K],), ``code``: the flow of q_0's mean, not E_q[z|x]; its
        variance over x defines active units (Burda et al. 2015, §5.2). x: [D]."""
        del key
        return (self.code(params, x),)


def _score(z0, eps, logvar, u, w, b):
    """grad_{z_L} log q(z_L) at z_L = F(z_0), q's parameters held fixed:
    J^-T (grad_{z_0} log q_0 - grad_{z_0} sum_l log|det J_l|), where
    grad_{z_0} log q_0 = -(z_0 - mean) / sigma^2 = -eps / sigma (exact in float32).
    z0, eps, logvar: [K]; u, w: [L, K]; b: [L]. Returns [K]."""
    log_det = lambda z: flows.planar_flow(z, u, w, b)[1]
    grad0 = -eps * jnp.exp(-0.5 * logvar) - jax.grad(log_det)(z0)
    return flows.solve_jacobian_transpose(z0, u, w, b, grad0)


def build(
    model_config: ml_collections.ConfigDict,
    *,
    image_shape: Sequence[int],
    likelihood: str = "bernoulli",
    sigma: float | None = None,
) -> FlowVAE:
    """A ``FlowVAE`` of ``config.model`` (L = ``model_config.flow_length`` > 0)."""
    length = model_config.flow_length
    if not isinstance(length, int) or length <= 0:
        raise ValueError(
            f"model.flow_length={length!r} must be a positive integer (L, planar steps)"
        )
    return vae.build(
        model_config,
        image_shape=image_shape,
        likelihood=likelihood,
        sigma=sigma,
        vae_class=functools.partial(FlowVAE, flow_length=length),
    )
