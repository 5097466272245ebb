"""A small MLP classifier on pixels, and how confidently it labels generated images.

The confidence test of generated samples: a decoded image "looks like a digit" when a
classifier trained on real digits gives one class probability > 0.9 (the idea behind
the Inception score, Salimans et al. 2016, with a pixel MLP in place of Inception).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import models
from vae_jax.studies import autoencoders


class ConvNet(nn.Module):
    """Three 3 x 3 convolutions (F, 2F, 2F channels; the first two with stride 2), ReLU,
    a global average pool and a linear layer to class logits: [..., H * W] -> [..., C].
    ``embed`` gives the pooled features [..., 2F], which a pooled map keeps nearly
    unchanged under small shifts of the input (LeCun et al. 1998; Lin et al. 2014)."""

    image_shape: Sequence[int]
    num_classes: int
    features: int = 16

    def setup(self):
        strides = (2, 2, 1)
        widths = (self.features, 2 * self.features, 2 * self.features)
        self.convs = [
            nn.Conv(w, (3, 3), strides=(s, s)) for w, s in zip(widths, strides)
        ]
        self.output = nn.Dense(self.num_classes)

    def embed(self, x):
        lead = x.shape[:-1]
        h = x.reshape(-1, *self.image_shape, 1)
        for conv in self.convs:
            h = nn.relu(conv(h))
        return h.mean(axis=(1, 2)).reshape(*lead, -1)

    def __call__(self, x):
        return self.output(self.embed(x))


def cross_entropy(params, x, y, *, model: nn.Module) -> jax.Array:
    """-log softmax(f(x))_y for one example. x: [D], y: int -> scalar."""
    return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), y)


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    key: jax.Array,
    *,
    num_classes: int = 10,
    hidden: Sequence[int] = (256,),
    num_steps: int = 3000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    model: nn.Module | None = None,
) -> tuple[nn.Module, dict]:
    """Adam on the mean cross-entropy of batches drawn with replacement, all steps in
    one ``lax.scan``. x: [N, D], y: [N] in 0..num_classes-1. ``model`` maps [..., D]
    to logits [..., C]; default an MLP with ``hidden`` ReLU layers. Returns (model,
    params)."""
    model = model or models.MLP(tuple(hidden), "relu", num_classes)
    init_key, data_key = jax.random.split(key)
    params = model.init(init_key, jnp.zeros(x.shape[1]))
    tx = optax.adam(learning_rate)
    x, y = jnp.asarray(x), jnp.asarray(y)
    per_example = jax.vmap(
        lambda p, xi, yi: cross_entropy(p, xi, yi, model=model), in_axes=(None, 0, 0)
    )

    def step(carry, key):
        params, opt_state = carry
        idx = jax.random.randint(key, (batch_size,), 0, x.shape[0])  # [B]
        grads = jax.grad(lambda p: per_example(p, x[idx], y[idx]).mean())(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    run = jax.jit(lambda carry, keys: jax.lax.scan(step, carry, keys)[0])
    params, _ = run((params, tx.init(params)), jax.random.split(data_key, num_steps))
    return model, params


def class_probabilities(model: models.MLP, params, x: np.ndarray) -> np.ndarray:
    """softmax(f(x)): [N, D] -> [N, C]."""
    return autoencoders.apply_batched(
        lambda xb: jax.nn.softmax(model.apply(params, xb)),
        np.asarray(x, np.float32),
        1000,
    )


def accuracy(model: models.MLP, params, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows with argmax_c p(c|x) = y. x: [N, D], y: [N]."""
    return float(np.mean(class_probabilities(model, params, x).argmax(axis=1) == y))


def inception_score(probs: np.ndarray) -> float:
    """exp(mean_i KL(p(y|x_i) || p(y))), p(y) = mean_i p(y|x_i) (Salimans et al. 2016):
    between 1 (all rows equal) and C (confident rows, classes equally often).
    probs: [N, C] -> scalar."""
    probs = np.asarray(probs, np.float64)
    marginal = probs.mean(axis=0, keepdims=True)  # [1, C]
    log_ratio = np.log(np.maximum(probs, 1e-30)) - np.log(np.maximum(marginal, 1e-30))
    return float(np.exp(np.mean(np.sum(probs * log_ratio, axis=1))))


def confidence_stats(probs: np.ndarray, threshold: float = 0.9) -> dict[str, float]:
    """probs: [N, C] -> fraction with max_c p > threshold, mean max_c p, the entropy
    (nats; log C = all classes equally often) of the argmax-class histogram, and the
    ``inception_score`` (confident *and* diverse)."""
    top = probs.max(axis=1)  # [N]
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    freq = counts[counts > 0] / len(probs)
    return {
        "frac_confident": float(np.mean(top > threshold)),
        "mean_max_prob": float(top.mean()),
        "class_entropy": float(-np.sum(freq * np.log(freq))),
        "inception_score": inception_score(probs),
    }


def prior_confidence(
    decode: Callable,
    predict_proba: Callable,
    key: jax.Array,
    num_samples: int,
    latent_dim: int,
    threshold: float = 0.9,
) -> dict[str, float]:
    """``confidence_stats`` of predict_proba(decode(z)) for z ~ N(0, I).

    decode: z [S, K] -> images [S, D]; predict_proba: [S, D] -> [S, C].
    """
    z = jax.random.normal(key, (num_samples, latent_dim))
    return confidence_stats(predict_proba(np.asarray(decode(z))), threshold)


@dataclasses.dataclass(frozen=True)
class PooledFeatures:
    """A trained ``ConvNet``: ``features`` (the pooled map) and class
    ``probabilities``, the interface of ``sample_quality.FeatureClassifier``."""

    model: ConvNet
    params: dict

    def features(self, x: np.ndarray) -> np.ndarray:
        """Pooled features: [N, D] -> [N, 2F]."""
        embed = lambda xb: self.model.apply(self.params, xb, method=ConvNet.embed)
        return autoencoders.apply_batched(embed, np.asarray(x, np.float32), 1000)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """p(y|x): [N, D] -> [N, C]."""
        return class_probabilities(self.model, self.params, x)


def train_pooled_features(x, y, key, image_shape, *, num_steps: int = 1500):
    """``train_classifier`` with a ``ConvNet`` on x: [N, H * W], y: [N]."""
    net = ConvNet(tuple(image_shape), int(y.max()) + 1)
    model, params = train_classifier(x, y, key, num_steps=num_steps, model=net)
    return PooledFeatures(model, params)
