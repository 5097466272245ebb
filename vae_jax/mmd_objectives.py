"""Objectives with an MMD between the aggregate posterior q(z) and the prior p(z).

``wae_mmd``: the Wasserstein auto-encoder, WAE-MMD (Tolstikhin et al. 2018,
Algorithm 2), for the deterministic-encoder ``wae`` family. ``info_vae``: InfoVAE with
the MMD divergence, the "MMD-VAE" (Zhao et al. 2017, arXiv:1706.02262), for the ``vae``
family. Both are a per-example loss that also returns its code (f(x_b), or z_b ~
q(z|x_b), the ELBO's first draw) plus a batch-level ``penalty(params, codes [B, K],
key, hparams)``, joined by ``batch_penalty.with_code_penalty`` so that the encoder runs
once: MMD^2 compares the B codes with B draws z ~ p(z) made with the penalty's key
(``mmd.mmd2_unbiased``). Evaluation
(``objectives.per_example``) reports the per-example part; training logs ``mmd2``.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from vae_jax import mmd
from vae_jax.batch_penalty import with_code_penalty


def kernel_for(name: str, scale: float, latent_dim: int):
    """``mmd.KERNELS[name]`` with its scale bound: ``scale``, or where it is 0 the
    default for p(z) = N(0, I_K) (``mmd.default_scale``). -> kernel(a, b)."""
    if scale == 0:
        scale = mmd.default_scale(name, latent_dim)
    return functools.partial(mmd.KERNELS[name], scale=scale)


def prior_mmd2(params, z, key, *, model: nn.Module, kernel: str, scale: float):
    """MMD^2_u between the codes z: [B, K] and B draws of p(z) (the model's
    ``sample_latents`` with ``key``): Tolstikhin et al. 2018, Algorithm 2, the
    penalty's three sums without lambda. -> scalar."""
    prior = model.sample_latents(params, key, z.shape[0])  # [B, K]
    return mmd.mmd2_unbiased(z, prior, kernel_for(kernel, scale, z.shape[-1]))


# ------------------------------------------------------------------------- WAE
def wae_reconstruction(params, x, key, hparams, *, model: nn.Module):
    """c(x, G(f(x))) = ||x - g(f(x))||^2, summed over the D pixels: the WAE's cost
    (Tolstikhin et al. 2018, §4, "c(x, y) = ||x - y||_2^2"), per example, so lambda
    keeps the paper's scale. Also reports ``mse`` = the cost / D (squared error per
    pixel, the autoencoders' unit), and returns the code f(x) the penalty reads.
    x: [D] -> (scalar, {"squared_error", "mse"}, f(x) [K]).
    """
    del key, hparams
    code = model.code(params, x)
    squared_error = jnp.sum(jnp.square(x - model.decode_mean(params, code)))
    metrics = {"squared_error": squared_error, "mse": squared_error / x.shape[-1]}
    return squared_error, metrics, code


def mmd_penalty(
    params, codes, key, hparams, *, model: nn.Module, weight, kernel: str, scale: float
):
    """``weight`` MMD^2_u(the batch's codes, B draws of p(z) made with ``key``): the
    WAE-MMD penalty (Tolstikhin et al. 2018, Algorithm 2; weight lambda, codes f(x_b))
    and InfoVAE's (Zhao et al. 2017; weight alpha + lambda - 1, codes z_b ~ q(z|x_b)).
    codes: [B, K] -> (scalar, {"mmd2"})."""
    del hparams
    mmd2 = prior_mmd2(params, codes, key, model=model, kernel=kernel, scale=scale)
    return weight * mmd2, {"mmd2": mmd2}


def wae_mmd_for(obj: ml_collections.ConfigDict, model: nn.Module, level):
    """The ``wae_mmd`` objective: (1/B) sum_b ||x_b - g(f(x_b))||^2 + lambda
    MMD^2_u(q(z), p(z)), lambda = ``objective.mmd_weight`` (Tolstikhin et al. 2018,
    Algorithm 2, one kernel scale: the authors' code sums seven IMQ scales 0.1C..10C
    and multiplies the cost by 0.05; here the cost is the paper's ||x - y||^2)."""
    penalty = functools.partial(
        mmd_penalty,
        model=model,
        weight=level("mmd_weight"),
        kernel=obj.mmd_kernel,
        scale=float(obj.mmd_scale),
    )
    loss_one = functools.partial(wae_reconstruction, model=model)
    return with_code_penalty(loss_one, penalty)


# --------------------------------------------------------------------- InfoVAE
def info_vae_per_example(
    params, x, key, hparams, *, model: nn.Module, alpha: float, num_samples: int
):
    """-E_q[log p(x|z)] + (1 - alpha) KL(q(z|x) || p(z)): the per-example part of the
    InfoVAE loss (``info_vae_for``), from the model's ``elbo_terms_and_posterior`` (S =
    num_samples reparameterised draws, closed-form KL). Reports the ELBO's parts at
    weight 1 and returns z_1 ~ q(z|x), the first draw: one sample of the aggregate
    posterior q(z) = E_pD q(z|x) for the MMD. x: [D] -> (scalar, {"recon", "kl",
    "elbo"}, z_1 [K]), nats per example."""
    del hparams
    (recon, kl), (z, _, _) = model.elbo_terms_and_posterior(params, x, key, num_samples)
    metrics = {"recon": recon, "kl": kl, "elbo": -(recon + kl)}
    return recon + (1.0 - alpha) * kl, metrics, z[0]


def info_vae_for(obj: ml_collections.ConfigDict, model: nn.Module, level):
    """The ``info_vae`` objective (the MMD-VAE; Zhao et al. 2017, §3, the InfoVAE
    objective in its tractable form with D = MMD for the divergence between q(z) and
    p(z)), minimised per batch:

        (1/B) sum_b [-E_q[log p(x_b|z)] + (1 - alpha) KL(q(z|x_b) || p(z))]
        + (alpha + lambda - 1) MMD^2_u(q(z), p(z)),

    alpha = ``objective.info_alpha``, lambda = ``objective.mmd_weight``. alpha = 0,
    lambda = 1 is the ELBO; alpha = 1 drops the per-example KL.

    Against Pythae's ``INFOVAE_MMD`` (clementchadebec/benchmark_VAE,
    ``models/info_vae/info_vae_model.py``): the same weights (1 - alpha), (alpha +
    lambda - 1), both kernels, the IMQ's C = 2 K s^2, a summed reconstruction and one
    q-draw per example. It differs in the MMD's scale: Pythae adds its MMD to every
    example's loss before the batch mean, with the within sums divided by B - 1 and
    the cross sum by B, i.e. B times MMD^2_u, so its lambda weighs B MMD^2_u where
    ours weighs MMD^2_u once per batch as Zhao et al.'s D(q(z) || p(z)) (and
    Tolstikhin et al.'s Algorithm 2) do: Pythae's (alpha + lambda - 1) at batch size
    B is ours times B. (Its ``k_z - k_z.diag()`` subtracts the diagonal from every
    row, which removes B^2 rather than B ones from each within sum: a constant, so
    its gradients are those of B MMD^2_u but its reported ``mmd_loss`` is offset by
    -2.) Its RBF kernel is exp(-||z - z'||^2 / C), ``rbf_kernel`` with 2 s^2 = C,
    which ``mmd.default_scale`` matches at Pythae's default bandwidth 1; its default
    alpha = 0.5, lambda = 0.03 gives the MMD a negative weight, which
    ``config_problems`` refuses.
    """
    alpha = float(obj.info_alpha)
    penalty = functools.partial(
        mmd_penalty,
        model=model,
        weight=alpha + level("mmd_weight") - 1.0,
        kernel=obj.mmd_kernel,
        scale=float(obj.mmd_scale),
    )
    loss_one = functools.partial(
        info_vae_per_example, model=model, alpha=alpha, num_samples=obj.num_samples
    )
    return with_code_penalty(loss_one, penalty)


BUILDERS = {  # config.objective.name -> builder(objective_config, model, level)
    "wae_mmd": wae_mmd_for,  # Tolstikhin et al. 2018, Algorithm 2
    "info_vae": info_vae_for,  # Zhao et al. 2017, MMD-VAE
}


# ------------------------------------------------------------------ validation


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of the MMD objectives and the ``wae`` family that do not go together
    (``config_checks`` lists them with the rest)."""
    obj, problems = config.objective, []
    if obj.name == "info_vae":
        if obj.beta != 1 or obj.kl_warmup_steps > 0:
            problems.append(
                "objective.name='info_vae' weighs the KL by 1 - info_alpha and ignores "
                "objective.beta and objective.kl_warmup_steps: set beta=1 and "
                f"kl_warmup_steps=0 (got beta={obj.beta!r}, "
                f"kl_warmup_steps={obj.kl_warmup_steps!r})"
            )
        if not obj.info_alpha <= 1:
            problems.append(
                f"objective.info_alpha={obj.info_alpha!r} must be <= 1 (the KL's "
                "weight 1 - alpha must not be negative)"
            )
        if not obj.info_alpha + obj.mmd_weight - 1 >= 0:
            problems.append(
                "objective.name='info_vae' weighs MMD^2 by info_alpha + mmd_weight - 1 "
                f"= {obj.info_alpha + obj.mmd_weight - 1:g}, which must be >= 0 (a "
                "negative weight rewards q(z) for moving away from p(z))"
            )
    if config.model.kind == "wae" and config.model.code_activation != "linear":
        problems.append(
            "model.kind='wae' needs model.code_activation='linear' (its codes must be "
            "able to match p(z) = N(0, I))"
        )
    return problems
