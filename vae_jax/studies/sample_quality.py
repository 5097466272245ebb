"""Sample quality in the feature space of a small pixel classifier: a Frechet distance
and an Inception-style score. NOT the Inception FID / IS of the literature.

FID (Heusel et al. 2017) fits a Gaussian to the features of real and of generated
images and reports the Frechet (2-Wasserstein) distance between the two,
||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)); the Inception score (Salimans
et al. 2016) is exp E_x KL(p(y|x) || p(y)). Here both use an MLP (one hidden layer of
256 ReLU units, ``classifier.train_classifier``) trained on the dataset's own training
split, features = its hidden layer: numbers compare models on the same dataset and
classifier, never with published FID / IS values. The classifier is trained once per
dataset and cached on disk (``feature_classifier``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from collections.abc import Sequence

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from vae_jax import data as data_lib
from vae_jax import data_files, models
from vae_jax.studies import autoencoders, classifier

HIDDEN = (256,)
NUM_STEPS = 3000
FEATURE_SPACE = (
    "hidden layer ({units} ReLU units) of an MLP classifier trained on the {dataset} "
    "training split; NOT Inception features: compare only runs on the same dataset"
)


@dataclasses.dataclass(frozen=True)
class FeatureClassifier:
    """A pixel MLP classifier: ``features`` (its last hidden layer) and class
    ``probabilities``; ``info`` holds the dataset, settings and test accuracy."""

    model: models.MLP
    params: dict
    info: dict

    def features(self, x: np.ndarray) -> np.ndarray:
        """Hidden activations: [N, D] -> [N, H] (H = the last hidden width)."""
        trunk = models.MLP(tuple(self.model.widths), self.model.activation)
        layers = self.params["params"]
        inner = {"params": {k: v for k, v in layers.items() if k != "output"}}
        return autoencoders.apply_batched(
            lambda xb: trunk.apply(inner, xb), np.asarray(x, np.float32)
        )

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """p(y|x): [N, D] -> [N, C]."""
        return classifier.class_probabilities(self.model, self.params, x)


def default_cache_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/vae_jax/classifiers`` (``~/.cache/vae_jax/classifiers``)."""
    return data_files.cache_dir() / "classifiers"


def fingerprint(dataset: data_lib.Dataset, hidden, num_steps: int, seed: int) -> str:
    """12 hex digits naming the classifier of ``dataset``'s training split (its name,
    shape, labels and every 97th row) with these settings."""
    h = hashlib.sha256()
    images = dataset.images(dataset.train)
    settings = [dataset.name, list(images.shape), list(hidden), num_steps, seed]
    h.update(json.dumps(settings).encode())
    h.update(np.ascontiguousarray(dataset.train_labels).tobytes())
    h.update(np.ascontiguousarray(images[::97]).tobytes())
    return h.hexdigest()[:12]


def feature_classifier(
    dataset: data_lib.Dataset,
    cache_dir: str | pathlib.Path | None = None,
    *,
    hidden: Sequence[int] = HIDDEN,
    num_steps: int = NUM_STEPS,
    seed: int = 0,
) -> FeatureClassifier:
    """The classifier of ``dataset`` (``classifier.train_classifier`` on its training
    split and labels, ``jax.random.key(seed)``), loaded from
    ``<cache_dir>/<name>-<fingerprint>.msgpack`` or trained and saved there (default
    ``default_cache_dir()``); an unreadable cache file is replaced.
    Raises ValueError if the dataset has no labels."""
    if dataset.train_labels is None:
        raise ValueError(f"The {dataset.name} dataset has no labels to train on.")
    num_classes = int(dataset.train_labels.max()) + 1
    model = models.MLP(tuple(hidden), "relu", num_classes)
    cache = pathlib.Path(cache_dir or default_cache_dir()).expanduser()
    stem = f"{dataset.name}-{fingerprint(dataset, hidden, num_steps, seed)}"
    path, info_path = cache / f"{stem}.msgpack", cache / f"{stem}.json"
    template = model.init(jax.random.key(0), jnp.zeros(dataset.dim))
    if path.is_file() and info_path.is_file():
        try:
            params = flax.serialization.from_bytes(template, path.read_bytes())
            return FeatureClassifier(model, params, json.loads(info_path.read_text()))
        except (ValueError, KeyError, TypeError, OSError) as err:
            logging.warning("Retraining the classifier: %s unreadable (%s)", path, err)
    logging.info("Training the %s feature classifier (%d steps)", stem, num_steps)
    _, params = classifier.train_classifier(
        dataset.images(dataset.train),
        dataset.train_labels,
        jax.random.key(seed),
        num_classes=num_classes,
        hidden=hidden,
        num_steps=num_steps,
    )
    info = {"dataset": dataset.name, "hidden": list(hidden), "num_steps": num_steps}
    info["seed"] = seed
    if dataset.test_labels is not None and len(dataset.test):
        test_images = dataset.images(dataset.test)
        acc = classifier.accuracy(model, params, test_images, dataset.test_labels)
        info["test_accuracy"] = acc
    cache.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, flax.serialization.to_bytes(params))
    _write_atomic(info_path, json.dumps(info, indent=1).encode())
    return FeatureClassifier(model, params, info)


def _write_atomic(path: pathlib.Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def frechet_distance_gaussians(mean1, cov1, mean2, cov2) -> float:
    """||m1 - m2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between N(m1, S1) and N(m2, S2):
    the squared 2-Wasserstein distance (Dowson & Landau 1982). tr (S1 S2)^(1/2) = sum
    of the square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2) (symmetric PSD: no
    complex square roots). means [H], covs [H, H] -> scalar >= 0."""
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.maximum(w, 0.0))) @ v.T  # S1^(1/2)
    middle = root1 @ cov2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = np.sum(np.sqrt(np.maximum(eig, 0.0)))
    diff = mean1 - mean2
    distance = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * cross
    return float(max(distance, 0.0))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``frechet_distance_gaussians`` of Gaussians fitted to the rows of ``a: [N, H]``
    and ``b: [M, H]`` (biased with few rows: compare at equal N, M)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return frechet_distance_gaussians(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )


def sample_quality(
    net: FeatureClassifier,
    samples: np.ndarray,
    real: np.ndarray,
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores of generated ``samples: [M, D]`` against ``real: [N, D]`` images:
    ``frechet_distance`` (classifier features; lower is better), ``inception_score``
    of the samples and ``inception_score_data`` of the real images (between 1 and C,
    higher = confident and diverse), and with ``reference: [N', D]`` (other real
    images, e.g. training ones) ``frechet_distance_data``, the distance real images
    reach (a floor for the samples' one at these sizes)."""
    real_features = net.features(real)
    out = {
        "frechet_distance": frechet_distance(net.features(samples), real_features),
        "inception_score": classifier.inception_score(net.probabilities(samples)),
        "inception_score_data": classifier.inception_score(net.probabilities(real)),
    }
    if reference is not None:
        out["frechet_distance_data"] = frechet_distance(
            net.features(reference), real_features
        )
    return out
