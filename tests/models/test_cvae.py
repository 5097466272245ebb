"""The conditional VAE (Sohn et al. 2015): label columns appended by the data layer,
log p(x|z, y) and the conditional ELBO against NumPy, the decoder's use of y, and
the bundled config through the runner, ``load_run`` and the evaluator, where a
classifier must read conditional samples as their condition."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_checks, data, evaluate_run, loop, models, runs
from vae_jax.configs import cvae_mnist

from helpers import model_config, tiny_model

SHAPE, C, K = (2, 3), 4, 3
D = math.prod(SHAPE)


def _tiny_cvae(seed=0):
    model = models.build_model(
        model_config(kind="cvae", hidden=(8,), latent_dim=K, num_classes=C),
        likelihood="bernoulli",
        image_shape=SHAPE,
    )
    return model, model.init(jax.random.key(seed), jnp.zeros(D + C))


def _inputs(n=5, seed=1):
    rng = np.random.default_rng(seed)
    pixels = (rng.uniform(size=(n, D)) < 0.5).astype(np.float32)
    labels = rng.integers(0, C, n)
    return np.concatenate([pixels, np.eye(C, dtype=np.float32)[labels]], 1), labels


def _np_bernoulli_log_lik(x, logits):
    x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def test_with_one_hot_labels_appends_the_labels_and_rejects_bad_ones():
    rng = np.random.default_rng(0)
    split = lambda n: rng.uniform(size=(n, D)).astype(np.float32)
    labels = {n: rng.integers(0, C, n).astype(np.int32) for n in (7, 3, 4)}
    ds = data.Dataset(
        "toy", split(7), split(3), split(4), labels[7], labels[3], labels[4], SHAPE
    )
    out = data.with_one_hot_labels(ds, C)
    assert out.condition_dim == C and out.input_dim == D + C and out.dim == D
    for name, n in (("train", 7), ("valid", 3), ("test", 4)):
        x = getattr(out, name)
        np.testing.assert_array_equal(out.images(x), getattr(ds, name))
        np.testing.assert_array_equal(np.argmax(x[:, D:], 1), labels[n])
        np.testing.assert_array_equal(x[:, D:].sum(1), 1.0)
    with pytest.raises(data.DataError, match="outside the model's 2 classes"):
        data.with_one_hot_labels(ds, 2)
    with pytest.raises(data.DataError, match="already ends in label columns"):
        data.with_one_hot_labels(out, C)
    unlabelled = dataclasses.replace(ds, valid_labels=None)
    with pytest.raises(data.DataError, match="needs labels"):
        data.with_one_hot_labels(unlabelled, C)


def test_log_px_is_the_bernoulli_likelihood_of_the_pixels_given_z_and_y():
    model, params = _tiny_cvae()
    xs, labels = _inputs()
    z = np.random.default_rng(2).normal(size=(4, K)).astype(np.float32)
    for x, y in zip(xs, labels):
        zy = np.concatenate([z, np.tile(np.eye(C)[y], (4, 1))], 1).astype(np.float32)
        logits = model.apply(params, jnp.asarray(zy), method="decode")["logits"]
        expected = _np_bernoulli_log_lik(x[:D], logits)  # pixels only, given [z, y]
        got = model.log_px(params, jnp.asarray(x), jnp.asarray(z))
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_the_decoder_reads_the_label():
    model, params = _tiny_cvae()
    key = jax.random.key(0)  # the same z for every class
    latents = [model.conditional_latents(params, key, jnp.array([y])) for y in range(C)]
    means = [model.decode_mean(params, zy) for zy in latents]
    np.testing.assert_array_equal(latents[1][:, :K], latents[0][:, :K])
    for y in range(1, C):  # same z, another class: another image
        assert float(jnp.max(jnp.abs(means[y] - means[0]))) > 1e-4
    assert means[0].shape == (1, D)


def test_conditional_elbo_terms_and_log_weights_match_numpy():
    model, params = _tiny_cvae()
    xs, _ = _inputs()
    key = jax.random.key(5)
    for x in xs:
        mean, logvar = model.apply(params, jnp.asarray(x), method="encode")
        mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
        kl = 0.5 * np.sum(np.exp(logvar) + mean**2 - 1.0 - logvar)
        recon, got_kl = model.elbo_terms(params, jnp.asarray(x), key, 3)
        np.testing.assert_allclose(got_kl, kl, rtol=1e-5)
        eps = np.asarray(jax.random.normal(key, (3, K)), np.float64)
        z = mean + np.exp(0.5 * logvar) * eps
        zy = np.concatenate([z, np.tile(x[D:], (3, 1))], 1).astype(np.float32)
        logits = model.apply(params, jnp.asarray(zy), method="decode")["logits"]
        log_px = _np_bernoulli_log_lik(x[:D], logits)
        np.testing.assert_allclose(recon, -log_px.mean(), rtol=1e-5)
        log_pz = -0.5 * np.sum(z**2 + np.log(2 * np.pi), 1)
        log_qz = -0.5 * np.sum(eps**2 + logvar + np.log(2 * np.pi), 1)
        log_w, _ = model.log_weights(params, jnp.asarray(x), key, 3)
        np.testing.assert_allclose(log_w, log_px + log_pz - log_qz, rtol=1e-4)


def test_code_carries_the_label_and_reconstructions_are_images():
    model, params = _tiny_cvae()
    xs, labels = _inputs()
    code = np.asarray(model.code(params, jnp.asarray(xs)))
    assert code.shape == (len(xs), K + C)
    np.testing.assert_array_equal(np.argmax(code[:, K:], 1), labels)
    assert model.reconstruct(params, jnp.asarray(xs)).shape == (len(xs), D)
    (means,) = model.posterior_means(params, jnp.asarray(xs[0]), jax.random.key(0))
    assert means.shape == (K,)
    z = model.sample_latents(params, jax.random.key(1), 200)
    counts = np.bincount(np.argmax(np.asarray(z[:, K:]), 1), minlength=C)
    assert z.shape == (200, K + C) and counts.min() > 20  # y uniform over classes


def test_estimate_parameters_counts_the_label_columns():
    _, params = _tiny_cvae()
    count = sum(p.size for p in jax.tree_util.tree_leaves(params))
    config = model_config(kind="cvae", hidden=(8,), latent_dim=K, num_classes=C)
    assert config_checks.estimate_parameters(config, SHAPE) == count


def test_conv_architecture_is_refused():
    with pytest.raises(ValueError, match="architecture='mlp' or 'linear'"):
        tiny_model((4, 4), kind="cvae", architecture="conv")


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    config = cvae_mnist.get_config()
    config.data.name = "digits"
    config.data.binarize = "none"
    config.model.update(hidden=(64,), latent_dim=2)
    config.objective.likelihood = "bernoulli"
    config.train.update(
        num_steps=300,
        log_every=300,
        checkpoint_every=300,
        batch_size=64,
        steps_per_dispatch=100,
        eval_every=0,
    )
    config.optim.learning_rate = 3e-3
    workdir = tmp_path_factory.mktemp("cvae")
    final = loop.train_and_evaluate(config, str(workdir))
    return workdir, final


def test_runner_trains_a_cvae_whose_samples_are_their_condition(cvae_run, tmp_path):
    workdir, final = cvae_run
    assert np.isfinite(final["test/elbo"])
    assert (workdir / "conditional_samples.png").is_file()
    run = runs.load_run(workdir)
    assert run.family == "cvae" and run.conditional and run.dataset.condition_dim == 10
    with pytest.raises(ValueError, match="10 one-hot label columns"):
        run.encode(run.dataset.images(run.test[:2]))
    result = evaluate_run.evaluate_run(
        run,
        nll_samples=10,
        quality_samples=300,
        classifier_cache=tmp_path,
        classifier_steps=200,
    )
    assert result["log_likelihood"]["nll"] < -result["elbo"]["elbo"] + 1e-3
    assert result["reconstruction"]["mse_per_pixel"] < 0.1
    accuracy = result["sample_quality"]["conditional_accuracy"]
    assert accuracy > 0.6  # chance is 0.1; a decoder that ignores y stays near it
    assert "conditional" in evaluate_run.summary(result)
