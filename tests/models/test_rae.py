"""The RAE family (Ghosh et al. 2020): its objectives against their definitions in
NumPy float64 (own forward pass, finite-difference Jacobians), the decoder's kernels,
config checks, a vmapped sweep over the penalty weights and the bundled config."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import config_checks, data, loop, models, objectives, runs
from vae_jax.configs import rae_mnist
from vae_jax.sweep import launch, vmapped

from helpers import make_config, model_config, tiny_model

SHAPE, HIDDEN, K = (4, 4), (8, 6), 3


def _random_params(params, seed=0, scale=0.5):
    """Every leaf (biases too) replaced by N(0, scale^2) draws: no zero biases."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: jnp.asarray(scale * rng.normal(size=a.shape), jnp.float32), params
    )


def _tiny_rae(seed=0):
    model, params = tiny_model(SHAPE, kind="rae", hidden=HIDDEN, latent_dim=K)
    return model, _random_params(params, seed)


def _dense(layer, h):
    return h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"])


def _np_encode(params, x):
    """f(x) of the MLP RAE in float64: ReLU layers, then the linear code layer."""
    p = params["params"]
    h = x
    for name in ("Dense_0", "Dense_1"):
        h = np.maximum(_dense(p["encoder"][name], h), 0.0)
    return _dense(p["to_code"], h)


def _np_decode(params, z):
    """g(z) in float64: ReLU layers, then the linear output layer."""
    p = params["params"]["decoder"]
    h = z
    for name in ("Dense_0", "Dense_1"):
        h = np.maximum(_dense(p[name], h), 0.0)
    return _dense(p["output"], h)


def _np_jacobian(params, z, h=1e-6):
    """dg/dz [D, K] by central differences in float64."""
    cols = [
        (_np_decode(params, z + h * e) - _np_decode(params, z - h * e)) / (2 * h)
        for e in np.eye(len(z))
    ]
    return np.stack(cols, axis=1)


def _decoder_kernel_norm2(params):
    """||theta||^2 over exactly the decoder's three kernels (no biases, no encoder)."""
    p = params["params"]["decoder"]
    return sum(
        np.sum(np.square(np.asarray(p[name]["kernel"], np.float64)))
        for name in ("Dense_0", "Dense_1", "output")
    )


def _config(name, **objective):
    return make_config(
        model={"kind": "rae", "hidden": HIDDEN, "latent_dim": K},
        objective={"name": name, **objective},
    )


def _xs(n=6, seed=1):
    return np.random.default_rng(seed).uniform(size=(n, math.prod(SHAPE)))


def test_rae_l2_batch_loss_matches_its_definition():
    model, params = _tiny_rae()
    beta, lam = 0.3, 0.05
    config = _config("rae_l2", code_penalty=beta, decoder_weight_decay=lam)
    loss = objectives.batch_mean(objectives.make_objective(config, model))
    xs = _xs()
    value, aux = loss(params, jnp.asarray(xs, jnp.float32), jax.random.key(0), {})
    z = _np_encode(params, xs)  # [B, K]
    squared_error = np.sum(np.square(xs - _np_decode(params, z)), axis=1)  # [B]
    norm2 = _decoder_kernel_norm2(params)
    per_example = squared_error + beta * 0.5 * np.sum(np.square(z), axis=1)
    np.testing.assert_allclose(value, per_example.mean() + lam * norm2, rtol=1e-5)
    np.testing.assert_allclose(aux["decoder_weight_norm2"], norm2, rtol=1e-5)
    np.testing.assert_allclose(aux["squared_error"], squared_error.mean(), rtol=1e-5)
    np.testing.assert_allclose(aux["mse"], squared_error.mean() / xs.shape[1], 1e-5)
    # The per-example part (evaluation) leaves the batch-level weight penalty out.
    values, _ = objectives.per_example(objectives.make_objective(config, model))(
        params, jnp.asarray(xs, jnp.float32), jax.random.key(0), {}
    )
    np.testing.assert_allclose(values, per_example, rtol=1e-5)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_decoder_kernels_are_exactly_the_decoders_kernels(architecture):
    model = models.build_model(
        model_config(
            kind="rae",
            architecture=architecture,
            hidden=(5,),
            conv_features=2,
            latent_dim=K,
        ),
        likelihood="bernoulli",
        image_shape=(8, 8),
    )
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(64))
    params = _random_params(shapes)  # no op-by-op conv init
    names = {
        "mlp": ("Dense_0", "output"),
        "conv": ("Dense_0", "ConvTranspose_0", "ConvTranspose_1"),
    }[architecture]
    decoder = params["params"]["decoder"]
    expected = sorted(decoder[n]["kernel"].shape for n in names)
    assert sorted(w.shape for w in model.decoder_kernels(params)) == expected
    got = sum(float(jnp.sum(w**2)) for w in model.decoder_kernels(params))
    want = sum(float(jnp.sum(decoder[n]["kernel"] ** 2)) for n in names)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_rae_gp_matches_a_finite_difference_jacobian():
    model, params = _tiny_rae(seed=2)
    beta, gamma = 0.3, 0.7
    config = _config("rae_gp", code_penalty=beta, gradient_penalty=gamma)
    loss = objectives.per_example(objectives.make_objective(config, model))
    xs = _xs(seed=3)
    values, aux = loss(params, jnp.asarray(xs, jnp.float32), jax.random.key(0), {})
    for b, x in enumerate(xs):
        z = _np_encode(params, x)
        jacobian = _np_jacobian(params, z)  # [D, K]
        assert jacobian.shape == (math.prod(SHAPE), K)
        frobenius2 = np.sum(np.square(jacobian))
        np.testing.assert_allclose(aux["jacobian_norm2"][b], frobenius2, rtol=1e-4)
        expected = (
            np.sum(np.square(x - _np_decode(params, z)))
            + beta * 0.5 * np.sum(np.square(z))
            + gamma * frobenius2
        )
        np.testing.assert_allclose(values[b], expected, rtol=1e-5)


def test_rae_gp_probes_estimate_the_frobenius_norm_without_bias():
    """gradient_penalty_probes = m: Hutchinson's (1/m) sum ||J v_i||^2 averages to
    the finite-difference ||J||_F^2 (within 4 standard errors over 4,000 keys),
    varies from key to key, and its variance falls as 1/m."""
    model, params = _tiny_rae(seed=2)
    x = _xs(n=1, seed=3)
    frobenius2 = np.sum(np.square(_np_jacobian(params, _np_encode(params, x[0]))))
    draws = {}
    for probes in (1, 2):
        config = _config("rae_gp", gradient_penalty=1.0, gradient_penalty_probes=probes)
        loss = objectives.per_example(objectives.make_objective(config, model))
        xs = jnp.repeat(jnp.asarray(x, jnp.float32), 4000, axis=0)
        _, aux = loss(params, xs, jax.random.key(7), {})  # a key per row
        draws[probes] = np.asarray(aux["jacobian_norm2"], np.float64)
        mean, se = draws[probes].mean(), draws[probes].std() / np.sqrt(4000)
        assert abs(mean - frobenius2) < 4 * se, (probes, mean, frobenius2, se)
    assert draws[1].std() > 0.05 * frobenius2  # an estimate, not the exact value
    np.testing.assert_allclose(draws[2].var() / draws[1].var(), 0.5, rtol=0.15)


def test_rae_gp_gradient_matches_finite_differences():
    """The penalty trains: d loss / d params along a random direction v against a
    central difference of the float64 loss (finite-difference Jacobians inside)."""
    model, params = _tiny_rae(seed=4)
    beta, gamma = 0.3, 2.0
    config = _config("rae_gp", code_penalty=beta, gradient_penalty=gamma)
    loss = objectives.batch_mean(objectives.make_objective(config, model))
    xs = _xs(n=4, seed=5)

    def np_loss(p):
        total = 0.0
        for x in xs:
            z = _np_encode(p, x)
            total += (
                np.sum(np.square(x - _np_decode(p, z)))
                + beta * 0.5 * np.sum(np.square(z))
                + gamma * np.sum(np.square(_np_jacobian(p, z, h=1e-5)))
            )
        return total / len(xs)

    grads = jax.grad(lambda p: loss(p, xs, jax.random.key(0), {})[0])(params)
    rng = np.random.default_rng(6)
    direction = jax.tree.map(lambda a: rng.normal(size=a.shape), params)
    along = sum(
        float(np.sum(np.asarray(g, np.float64) * v))
        for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(direction))
    )
    eps = 1e-4
    shifted = [
        jax.tree.map(
            lambda a, v, s=s: np.asarray(a, np.float64) + s * eps * v, params, direction
        )
        for s in (1.0, -1.0)
    ]
    numeric = (np_loss(shifted[0]) - np_loss(shifted[1])) / (2 * eps)
    np.testing.assert_allclose(along, numeric, rtol=2e-3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"objective": {"code_penalty": -1.0}}, "code_penalty=-1.0 must be >= 0"),
        ({"objective": {"decoder_weight_decay": -1e-7}}, "decoder_weight_decay"),
        ({"objective": {"gradient_penalty": -1.0}}, "gradient_penalty"),
        ({"objective": {"gradient_penalty_probes": -1}}, "gradient_penalty_probes"),
        ({"objective": {"beta": 2.0}}, "ignores objective.beta"),
        ({"model": {"kind": "ae"}}, "model.kind='ae' trains with"),
    ],
)
def test_bad_rae_configs_are_rejected(overrides, message):
    config = _config("rae_l2")
    for section, fields in overrides.items():
        config[section].update(fields)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        config_checks.validate_config(config)


def _sweep_base():
    return make_config(
        "quickstart",
        data={"valid_size": 0},
        model={"kind": "rae", "hidden": (16,), "latent_dim": 4},
        objective={"name": "rae_l2", "decoder_weight_decay": 1e-3},
        optim={"learning_rate": 3e-3},
        train={
            "num_steps": 20,
            "batch_size": 50,
            "steps_per_dispatch": 10,
            "log_every": 10,
            "checkpoint_every": 20,
            "write_figures": False,
        },
    )


@pytest.mark.parametrize("name", ["rae_l2", "rae_gp"])
def test_traced_penalty_weights_are_the_sweep_members(name):
    """A vmapped sweep member's weights (traced ``hyper``) are used, not those of the
    config its program was built from: the loss is its terms (weight-free metrics)
    recombined with the member's weights, and the objective bound to its config."""
    from vae_jax import build

    config = _sweep_base()
    config.objective.name = name
    exp = build.build_experiment(config)
    other = config.copy_and_resolve_references()
    other.objective.update(code_penalty=0.7, decoder_weight_decay=0.2)
    other.objective.gradient_penalty = 0.3
    params, x, key = exp.init_state().params, exp.train_x[:8], jax.random.key(3)
    value, aux = jax.jit(
        lambda h: objectives.batch_mean(vmapped.hyper_loss_one(exp, h))(
            params, x, key, {}
        )
    )(vmapped.hyper_values(other))
    expected = aux["squared_error"] + 0.7 * 0.5 * aux["code_norm2"]
    if name == "rae_l2":
        expected += 0.2 * aux["decoder_weight_norm2"]
    else:
        expected += 0.3 * aux["jacobian_norm2"]
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    bound = objectives.make_objective(other, exp.model)
    want = objectives.batch_mean(bound)(params, x, key, {})[0]
    np.testing.assert_allclose(value, want, rtol=1e-6)


@pytest.mark.slow  # three short trainings: ~15 s of CPU
def test_vmapped_sweep_over_the_code_penalty_matches_separate_runs(tmp_path):
    base = _sweep_base()
    sweep = [{"objective.code_penalty": 0.01}, {"objective.code_penalty": 30.0}]
    rows = launch.run_sweep(base, sweep, tmp_path / "vmap", mode="vmap")
    assert [r["status"] for r in rows] == ["done", "done"]
    norms = []
    for row, overrides in zip(rows, sweep):
        config = _sweep_base()
        config.objective.code_penalty = overrides["objective.code_penalty"]
        alone = tmp_path / f"alone_{row['name']}"
        final = loop.train_and_evaluate(config, str(alone))
        params_v = runs.load_run(tmp_path / "vmap" / row["name"]).params
        params_a = runs.load_run(alone).params
        for a, b in zip(jax.tree.leaves(params_v), jax.tree.leaves(params_a)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        norms.append(final["test/code_norm2"])
    assert norms[1] < norms[0]  # a larger beta shrinks the codes


@pytest.mark.slow
def test_runner_trains_the_bundled_rae_mnist_config(tmp_path):
    config = rae_mnist.get_config()
    config.model.hidden = (32,)
    config.train.update(
        num_steps=5, steps_per_dispatch=5, log_every=5, checkpoint_every=5
    )
    config.train.eval_batch_size = 2000
    try:
        final = loop.train_and_evaluate(config, str(tmp_path))
    except data.DataNotFoundError:
        pytest.skip("mnist files not found")
    assert np.isfinite(final["test/squared_error"]) and final["test/code_norm2"] > 0
    assert (tmp_path / "reconstructions.png").stat().st_size > 0
    run = runs.load_run(tmp_path)
    assert run.family == "rae" and not run.generative and run.step == 5
    assert run.encode(run.test[:3]).shape == (3, 20)
    with pytest.raises(NotImplementedError, match="no prior"):
        run.sample(2, jax.random.key(0))
