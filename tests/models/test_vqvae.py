"""The VQ-VAE family (van den Oord et al. 2017): nearest-codebook quantisation against
NumPy, the straight-through gradient, the losses of eq. 3 against their definitions
and where their gradients go, the codebook-use metrics, config checks and the
bundled config through the runner."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_checks, loop, objectives, runs, vq_objectives
from vae_jax import vector_quantize as vq
from vae_jax.configs import vqvae_fashion

from helpers import make_config, tiny_model

SHAPE, HIDDEN, N, C, M = (4, 4), (8,), 3, 2, 5


def _tiny_vqvae(seed=0):
    return tiny_model(
        SHAPE,
        kind="vqvae",
        hidden=HIDDEN,
        num_latents=N,
        code_dim=C,
        codebook_size=M,
        seed=seed,
    )


def _xs(n=6, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, math.prod(SHAPE)))


def _loss_one(model, commitment=0.25):
    return vq_objectives.vq_for(None, model, lambda field: commitment)


def _np_nearest(z_e, codebook):
    """argmin_j ||z_n - e_j||^2 in float64 by brute force. [..., N, C], [M, C] -> [..., N]."""
    z_e, codebook = np.asarray(z_e, np.float64), np.asarray(codebook, np.float64)
    d = ((z_e[..., :, None, :] - codebook) ** 2).sum(-1)
    return d.argmin(-1)


def test_quantize_picks_the_nearest_codebook_vector():
    rng = np.random.default_rng(0)
    z_e = rng.normal(size=(6, 4, 3)).astype(np.float32)
    codebook = rng.normal(size=(9, 3)).astype(np.float32)
    z_q, indices = vq.quantize(jnp.asarray(z_e), jnp.asarray(codebook))
    expected = _np_nearest(z_e, codebook)
    assert len(np.unique(expected)) > 3  # not one entry for all
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(z_q, codebook[expected])


def test_the_models_code_is_the_nearest_codebook_entry_of_its_code_vectors():
    model, params = _tiny_vqvae()
    xs = _xs(8)
    z_e = model.code_vectors(params, xs)
    assert z_e.shape == (8, N, C)
    codebook = np.asarray(params["params"]["codebook"])
    expected = _np_nearest(z_e, codebook)
    np.testing.assert_array_equal(model.code_indices(params, xs), expected)
    np.testing.assert_array_equal(
        model.code(params, xs), codebook[expected].reshape(8, N * C)
    )
    np.testing.assert_allclose(
        model.reconstruct(params, xs),
        model.decode_mean(params, codebook[expected].reshape(8, N * C)),
        rtol=1e-6,
        atol=1e-6,
    )


def test_straight_through_gradient_is_the_decoders_gradient_at_z_q_exactly():
    """On dyadic values z_e + (z_q - z_e) = z_q exactly, so the gradient w.r.t. z_e
    through the estimator is, bit for bit, that of the same loss with the quantiser
    replaced by the identity, taken at z_q."""
    model, params = _tiny_vqvae()
    rng = np.random.default_rng(3)
    codebook = rng.integers(-8, 9, size=(M, C)) / 8.0
    params["params"]["codebook"] = jnp.asarray(codebook, jnp.float32)
    z_e = jnp.asarray(rng.integers(-8, 9, size=(N, C)) / 8.0, jnp.float32)
    x = jnp.asarray(_xs(1)[0], jnp.float32)

    def loss_at(z):  # the loss with the identity for a quantiser
        return jnp.sum(jnp.square(x - model.decode_mean(params, z.reshape(-1))))

    def loss_through_quantiser(z):
        z_q, _ = vq.quantize(z, params["params"]["codebook"])
        return loss_at(vq.straight_through(z, z_q))

    z_q, _ = vq.quantize(z_e, params["params"]["codebook"])
    assert not np.array_equal(z_q, z_e)
    got = jax.grad(loss_through_quantiser)(z_e)
    assert np.abs(got).max() > 0
    np.testing.assert_array_equal(got, jax.grad(loss_at)(z_q))


def test_the_encoders_reconstruction_gradient_is_the_decoders_at_z_q():
    """d ||x - g(.)||^2 / d b (b the code layer's bias, dz_e / db = I) equals the
    decoder's gradient at z_q = code(x): the model wires the estimator in."""
    model, params = _tiny_vqvae()
    x = jnp.asarray(_xs(1)[0], jnp.float32)
    loss_one = _loss_one(model)

    def squared_error(p):
        return loss_one(p, x, jax.random.key(0), {})[1]["squared_error"]

    got = jax.grad(squared_error)(params)["params"]["to_code"]["bias"]
    z_q = model.code(params, x)
    expected = jax.grad(
        lambda z: jnp.sum(jnp.square(x - model.decode_mean(params, z)))
    )(z_q)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_losses_match_their_definitions():
    model, params = _tiny_vqvae()
    loss_one = _loss_one(model, commitment=0.3)
    codebook = np.asarray(params["params"]["codebook"], np.float64)
    for x in _xs(4):
        value, metrics = loss_one(params, jnp.asarray(x), jax.random.key(0), {})
        z_e = np.asarray(model.code_vectors(params, x), np.float64)  # [N, C]
        e = codebook[_np_nearest(z_e, codebook)]
        x_hat = np.asarray(model.decode_mean(params, e.reshape(-1)), np.float64)
        squared_error = np.sum((x - x_hat) ** 2)
        distance = np.sum((z_e - e) ** 2)  # both terms' value: ||z_e - e||^2
        np.testing.assert_allclose(metrics["squared_error"], squared_error, rtol=1e-5)
        np.testing.assert_allclose(metrics["mse"], squared_error / x.size, rtol=1e-5)
        np.testing.assert_allclose(metrics["codebook_loss"], distance, rtol=1e-5)
        np.testing.assert_allclose(metrics["commitment_loss"], distance, rtol=1e-5)
        np.testing.assert_allclose(
            value, squared_error + distance + 0.3 * distance, rtol=1e-5
        )


def _grads(model, params, metric):
    loss_one = _loss_one(model)
    x = jnp.asarray(_xs(3), jnp.float32)

    def one(p, xi):
        value, metrics = loss_one(p, xi, jax.random.key(0), {})
        return value if metric == "value" else metrics[metric]

    def f(p):
        return jnp.mean(jax.vmap(lambda xi: one(p, xi))(x))

    return jax.grad(f)(params)["params"]


def _norm(tree):
    return sum(float(jnp.sum(jnp.square(a))) for a in jax.tree.leaves(tree))


def test_codebook_loss_moves_the_codebook_and_not_the_encoder():
    model, params = _tiny_vqvae()
    grads = _grads(model, params, "codebook_loss")
    assert _norm(grads["encoder"]) == 0 and _norm(grads["to_code"]) == 0
    assert _norm(grads["decoder"]) == 0
    # d/de_j mean_x sum_n [k_n = j] ||z_n - e_j||^2 = mean_x sum_n [k_n = j] 2(e_j - z_n)
    xs = _xs(3)
    z_e = np.asarray(model.code_vectors(params, xs), np.float64)  # [B, N, C]
    codebook = np.asarray(params["params"]["codebook"], np.float64)
    k = _np_nearest(z_e, codebook)
    expected = np.zeros_like(codebook)
    np.add.at(expected, k.reshape(-1), 2 * (codebook[k] - z_e).reshape(-1, C))
    np.testing.assert_allclose(grads["codebook"], expected / 3, rtol=1e-5, atol=1e-7)
    # the objective weighs it by 1 (beta weighs the commitment term) and the codebook
    # gets nothing else
    total = _grads(model, params, "value")["codebook"]
    np.testing.assert_allclose(total, expected / 3, rtol=1e-5, atol=1e-7)


def test_commitment_loss_moves_the_encoder_and_not_the_codebook():
    model, params = _tiny_vqvae()
    grads = _grads(model, params, "commitment_loss")
    assert _norm(grads["codebook"]) == 0 and _norm(grads["decoder"]) == 0
    assert _norm(grads["encoder"]) > 0 and _norm(grads["to_code"]) > 0


def test_reconstruction_moves_encoder_and_decoder_and_not_the_codebook():
    model, params = _tiny_vqvae()
    grads = _grads(model, params, "squared_error")
    assert _norm(grads["codebook"]) == 0
    assert _norm(grads["encoder"]) > 0 and _norm(grads["decoder"]) > 0


def test_perplexity_and_dead_codes_on_hand_made_usage():
    indices = jnp.asarray([[0, 0], [1, 3]])  # p = (1/2, 1/4, 0, 1/4, 0)
    stats = vq.usage_statistics(indices, 5)
    p = np.array([0.5, 0.25, 0.25])
    np.testing.assert_allclose(stats["perplexity"], np.exp(-np.sum(p * np.log(p))))
    assert float(stats["dead_codes"]) == pytest.approx(2 / 5)
    uniform = vq.usage_statistics(jnp.arange(8) % 4, 4)
    assert float(uniform["perplexity"]) == pytest.approx(4.0)
    assert float(uniform["dead_codes"]) == 0.0
    single = vq.usage_statistics(jnp.full((3, 2), 2), 6)
    assert float(single["perplexity"]) == pytest.approx(1.0)
    assert float(single["dead_codes"]) == pytest.approx(5 / 6)


def test_batch_objective_reports_codebook_use_and_adds_nothing():
    model, params = _tiny_vqvae()
    loss_one = _loss_one(model)
    xs = jnp.asarray(_xs(7), jnp.float32)
    value, aux = objectives.batch_mean(loss_one)(params, xs, jax.random.key(0), {})
    values, _ = objectives.per_example(loss_one)(params, xs, jax.random.key(0), {})
    np.testing.assert_allclose(value, values.mean(), rtol=1e-6)
    k = _np_nearest(model.code_vectors(params, xs), params["params"]["codebook"])
    p = np.bincount(k.reshape(-1), minlength=M) / k.size
    used = p[p > 0]
    np.testing.assert_allclose(
        aux["perplexity"], np.exp(-np.sum(used * np.log(used))), rtol=1e-5
    )
    np.testing.assert_allclose(aux["dead_codes"], np.mean(p == 0))


def test_commitment_weight_comes_from_the_level():
    model, params = _tiny_vqvae()
    config = make_config(
        model={
            "kind": "vqvae",
            "hidden": HIDDEN,
            "num_latents": N,
            "code_dim": C,
            "codebook_size": M,
        },
        objective={"name": "vq"},
    )
    x = jnp.asarray(_xs(1)[0], jnp.float32)
    levels = {"commitment": jnp.asarray(2.0)}
    loss_one = objectives.make_objective(config, model, levels=levels)
    value, m = loss_one(params, x, jax.random.key(0), {})
    expected = m["squared_error"] + m["codebook_loss"] + 2.0 * m["commitment_loss"]
    np.testing.assert_allclose(value, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"objective": {"beta": 2.0}}, "set beta=1"),
        ({"objective": {"commitment": -1.0}}, "commitment"),
        ({"model": {"codebook_size": 0}}, "codebook_size"),
        ({"model": {"kind": "ae"}}, "trains with objective.name"),
    ],
)
def test_bad_vq_configs_are_rejected(overrides, message):
    config = vqvae_fashion.get_config()
    for section, values in overrides.items():
        config[section].update(values)
    with pytest.raises(ValueError, match=message):
        config_checks.validate_config(config)


def test_bundled_config_passes_the_checks():
    config_checks.validate_config(vqvae_fashion.get_config())


@pytest.mark.parametrize(
    "architecture", ["mlp", pytest.param("conv", marks=pytest.mark.slow)]
)
def test_runner_trains_the_bundled_config_on_digits(tmp_path, architecture):
    config = vqvae_fashion.get_config()
    config.data.name = "digits"  # 8 x 8: the conv trunk needs sides divisible by 4
    config.model.update(num_latents=4, code_dim=3, codebook_size=8)
    config.model.update(architecture=architecture, hidden=(16,), conv_features=4)
    config.train.update(
        num_steps=5, log_every=5, checkpoint_every=5, batch_size=32, eval_every=0
    )
    config.train.write_figures = False
    final = loop.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(final["test/squared_error"])
    assert final["test/codebook_loss"] > 0
    run = runs.load_run(tmp_path)
    assert run.family == "vqvae" and not run.generative and run.step == 5
    codes = np.asarray(run.encode(run.test[:3]))
    assert codes.shape == (3, 4 * 3)
    codebook = np.asarray(run.params["params"]["codebook"])
    gaps = ((codes.reshape(-1, 1, 3) - codebook) ** 2).sum(-1).min(-1)
    np.testing.assert_array_equal(gaps, 0.0)  # every code vector is a codebook entry
    with pytest.raises(NotImplementedError, match="no prior"):
        run.sample(2, jax.random.key(0))
