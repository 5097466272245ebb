"""VAE theory as functions: Gaussian likelihood = MSE, rate vs distortion, the VI identity.

- Gaussian p(x|z) = N(g(z), sigma^2 I) with sigma fixed: 2 sigma^2 (-ELBO) =
  ||x - g(z)||^2 + 2 sigma^2 KL + 2 sigma^2 (D log sigma + (D/2) log 2 pi), so it is a
  beta-VAE with squared error and beta = 2 sigma^2 up to a positive scale and a
  constant: same optimum (Doersch 2016, §2.1; Higgins et al. 2017).
- rate R = E_x KL(q(z|x) || p(z)), distortion D = -E_x E_q log p(x|z), -ELBO = D + R
  (Alemi et al. 2018, §2); KL per latent dim shows posterior collapse.
- log p(x) = ELBO(q) + KL(q(z|x) || p(z|x)) for every q (Kingma & Welling 2013, eq. 1),
  exact on the linear-Gaussian model (``linear_gaussian.py``) for diagonal or full q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import distributions as dist
from vae_jax import evaluate, models, objectives
from vae_jax import linear_gaussian as lg
from vae_jax.models import full_covariance
from vae_jax.studies import autoencoders


# --------------------------------------------------------------- Gaussian = MSE
def negative_elbo_squared_error(
    params, x, key, hparams, *, model: nn.Module, num_samples: int = 1
):
    """beta-VAE with squared error: (1/S) sum_s ||x - g(z_s)||^2 + beta KL(q || p(z)).

    g(z) is the Gaussian decoder's mean (its sigma is not used); Higgins et al. 2017.
    x: [D] -> (scalar, {"sse", "kl"}).
    """
    mean, logvar = model.apply(params, x, method="encode")  # [K], [K]
    z = dist.sample_diag_normal(key, mean, logvar, num_samples)  # [S, K]
    recon = model.apply(params, z, method="decode")["mean"]  # [S, D]
    sse = jnp.mean(jnp.sum(jnp.square(x[None] - recon), axis=-1))
    kl = dist.kl_diag_to_std_normal(mean, logvar)
    return sse + hparams["beta"] * kl, {"sse": sse, "kl": kl}


def beta_for_sigma(sigma: float) -> float:
    """beta = 2 sigma^2: the squared-error beta-VAE with the Gaussian(sigma) optimum."""
    return 2.0 * sigma**2


def gaussian_constant(sigma: float, dim: int) -> float:
    """2 sigma^2 (D log sigma + (D/2) log 2 pi) = 2 sigma^2 (-ELBO) - SSE - beta KL."""
    return beta_for_sigma(sigma) * dim * (math.log(sigma) + 0.5 * dist.LOG_2PI)


# ------------------------------------------------------------- rate and distortion
def rate_distortion(
    model: nn.Module, params, x: np.ndarray, key: jax.Array, batch_size: int = 500
) -> dict:
    """Rate, distortion, ELBO (nats per example, one z per x) and, for a diagonal q,
    the mean KL of each latent dim over x: [N, D] (sums to the rate)."""
    eval_fn = evaluate.make_eval_fn(objectives.negative_elbo_for(model), {"beta": 1.0})
    means = evaluate.evaluate_dataset(eval_fn, params, x, batch_size, key)
    out = {"rate": means["kl"], "distortion": means["recon"], "elbo": means["elbo"]}
    if model.kl_per_dimension(params, x[:1]) is not None:  # q factorises over dims
        per_dim = autoencoders.apply_batched(
            lambda xb: model.kl_per_dimension(params, xb), x
        )  # [N, K]
        out["kl_per_dim"] = per_dim.mean(axis=0)
    return out


# ---------------------------------------------------- the VI identity, exactly
def elbo_full(x, W, b, log_s, q_mean, q_scale_tril) -> jax.Array:
    """E_q[log p(x|z)] - KL(q || p(z)) in closed form for q = N(q_mean, L L^T).

    E_q ||x - W z - b||^2 = ||x - W m - b||^2 + ||W L||_F^2 (Kingma & Welling 2013,
    eq. 3); the KL is ``dist.kl_full_normal_to_std_normal``. x: [D]; W: [D, K]; b: [D];
    log_s: []; q_mean: [K]; q_scale_tril: [K, K]. Returns a scalar <= log p(x).
    """
    d = x.shape[0]
    resid = x - W @ q_mean - b  # [D]
    sq = (jnp.sum(jnp.square(resid)) + jnp.sum(jnp.square(W @ q_scale_tril))) * (
        jnp.exp(-2.0 * log_s)
    )
    expected_loglik = -0.5 * sq - d * log_s - 0.5 * d * dist.LOG_2PI
    return expected_loglik - dist.kl_full_normal_to_std_normal(q_mean, q_scale_tril)


def kl_to_posterior_full(x, W, b, log_s, q_mean, q_scale_tril) -> jax.Array:
    """KL(N(q_mean, L L^T) || p(z|x)) with the exact posterior ``lg.posterior``.

    Doersch 2016, eq. 7. Shapes as ``elbo_full``. Returns a scalar >= 0.
    """
    post_mean, post_cov = lg.posterior(x, W, b, log_s)
    chol = jnp.linalg.cholesky(post_cov)
    return dist.kl_full_normals(q_mean, q_scale_tril, post_mean, chol)


def linear_gaussian_vae(W, b, log_s, key, posterior: str = "diagonal"):
    """A VAE whose decoder is p(x|z) = N(W z + b, s^2 I) and whose encoder is linear
    (amortised q(z|x), diagonal or full covariance). Returns (model, params)."""
    d, k = W.shape
    cls = full_covariance.FullCovarianceVAE if posterior == "full" else models.VAE
    sigma = float(np.exp(log_s))
    model = cls(models.MLP(()), models.MLP((), output_dim=d), k, "gaussian", sigma)
    params = model.init(key, jnp.zeros((d,), jnp.float32))
    decoder = {"output": {"kernel": jnp.asarray(W).T, "bias": jnp.asarray(b)}}
    return model, {"params": {**params["params"], "decoder": decoder}}


def diagonal_gap_floor(x, W, b, log_s) -> jax.Array:
    """min over diagonal q of KL(q || p(z|x)) = (1/2) (sum_j log P_jj - log det P),
    P = Cov[z|x]^-1 (q = N(m, diag(1 / P_jj))); the same for every x. Returns a scalar.
    """
    _, cov = lg.posterior(x, W, b, log_s)
    precision = jnp.linalg.inv(cov)
    logdet = jnp.linalg.slogdet(precision)[1]
    return 0.5 * (jnp.sum(jnp.log(jnp.diagonal(precision))) - logdet)


def q_of(model: nn.Module, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean [K], scale_tril [K, K]) of the VAE's q(z|x), diagonal or full. x: [D]."""
    return model.gaussian_posterior(params, x)


def exact_terms(model: nn.Module, params, x, W, b, log_s) -> dict[str, jax.Array]:
    """log p(x), ELBO(q) and KL(q || p(z|x)) of the VAE's q for one x: [D] (scalars)."""
    q_mean, q_tril = q_of(model, params, x)
    return {
        "log_px": lg.log_marginal(x, W, b, log_s),
        "elbo": elbo_full(x, W, b, log_s, q_mean, q_tril),
        "kl_to_posterior": kl_to_posterior_full(x, W, b, log_s, q_mean, q_tril),
    }


def _summary(model, params, x_eval, W, b, log_s, key, iw_samples) -> dict:
    """Dataset means of ``exact_terms``, max |log p - ELBO - KL| (also relative to
    |ELBO| + KL) and L_k for each k."""
    terms = jax.vmap(exact_terms, in_axes=(None, None, 0, None, None, None))(
        model, params, x_eval, W, b, log_s
    )
    gap = terms["log_px"] - terms["elbo"] - terms["kl_to_posterior"]
    out = {name: jnp.mean(v) for name, v in terms.items()}
    out["identity_error"] = jnp.max(jnp.abs(gap))  # float32: ~1e-7 (|ELBO| + KL)
    size = jnp.abs(terms["elbo"]) + terms["kl_to_posterior"]
    out["identity_rel_error"] = jnp.max(jnp.abs(gap) / size)
    keys = jax.random.split(key, x_eval.shape[0])
    for k in iw_samples:
        bound = jax.vmap(evaluate.iwae_bound, in_axes=(None, None, 0, 0, None))
        out[f"iwae_{k}"] = jnp.mean(bound(model.log_weights, params, x_eval, keys, k))
    return out


def train_encoder(
    model: nn.Module,
    params,
    x_train: jax.Array,
    x_eval: jax.Array,
    true_params: tuple[jax.Array, jax.Array, jax.Array],
    key: jax.Array,
    *,
    num_steps: int = 2000,
    eval_every: int = 100,
    batch_size: int = 100,
    learning_rate: float = 1e-2,
    iw_samples: Sequence[int] = (10, 100),
    num_samples: int = 1,
) -> tuple[dict, list[dict]]:
    """Adam (cosine-decayed rate) on the encoder only, decoder = the true model, with
    the VAE's own objective (``num_samples`` reparameterised z per example).

    Args:
      model, params: a ``linear_gaussian_vae``.
      x_train, x_eval: [N, D] and [M, D], data from the model.
      true_params: (W [D, K], b [D], log_s []), the model for the exact terms.
      key: PRNG key (batches, reparameterised z, L_k samples).

    Returns:
      (params, records): every ``eval_every`` steps the x_eval means of log p(x), ELBO,
      KL(q || p(z|x)), L_k (k in ``iw_samples``) and max |log p(x) - ELBO - KL|
      (``identity_error``; ``identity_rel_error`` divides by |ELBO| + KL).
    """
    loss = objectives.batch_mean(objectives.negative_elbo_for(model, num_samples))
    decoder = params["params"]["decoder"]
    encoder = {n: v for n, v in params["params"].items() if n != "decoder"}
    merge = lambda enc: {"params": {**enc, "decoder": decoder}}
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps))
    train_key, eval_key = jax.random.split(key)
    hparams = {"beta": jnp.float32(1.0)}

    def step(carry, i):
        enc, opt = carry
        batch_key, loss_key = jax.random.split(jax.random.fold_in(train_key, i))
        idx = jax.random.randint(batch_key, (batch_size,), 0, x_train.shape[0])
        grads = jax.grad(lambda e: loss(merge(e), x_train[idx], loss_key, hparams)[0])
        updates, opt = tx.update(grads(enc), opt)
        return (optax.apply_updates(enc, updates), opt), None

    chunk = jax.jit(
        lambda c, start: jax.lax.scan(step, c, start + jnp.arange(eval_every))[0]
    )
    summary = jax.jit(
        lambda p, i: _summary(
            model, p, x_eval, *true_params, jax.random.fold_in(eval_key, i), iw_samples
        )
    )
    carry, records = (encoder, tx.init(encoder)), []
    for start in range(0, num_steps + 1, eval_every):
        if start:
            carry = chunk(carry, start - eval_every)
        record = jax.device_get(summary(merge(carry[0]), start))
        records.append({"step": start, **{k: float(v) for k, v in record.items()}})
    return merge(carry[0]), records
