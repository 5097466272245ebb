"""Model families by name, and the protocol every family implements.

A family is one module (``autoencoder``, ``vae``, ``full_covariance``,
``hierarchical``, or a user's own) plus one ``MODELS`` entry; ``build_model`` picks
it from ``config.model``. Code outside this registry calls the protocol and never
asks which class it holds. Every protocol method takes ``params`` explicitly (the
module is a pure function of them); x: [D] is one example unless leading dims are
shown.

All families:
  ``generative``                         True if p(z) can be sampled
  ``code(params, x [..., D])``           -> z [..., K]: f(x), or E_q[z|x]
  ``decode_mean(params, z [..., K])``    -> E[x|z] (an AE's g(z)) [..., D]
  ``reconstruct(params, x [..., D])``    -> [..., D]
Latent-variable families (the ELBO and IWAE objectives, L_k, active units) add:
  ``elbo_terms(params, x, key, S)``      -> (-E_q[log p(x|z)], KL(q(z|x) || p(z))),
                                            the KL in closed form where one exists
  ``log_weights(params, x, key, S, stop_q_grad=False)``
                                         -> (log p(x, z_s) - log q(z_s|x) [S],
                                            log p(x|z_s) [S]), z_s ~ q(z|x);
                                            stop_q_grad=True: same values, log q
                                            sees q's parameters under stop_gradient
                                            while z_s keeps its reparameterised path
                                            to them (Tucker et al. 2019, eqs. 5-6)
  ``posterior_means(params, x, key)``    -> (E_q[z_l | .] [K_l] per stochastic layer)
  ``sample_latents(params, key, S)``     -> z ~ p(z) [S, K]
  ``kl_per_dimension(params, xs [B, D])`` -> [B, K], or None if q does not factorise
Optional, where q(z|x) is Gaussian (``runs.Run.posterior_logvar``, exported latents):
  ``posterior_logvar(params, x [..., D])`` -> log Var_q[z_k|x] [..., K] of ``code``'s z
Optional, where q(z|x) is a diagonal Gaussian (batch terms on q that share the ELBO's
encoder pass: ``info_vae``, ``beta_tcvae``):
  ``elbo_terms_and_posterior(params, x, key, S)``
                                         -> (``elbo_terms``'s pair, (its draws z_s
                                            [S, K], q's mean [K], logvar [K]))
Optional, for ``PARAM_SPLIT_OBJECTIVES`` (PIWAE, DReG; list them in the family's
objectives only with ``stop_q_grad`` honoured as above):
  ``posterior_param_mask(params)``       -> pytree of bools like params: True on q's
                                            parameters phi, False on p's theta
Conditional families (``Family.conditional``; x is [..., D + C], pixels then one-hot
labels; ``code`` and ``decode_mean``'s z carry the labels too, [..., K + C]; the
outputs of ``reconstruct`` and ``decode_mean`` are images [..., D]) add:
  ``conditional_latents(params, key, labels [S])`` -> codes that decode to class y_s
Optional, for ``rae_l2`` (a decoder weight penalty, Ghosh et al. 2020):
  ``decoder_kernels(params)``            -> [the decoder g's kernels], biases excluded
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import ml_collections

from vae_jax.models import (
    autoencoder,
    cvae,
    flow_vae,
    full_covariance,
    hierarchical,
    rae,
    vae,
    vampprior,
    vqvae,
    wae,
)
from vae_jax.models.autoencoder import Autoencoder
from vae_jax.models.full_covariance import FullCovarianceVAE
from vae_jax.models.hierarchical import HierarchicalVAE
from vae_jax.models.layers import (
    MLP,
    output_bias_from_data,
    with_output_bias,
    with_torch_default_biases,
)
from vae_jax.models.vae import VAE

__all__ = [
    "MLP",
    "MODELS",
    "VAE",
    "Autoencoder",
    "Family",
    "FullCovarianceVAE",
    "HierarchicalVAE",
    "build_model",
    "describe_families",
    "family_name",
    "is_conditional",
    "output_bias_from_data",
    "register",
    "with_output_bias",
    "with_torch_default_biases",
]

AE_OBJECTIVES = ("mse", "denoising_mse", "sparse_mse", "robust_mse", "trimmed_mse")
VAE_OBJECTIVES = ("elbo", "iwae", "miwae", "ciwae")  # log_weights only
# + posterior_param_mask and log_weights(..., stop_q_grad=True) (iwae_objectives)
PARAM_SPLIT_OBJECTIVES = ("piwae", "iwae_dreg")


@dataclasses.dataclass(frozen=True)
class Family:
    """A registered model family.

    build: ``(model_config, *, image_shape, likelihood, sigma) -> nn.Module``.
    objectives: the ``config.objective.name`` values it trains with.
    summary: one line for ``--list_models``: what it is, the paper, how to select it.
    conditional: inputs end in one-hot label columns (``data.with_one_hot_labels``,
    C = ``config.model.num_classes``) that the model conditions on.
    """

    build: Callable[..., nn.Module]
    objectives: tuple[str, ...]
    summary: str = ""
    conditional: bool = False


MODELS: dict[str, Family] = {
    "ae": Family(
        autoencoder.build,
        AE_OBJECTIVES,
        "deterministic autoencoder x -> z = f(x) -> g(z); plain, denoising "
        "(Vincent et al. 2008), sparse (Ng 2011), robust (Barron 2019) or trimmed "
        "(Shen & Sanghavi 2019)",
    ),
    "wae": Family(
        wae.build,
        ("wae_mmd",),
        "Wasserstein auto-encoder: deterministic z = f(x), squared-error cost, "
        "MMD^2 between the codes and p(z) = N(0, I) (Tolstikhin et al. 2018, "
        "WAE-MMD); samples G(z), z ~ p(z)",
    ),
    "vae": Family(
        vae.build,
        VAE_OBJECTIVES + PARAM_SPLIT_OBJECTIVES + ("info_vae", "beta_tcvae"),
        "VAE, q(z|x) diagonal Gaussian, p(z) = N(0, I) (Kingma & Welling 2013); "
        "IWAE with objective.name='iwae' (Burda et al. 2015), its variants "
        "'miwae', 'ciwae', 'piwae' (Rainforth et al. 2018) and DReG gradients "
        "'iwae_dreg' (Tucker et al. 2019); InfoVAE / MMD-VAE 'info_vae' (Zhao et "
        "al. 2017); beta-TCVAE 'beta_tcvae' (Chen et al. 2018)",
    ),
    "full_covariance_vae": Family(
        functools.partial(vae.build, vae_class=full_covariance.FullCovarianceVAE),
        VAE_OBJECTIVES,
        "VAE with a full-covariance Gaussian q(z|x) = N(mu, L L^T) (Doersch 2016, "
        "eq. 7); also kind='vae' with posterior='full'",
    ),
    "hierarchical_vae": Family(
        hierarchical.build,
        VAE_OBJECTIVES,
        "two stochastic layers x -> z1 -> z2 (Burda et al. 2015, App. C); also "
        "kind='vae' with stochastic_layers=2",
    ),
    "vamp_vae": Family(
        vampprior.build,
        VAE_OBJECTIVES,
        "VAE with a VampPrior p(z) = (1/C) sum_c q(z|u_c), C learned pseudo-inputs "
        "(Tomczak & Welling 2018); C = model.num_pseudo_inputs",
    ),
    "flow_vae": Family(
        flow_vae.build,
        VAE_OBJECTIVES + PARAM_SPLIT_OBJECTIVES,
        "VAE whose q(z|x) is a diagonal Gaussian through L amortised planar flows "
        "(Rezende & Mohamed 2015, eq. 10-13); L = model.flow_length, KL by Monte Carlo",
    ),
    "rae": Family(
        rae.build,
        ("rae_l2", "rae_gp"),
        "regularised autoencoder z = f(x), g(z): squared error + beta ||z||^2 / 2 + "
        "a decoder weight ('rae_l2') or Jacobian ('rae_gp') penalty (Ghosh et al. "
        "2020); samples via an ex-post density on its codes (studies.expost)",
    ),
    "cvae": Family(
        cvae.build,
        VAE_OBJECTIVES,
        "conditional VAE q(z|x,y), p(x|z,y), p(z) = N(0, I) with one-hot labels y "
        "(Sohn et al. 2015); C = model.num_classes; samples per class",
        conditional=True,
    ),
    "vqvae": Family(
        vqvae.build,
        ("vq",),
        "VQ-VAE: N code vectors z_e(x) [N, C] snapped to the nearest of M learned "
        "codebook entries, straight-through gradients (van den Oord et al. 2017); "
        "N, C, M = model.num_latents, code_dim, codebook_size; no prior to sample",
    ),
}


def register(
    name: str,
    build: Callable[..., nn.Module],
    objectives: Sequence[str],
    summary: str = "",
    conditional: bool = False,
) -> None:
    """Adds family ``name`` (selected by ``config.model.kind = name``)."""
    MODELS[name] = Family(build, tuple(objectives), summary, conditional)


def describe_families() -> list[str]:
    """One line per registered family: name, objectives, summary (``--list_models``)."""
    width = max(len(name) for name in MODELS)
    return [
        f"{name:<{width}}  objectives: {', '.join(family.objectives)}. {family.summary}"
        for name, family in MODELS.items()
    ]


def family_name(model_config: ml_collections.ConfigDict) -> str:
    """The registry name of ``config.model``: its ``kind``, where a VAE's
    ``stochastic_layers=2`` or ``posterior="full"`` names the family it selects."""
    kind = model_config.kind
    if kind == "vae" and model_config.stochastic_layers == 2:
        return "hierarchical_vae"
    if kind == "vae" and model_config.posterior == "full":
        return "full_covariance_vae"
    if kind not in MODELS:
        raise ValueError(
            f"Unknown model kind {kind!r}; choose one of {sorted(MODELS)}."
        )
    return kind


def is_conditional(model_config: ml_collections.ConfigDict) -> bool:
    """Whether ``config.model``'s family takes label columns after the pixels."""
    return MODELS[family_name(model_config)].conditional


def build_model(
    model_config: ml_collections.ConfigDict,
    *,
    likelihood: str,
    image_shape: Sequence[int],
    sigma: float | None = None,
) -> nn.Module:
    """The model of ``config.model`` for data of ``image_shape`` (see ``MODELS``)."""
    family = MODELS[family_name(model_config)]
    return family.build(
        model_config, image_shape=image_shape, likelihood=likelihood, sigma=sigma
    )
