"""Limitation 5 of autoencoders: the same model and budget fall behind as data gets harder.

One VAE config (``vae_mnist``: MLP 784-400-20, Bernoulli p(x|z) on dynamically
binarized pixels) trained with the same number of steps on each dataset. Per dataset:
the test NLL bound -L_k (Burda et al. 2015, eq. 8) per image and per dimension (bits),
the squared error of reconstructions on grey levels, and the quality of prior samples
in the dataset's own classifier feature space (``sample_quality``): the Frechet
distance, which is only comparable within a dataset, is also given relative to the
feature spread tr(S_real) of the test images, and next to the distance other real test
images reach (``frechet_distance_data``).
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from vae_jax import build, evaluate
from vae_jax.configs import vae_mnist
from vae_jax.studies import autoencoders, sample_quality

DATASETS = ("mnist", "fashion_mnist")


def complexity_config(dataset_name: str, num_steps: int, seed: int = 0):
    """``vae_mnist`` on ``dataset_name`` for ``num_steps`` steps (figures off)."""
    config = vae_mnist.get_config()
    config.data.name = dataset_name
    config.seed = seed
    config.train.num_steps = num_steps
    config.train.log_every = config.train.checkpoint_every = num_steps
    return config


def relative_frechet(net, samples: np.ndarray, real: np.ndarray) -> float:
    """Frechet distance of ``samples`` to ``real`` in ``net``'s features divided by
    tr(S_real), the real features' total variance. samples, real: [N, D]."""
    features = net.features(real)
    distance = sample_quality.frechet_distance(net.features(samples), features)
    return distance / float(np.trace(np.cov(features, rowvar=False)))


def score_dataset(exp, params, dataset, net, *, num_test, num_samples, seed=0):
    """The row of one trained VAE: NLL bound (nats/image, bits/dim), grey-level
    reconstruction MSE, and prior-sample quality against ``num_test`` test images."""
    key = jax.random.key(seed)
    test = dataset.test[:num_test]
    binary = evaluate.fixed_binarization(test, jax.random.fold_in(key, 0))
    ll_fn = evaluate.make_log_likelihood_fn(exp.model.log_weights, num_samples)
    nll = evaluate.evaluate_log_likelihood(
        ll_fn, params, binary, 100, jax.random.fold_in(key, 1)
    )
    recon = autoencoders.reconstructions(exp.model, params, test)
    z = exp.model.sample_latents(params, jax.random.fold_in(key, 2), num_test)
    samples = np.asarray(exp.model.decode_mean(params, z))
    # the floor: other test images (training images sit closer to the classifier's
    # training features, which inflates their distance to test images)
    reference = dataset.test[num_test : 2 * num_test]
    quality = sample_quality.sample_quality(net, samples, test, reference=reference)
    return {
        "dataset": dataset.name,
        "nll_nats": nll["nll"],
        "nll_stderr": nll["nll_stderr"],
        "bits_per_dim": nll["nll"] / (dataset.dim * np.log(2.0)),
        "recon_mse": float(np.mean(np.square(test - recon))),
        "sample_fd": quality["frechet_distance"],
        "data_fd": quality["frechet_distance_data"],
        "sample_fd_relative": relative_frechet(net, samples, test),
        "sample_inception_score": quality["inception_score"],
        "data_inception_score": quality["inception_score_data"],
        "classifier_test_accuracy": net.info.get("test_accuracy", float("nan")),
    }, samples


def complexity_study(
    dataset_names=DATASETS,
    *,
    num_steps: int = 3000,
    num_test: int = 1000,
    num_samples: int = 100,
    seed: int = 0,
    done: dict | None = None,
    on_row=None,
    workdir=None,
) -> list[dict]:
    """Trains ``complexity_config(name, num_steps)`` per dataset and scores it
    (``score_dataset``, L_k with k = ``num_samples``). ``done``: rows already
    measured, by dataset name, reused; ``on_row(name, row)`` after each new one. With
    ``workdir``, writes samples_<dataset>.png (64 prior samples)."""
    done, rows = dict(done or {}), []
    for name in dataset_names:
        if name not in done:
            config = complexity_config(name, num_steps, seed)
            dataset = build.load_data(config)
            exp, params, _ = autoencoders.fit(config, dataset)
            net = sample_quality.feature_classifier(dataset)
            done[name], samples = score_dataset(
                exp, params, dataset, net, num_test=num_test, num_samples=num_samples
            )
            done[name]["num_steps"] = num_steps
            if workdir is not None:
                from vae_jax import plots  # lazy: matplotlib import

                plots.image_grid(
                    samples[:64].reshape(-1, *dataset.image_shape),
                    pathlib.Path(workdir) / f"samples_{name}.png",
                    title=f"{name}: VAE prior samples (mean of p(x|z))",
                    num_columns=8,
                )
            if on_row is not None:
                on_row(name, done[name])
        rows.append(done[name])
    return rows
