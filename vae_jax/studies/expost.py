"""Ex-post density estimation: a density fitted to a trained model's codes, sampled and
decoded; Ghosh et al. 2020, §4 (RAEs + a Gaussian mixture) and Dai & Wipf 2019, §4
(the two-stage VAE).

A deterministic autoencoder has no prior p(z), and a VAE's aggregate posterior need
not match its N(0, I): decoding z ~ N(0, I) can land off the data. After training,
fit a density q(z) to the training codes z_n = ``code``(x_n) (the protocol's: an
autoencoder's f(x), a VAE's posterior mean E_q[z|x]) and decode z ~ q(z) with
``decode_mean``. Works for a finished run of any family (``runs.Run``):

  run = vae_jax.load_run(workdir)
  sampler = expost.fit_sampler(run, "gmm")                # or "two_stage", "normal"
  images = expost.decode_samples(run, sampler, 64, jax.random.key(0))   # [64, D]
  scores = expost.sample_quality(run, sampler)   # Frechet distance, IS (classifier)

A sampler has ``sample(key, n) -> z [n, K]`` (NumPy float32):
  ``StandardNormalSampler``   N(0, I_K): the fixed prior, the baseline
  ``GaussianMixtureSampler``  C full-covariance components fitted by EM (scikit-learn
                              ``GaussianMixture``); C = 10 as Ghosh et al. 2020, §5
  ``TwoStageSampler``         a second VAE on the codes, trained by ``loop.run_loop``:
                              u ~ N(0, I), z = E[z|u] (Dai & Wipf 2019, §4)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vae_jax import build, loop, runs
from vae_jax import data as data_lib
from vae_jax.configs import default
from vae_jax.studies import sample_quality as quality_lib

SAMPLE_FOLD = (
    1_000_003  # default key: fold_in(keys["eval"], SAMPLE_FOLD), as samples.png
)


class Sampler(Protocol):
    """A density over codes: ``sample(key, n) -> z [n, K]``."""

    def sample(self, key: jax.Array, n: int) -> np.ndarray: ...


# ------------------------------------------------------------------ samplers
@dataclasses.dataclass(frozen=True)
class StandardNormalSampler:
    """z ~ N(0, I_K): the prior a VAE assumes and an autoencoder does not have."""

    latent_dim: int

    def sample(self, key: jax.Array, n: int) -> np.ndarray:
        """[n, K] standard normal draws."""
        return np.asarray(jax.random.normal(key, (int(n), self.latent_dim)))


@functools.partial(jax.jit, static_argnums=4)
def _sample_mixture(key, weights, means, scale_trils, n: int):
    """n draws of sum_c w_c N(mu_c, L_c L_c^T): c ~ Cat(w), z = mu_c + L_c eps.
    weights [C], means [C, K], scale_trils [C, K, K] -> [n, K]."""
    component_key, eps_key = jax.random.split(key)
    c = jax.random.categorical(component_key, jnp.log(weights), shape=(n,))  # [n]
    eps = jax.random.normal(eps_key, (n, means.shape[-1]))  # [n, K]
    return means[c] + jnp.einsum("nij,nj->ni", scale_trils[c], eps)


@dataclasses.dataclass(frozen=True)
class GaussianMixtureSampler:
    """q(z) = sum_c w_c N(mu_c, Sigma_c), Sigma_c = L_c L_c^T (L_c lower triangular).

    weights [C], means [C, K], scale_trils [C, K, K]; float32.
    """

    weights: np.ndarray
    means: np.ndarray
    scale_trils: np.ndarray

    def sample(self, key: jax.Array, n: int) -> np.ndarray:
        """[n, K] draws of the mixture."""
        z = _sample_mixture(key, self.weights, self.means, self.scale_trils, int(n))
        return np.asarray(z)


def fit_gmm(
    codes: np.ndarray,
    num_components: int = 10,
    *,
    seed: int = 0,
    max_iter: int = 200,
    reg_covar: float = 1e-6,
) -> GaussianMixtureSampler:
    """A ``num_components``-component full-covariance Gaussian mixture fitted to
    ``codes: [N, K]`` by EM (scikit-learn ``GaussianMixture``, k-means start,
    ``random_state=seed``, ``reg_covar`` added to each covariance's diagonal, float64):
    Ghosh et al. 2020, §4-5 (C = 10, full covariances)."""
    from sklearn.mixture import GaussianMixture  # lazy: importing sklearn is slow

    codes = _check_codes(codes)
    gmm = GaussianMixture(
        num_components,
        covariance_type="full",
        max_iter=max_iter,
        reg_covar=reg_covar,
        random_state=seed,
    ).fit(codes.astype(np.float64))
    return GaussianMixtureSampler(
        weights=gmm.weights_.astype(np.float32),
        means=gmm.means_.astype(np.float32),
        scale_trils=np.linalg.cholesky(gmm.covariances_).astype(np.float32),
    )


def fit_normal(codes: np.ndarray) -> StandardNormalSampler:
    """N(0, I_K) for codes [N, K] (nothing is fitted: the baseline)."""
    return StandardNormalSampler(_check_codes(codes).shape[1])


# ------------------------------------------------------------------ two-stage VAE
@dataclasses.dataclass(frozen=True)
class TwoStageSampler:
    """The second-stage VAE of Dai & Wipf 2019, §4, over standardised codes.

    ``model`` / ``params``: a VAE over z_std = (z - shift) / scale [K] with latent
    u [K'] and a Gaussian p(z_std|u) of one learned variance (their gamma);
    ``shift``, ``scale`` [K]: the codes' mean and standard deviation;
    ``objective``: the training objective's mean over each logged window.
    """

    model: nn.Module
    params: Any
    shift: np.ndarray
    scale: np.ndarray
    objective: tuple[float, ...] = ()

    def sample(self, key: jax.Array, n: int) -> np.ndarray:
        """z = shift + scale E[z_std|u], u ~ N(0, I): [n, K] (decoder means, as Dai &
        Wipf sample, not draws of p(z|u))."""
        u = self.model.sample_latents(self.params, key, int(n))  # [n, K']
        z_std = self.model.decode_mean(self.params, u)  # [n, K]
        return np.asarray(self.shift[None] + self.scale[None] * z_std, np.float32)


def two_stage_config(
    latent_dim: int,
    *,
    hidden: Sequence[int] = (512, 512),
    num_steps: int = 10_000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> ml_collections.ConfigDict:
    """The second stage's config: an MLP VAE with K' = ``latent_dim``, p(z|u) Gaussian
    with one learned sigma (``objective.sigma = 0``: Dai & Wipf's learned gamma),
    ``num_steps`` Adam steps. Dai & Wipf 2019 use K' = K and three 1024-unit layers;
    ``hidden`` defaults smaller for CPUs."""
    config = default.get_config()
    config.seed = seed
    config.model.update(kind="vae", architecture="mlp", latent_dim=int(latent_dim))
    config.model.hidden = tuple(hidden)
    config.objective.update(name="elbo", likelihood="gaussian", sigma=0.0)
    config.optim.learning_rate = learning_rate
    config.train.update(
        batch_size=batch_size,
        num_steps=num_steps,
        steps_per_dispatch=min(500, num_steps),
        log_every=min(500, num_steps),
        checkpoint_every=num_steps,  # nothing is saved: trained in memory
        write_figures=False,
    )
    return config


def codes_dataset(codes: np.ndarray) -> data_lib.Dataset:
    """``codes: [N, K]`` as a ``data.Dataset``: all rows the training split (image
    shape (K, 1)), no labels and empty validation and test splits."""
    codes = np.ascontiguousarray(_check_codes(codes), np.float32)
    empty = codes[:0]
    return data_lib.Dataset(
        "codes", codes, empty, empty, None, None, None, (codes.shape[1], 1)
    )


def fit_two_stage(
    codes: np.ndarray, config: ml_collections.ConfigDict | None = None
) -> TwoStageSampler:
    """Trains the second-stage VAE of Dai & Wipf 2019, §4 on ``codes: [N, K]``.

    The codes are standardised per dimension first (an affine map the decoder could
    absorb; it only eases optimisation) and the VAE of ``config`` (default
    ``two_stage_config(K)``) is built by ``build.build_experiment`` on
    ``codes_dataset`` and trained by ``loop.run_loop``, the library's step loop
    (scan-fused chunks, no checkpoints). Raises ``loop.NonFiniteLossError`` on a
    non-finite step."""
    codes = _check_codes(codes).astype(np.float64)
    shift, scale = codes.mean(axis=0), codes.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    config = config if config is not None else two_stage_config(codes.shape[1])
    exp = build.build_experiment(config, codes_dataset((codes - shift) / scale))
    objective = []

    def check(metrics, first_step):
        bad = loop.nonfinite_step(metrics["nonfinite"], first_step)
        if bad is not None:
            raise loop.NonFiniteLossError(
                f"Two-stage VAE: non-finite loss or gradient at step {bad}; lower "
                "its optim.learning_rate."
            )

    hooks = loop.LoopHooks(
        check=check,
        log=lambda window, step: objective.append(
            loop.window_means(window)["objective"]
        ),
        save=lambda state, step: None,
        saved_in="memory (not saved)",
    )
    cfg = config.train
    cadence = loop.Cadence(cfg.steps_per_dispatch, cfg.log_every, exp.total_steps)
    state = loop.run_loop(
        exp.init_state(), 0, exp.total_steps, cadence, exp.chunk_runner(), hooks
    )
    return TwoStageSampler(
        exp.model,
        jax.device_get(state.params),
        shift.astype(np.float32),
        scale.astype(np.float32),
        tuple(objective),
    )


# ------------------------------------------------------------------ runs
SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "normal": fit_normal,  # N(0, I), no fit
    "gmm": fit_gmm,  # Ghosh et al. 2020
    "two_stage": fit_two_stage,  # Dai & Wipf 2019
}


def training_codes(run: runs.Run, max_examples: int | None = None) -> np.ndarray:
    """The codes [N, K] of the run's training split as the run scores it
    (``run.eval_split("train")``, the first ``max_examples`` rows if given)."""
    x = run.eval_split("train")
    return run.encode(x if max_examples is None else x[:max_examples])


def fit_sampler(
    run: runs.Run, kind: str = "gmm", *, max_examples: int | None = None, **options
) -> Sampler:
    """``SAMPLERS[kind]`` fitted to ``training_codes(run, max_examples)``; ``options``
    go to the fit (e.g. ``num_components`` for "gmm", ``config`` for "two_stage")."""
    if kind not in SAMPLERS:
        raise ValueError(f"Unknown sampler {kind!r}; choose one of {sorted(SAMPLERS)}.")
    return SAMPLERS[kind](training_codes(run, max_examples), **options)


def decode_samples(
    run: runs.Run, sampler: Sampler, n: int, key: jax.Array, clip: bool = True
) -> np.ndarray:
    """Decoder means g(z) = E[x|z] of n codes z ~ ``sampler``: [n, D], pixels clipped
    to the data's range [0, 1] unless ``clip`` is False (an autoencoder's linear
    output layer is unbounded)."""
    images = run.decode(sampler.sample(key, n))
    return np.clip(images, 0.0, 1.0) if clip else images


def sample_quality(
    run: runs.Run,
    sampler: Sampler,
    split: str = "test",
    num_samples: int = 10_000,
    *,
    key: jax.Array | None = None,
    cache_dir=None,
    classifier_steps: int = quality_lib.NUM_STEPS,
) -> dict[str, Any]:
    """``sample_quality.sample_quality`` of min(``num_samples``, N) ex-post samples
    (``decode_samples``, key default ``fold_in(keys["eval"], 1_000_003)``) against as
    many ``split`` images, with training (for the train split, validation) images as
    the real-vs-real reference: the numbers ``evaluate_run``'s ``sample_quality``
    section gives for z ~ p(z), in the same classifier feature space."""
    real = run.dataset.images(getattr(run, split))
    n = min(num_samples, len(real))
    net = quality_lib.feature_classifier(
        run.dataset, cache_dir, num_steps=classifier_steps
    )
    key = jax.random.fold_in(run.keys["eval"], SAMPLE_FOLD) if key is None else key
    samples = decode_samples(run, sampler, n, key)
    reference = run.dataset.images(run.valid if split == "train" else run.train)
    reference = reference[:n] if len(reference) > 1 else None
    out: dict[str, Any] = quality_lib.sample_quality(net, samples, real[:n], reference)
    out.update(
        num_samples=n,
        sampler=type(sampler).__name__,
        classifier_test_accuracy=net.info.get("test_accuracy"),
        feature_space=quality_lib.FEATURE_SPACE.format(
            units=net.model.widths[-1], dataset=run.dataset.name
        ),
    )
    return out


def _check_codes(codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"Expected codes z: [N >= 2, K], got shape {codes.shape}.")
    if not np.all(np.isfinite(codes)):
        raise ValueError("The codes hold NaN or inf: the model's encoder diverged.")
    return codes
