"""The beta-TCVAE objective (Chen, Li, Grosse & Duvenaud 2018) for the ``vae`` family.

``beta_tcvae``: the per-example negative ELBO (``negative_elbo_and_posterior``, KL
weight 1: recon + closed-form KL(q(z|x) || p(z))) plus a batch-level (beta - 1)
TC_hat (``tc_penalty``), joined by ``batch_penalty.with_code_penalty``: the penalty
reads the ELBO's draws and q's parameters, so the encoder runs once. TC_hat is the
minibatch-weighted-sampling estimate of the total correlation KL(q(z) || prod_j
q(z_j)) (``tc.total_correlation``; Chen et al., eq. 5 / App. C.1) from one draw z_b ~
q(z|x_b) per example, the ELBO's first. Evaluation (``objectives.per_example``) reports the ELBO alone;
training logs the batch's ``tc``, ``mi`` and ``dim_kl`` estimates.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import ml_collections

from vae_jax import tc
from vae_jax.batch_penalty import with_code_penalty


def negative_elbo_and_posterior(
    params, x, key, hparams, *, model: nn.Module, num_samples: int
):
    """-ELBO = -E_q[log p(x|z)] (S reparameterised draws) + KL(q(z|x) || p(z)) (closed
    form), the model's ``elbo_terms`` (Kingma & Welling 2013, eq. 10): the per-example
    part of ``beta_tcvae``, at KL weight 1 whatever ``hparams`` holds, with the code
    the TC penalty reads: (z_1 [K], the first of the S draws, mean [K], logvar [K]).
    x: [D] -> (scalar, {"recon", "kl", "elbo"}, code), nats per example."""
    del hparams
    (recon, kl), (z, mean, logvar) = model.elbo_terms_and_posterior(
        params, x, key, num_samples
    )
    metrics = {"recon": recon, "kl": kl, "elbo": -(recon + kl)}
    return recon + kl, metrics, (z[0], mean, logvar)


def tc_penalty(params, codes, key, hparams, *, weight, dataset_size, estimator: str):
    """(beta - 1) TC_hat over the batch; ``weight`` = beta - 1, N = ``dataset_size``.

    codes = (z [B, K], mean [B, K], logvar [B, K]): z_b ~ q(z|x_b), the ELBO's first
    draw for example b (Chen et al.'s one draw per example, shared by their ELBO and
    TC terms), and q(z|x_c)'s parameters. TC_hat, MI and dim-KL by
    ``tc.kl_decomposition`` (Chen et al. 2018, eq. 2 and App. C.1), reparameterised,
    so gradients reach the encoder through z_b and through every q(z_b | x_c).
    -> (scalar, {"tc", "mi", "dim_kl"}).
    """
    del params, key, hparams
    z, mean, logvar = codes
    terms = tc.kl_decomposition(z, mean, logvar, dataset_size, estimator)
    metrics = {"tc": terms["tc"], "mi": terms["mi"], "dim_kl": terms["dim_kl"]}
    return weight * terms["tc"], metrics


def beta_tcvae_for(obj: ml_collections.ConfigDict, model: nn.Module, level):
    """The ``beta_tcvae`` objective, minimised per batch:

        (1/B) sum_b [-E_q[log p(x_b|z)] + KL(q(z|x_b) || p(z))] + (beta - 1) TC_hat,

    beta = ``objective.tc_beta``; N = ``objective.tc_dataset_size`` weighs the
    ``stratified`` estimator (``objective.tc_estimator``; MWS needs no N). Since the mean KL
    is I_q(z; n) + TC + sum_j KL(q(z_j) || p(z_j)) (Chen et al. 2018, eq. 2), this is
    -E[log p(x|z)] + MI + beta TC + dim-KL, Chen et al.'s eq. 4 with alpha = gamma =
    1, up to TC_hat's estimation error (MWS is consistent in B, biased at finite B;
    their implementation estimates all three terms by MWS on the same draws, here the
    ELBO keeps its closed-form KL and only the extra (beta - 1) TC is sampled). beta =
    1 is the ELBO. ``tc_dataset_size`` 0 means the training set's size, which
    ``build.build_experiment`` fills in; called directly, the builder needs N > 0.
    """
    dataset_size = int(obj.tc_dataset_size)
    if dataset_size <= 0:
        raise ValueError(
            f"objective.tc_dataset_size={obj.tc_dataset_size!r}: beta_tcvae needs the "
            "training set's size N (0 is filled in by build.build_experiment; set it "
            "when building the objective without the data)."
        )
    penalty = functools.partial(
        tc_penalty,
        weight=level("tc_beta") - 1.0,
        dataset_size=float(dataset_size),
        estimator=obj.tc_estimator,
    )
    loss_one = functools.partial(
        negative_elbo_and_posterior, model=model, num_samples=obj.num_samples
    )
    return with_code_penalty(loss_one, penalty)


BUILDERS = {  # config.objective.name -> builder(objective_config, model, level)
    "beta_tcvae": beta_tcvae_for,  # Chen et al. 2018, eq. 4, alpha = gamma = 1
}


def with_dataset_size(config: ml_collections.ConfigDict, num_train: int):
    """``config``, or for ``beta_tcvae`` with ``tc_dataset_size`` = 0 a copy with it
    set to ``num_train`` (N of Chen et al.'s estimator: the training set's size)."""
    if config.objective.name != "beta_tcvae" or config.objective.tc_dataset_size:
        return config
    config = config.copy_and_resolve_references()  # the caller's stays unchanged
    config.objective.tc_dataset_size = int(num_train)
    return config


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
    """Settings of ``beta_tcvae`` that do not go together (``config_checks``)."""
    obj, problems = config.objective, []
    if obj.name != "beta_tcvae":
        return problems
    if obj.beta != 1 or obj.kl_warmup_steps > 0:
        problems.append(
            "objective.name='beta_tcvae' weighs the TC by objective.tc_beta and the "
            "KL by 1: set beta=1 and kl_warmup_steps=0 (got "
            f"beta={obj.beta!r}, kl_warmup_steps={obj.kl_warmup_steps!r})"
        )
    if obj.tc_estimator not in tc.ESTIMATORS:
        problems.append(
            f"objective.tc_estimator={obj.tc_estimator!r} is not one of {tc.ESTIMATORS}"
        )
    if config.train.batch_size < 2:
        problems.append("objective.name='beta_tcvae' needs train.batch_size >= 2")
    return problems
