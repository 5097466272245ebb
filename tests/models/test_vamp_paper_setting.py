"""The building blocks of Tomczak & Welling 2018's VampPrior setting (jmtomczak/
vae_vampprior) against hand computations: gated dense layers, untruncated He init,
the encoder's log-variance clipped as hardtanh(-6, 2), per-tensor gradient
normalisation before Adam (AdamNormGrad), and the paper config, built and trained for
a few steps on the bundled digits."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import build, config_checks, models, optim, train
from vae_jax.models import full_covariance, layers, vae

from helpers import make_config, model_config, tiny_model

LO, HI = -6.0, 2.0


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _f64(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _jitter(params, seed=1, scale=0.5):
    """``params`` with every leaf moved by N(0, scale^2) noise: nonzero biases."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    moved = [
        leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)
    ]
    return jax.tree.unflatten(treedef, moved)


# ------------------------------------------------------------ gated dense layers
def test_gated_dense_is_the_formula_by_hand():
    layer = layers.GatedDense(5)
    x = jax.random.normal(jax.random.key(0), (3, 4))
    params = _jitter(layer.init(jax.random.key(1), x))
    p = _f64(params["params"])
    assert set(p) == {"h", "g"}
    xs = np.asarray(x, np.float64)
    h = xs @ p["h"]["kernel"] + p["h"]["bias"]
    g = _sigmoid(xs @ p["g"]["kernel"] + p["g"]["bias"])
    np.testing.assert_allclose(layer.apply(params, x), h * g, rtol=1e-5, atol=1e-6)


def test_gated_mlp_chains_gated_layers_then_a_linear_output():
    mlp = layers.MLP((6, 5), "gated", output_dim=3)
    x = jax.random.normal(jax.random.key(0), (2, 4))
    params = _jitter(mlp.init(jax.random.key(1), x))
    p = _f64(params["params"])
    assert set(p) == {"GatedDense_0", "GatedDense_1", "output"}
    a = np.asarray(x, np.float64)
    for name in ("GatedDense_0", "GatedDense_1"):
        h, g = p[name]["h"], p[name]["g"]
        a = (a @ h["kernel"] + h["bias"]) * _sigmoid(a @ g["kernel"] + g["bias"])
    expected = a @ p["output"]["kernel"] + p["output"]["bias"]
    np.testing.assert_allclose(mlp.apply(params, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["vae", "vamp_vae", "ae", "flow_vae"])
def test_gated_activation_reaches_every_mlp_family_and_is_counted(kind):
    fields = {"kind": kind, "activation": "gated", "hidden": (7, 5), "latent_dim": 3}
    if kind == "vamp_vae":
        fields["num_pseudo_inputs"] = 4
    if kind == "flow_vae":
        fields["flow_length"] = 2
    _, params = tiny_model((2, 3), **fields)
    for trunk in ("encoder", "decoder"):
        names = set(params["params"][trunk])
        assert {"GatedDense_0", "GatedDense_1"} <= names, (trunk, names)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert config_checks.estimate_parameters(model_config(**fields), (2, 3)) == count


def test_gated_is_refused_by_conv_trunks_and_get_activation():
    with pytest.raises(ValueError, match="only MLP trunks"):
        layers.get_activation("gated")
    for arch in ("conv", "conv1d"):
        config = make_config(model={"architecture": arch, "activation": "gated"})
        with pytest.raises(ValueError, match="activation='gated' .* needs arch"):
            config_checks.validate_config(config)
    cfg = model_config(architecture="conv", activation="gated")
    net = models.build_model(cfg, likelihood="bernoulli", image_shape=(8, 8))
    with pytest.raises(ValueError, match="gated dense layer"):
        net.init(jax.random.key(0), jnp.zeros(64))
    config_checks.validate_config(make_config(model={"activation": "gated"}))


# ------------------------------------------------------------ He init
def test_he_normal_untruncated_has_std_sqrt_2_over_fan_in_and_full_tails():
    fan_in, shape = 2000, (2000, 500)  # 10^6 draws
    std = math.sqrt(2.0 / fan_in)
    w = np.asarray(
        layers.get_kernel_init("he_normal_untruncated")(jax.random.key(0), shape)
    )
    np.testing.assert_allclose(w.std(), std, rtol=0.02)
    assert abs(w.mean()) < 0.01 * std
    # N(0, 1) over 10^6 draws: max |w| ~ 4.9 std; truncated at 2 std it is <= 2.3 std
    assert np.abs(w).max() > 4.0 * std
    assert np.mean(np.abs(w) > 2 * std) == pytest.approx(0.0455, abs=0.002)
    flax_he = np.asarray(nn.initializers.he_normal()(jax.random.key(0), shape))
    assert np.abs(flax_he).max() < 2.5 * std  # what the test tells apart


def test_he_normal_untruncated_reaches_every_dense_kernel_of_a_gated_model():
    fields = {"activation": "gated", "hidden": (200, 100), "latent_dim": 40}
    _, params = tiny_model(
        (16, 16), kind="vamp_vae", kernel_init="he_normal_untruncated", **fields
    )
    kernels = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if jax.tree_util.keystr(path).endswith("['kernel']")
    ]
    assert len(kernels) == 2 * 2 + 2 + 2 * 2 + 1  # gated trunks, mean/logvar, output
    for kernel in kernels:
        np.testing.assert_allclose(
            np.std(kernel), math.sqrt(2.0 / kernel.shape[0]), rtol=0.1
        )
    np.testing.assert_allclose(  # the pseudo-inputs keep the authors' N(0.05, 0.01^2)
        np.mean(params["params"]["pseudo_inputs"]), 0.05, atol=1e-3
    )


# ------------------------------------------------------------ logvar_range
def _spread_logvar(params, seed=3):
    """``params`` with the log-variance head's kernel scaled so that logvar spans
    roughly -20..20 over a few inputs (both sides of [-6, 2] and inside it)."""
    head = params["params"]["to_logvar"]
    kernel = 8.0 * jax.random.normal(jax.random.key(seed), head["kernel"].shape)
    head = {"kernel": kernel, "bias": head["bias"] - 2.0}
    return {**params, "params": {**params["params"], "to_logvar": head}}


def _clipped_and_raw(kind="vae", **fields):
    fields = {"kind": kind, "hidden": (9,), "latent_dim": 4, **fields}
    clipped, params = tiny_model((3, 4), logvar_range=(LO, HI), **fields)
    raw, raw_params = tiny_model((3, 4), **fields)
    assert clipped.logvar_range == (LO, HI) and raw.logvar_range is None
    params = _spread_logvar(params)
    assert jax.tree.structure(params) == jax.tree.structure(raw_params)
    return clipped, raw, params


def test_encode_clips_logvar_as_hardtanh_with_zero_gradient_outside():
    clipped, raw, params = _clipped_and_raw()
    x = jax.random.uniform(jax.random.key(0), (16, 12))
    mean_c, logvar_c = clipped.apply(params, x, method="encode")
    mean_r, logvar_r = raw.apply(params, x, method="encode")
    logvar_c, logvar_r = np.asarray(logvar_c), np.asarray(logvar_r)
    below, above = logvar_r < LO, logvar_r > HI
    inside = ~below & ~above
    assert below.sum() > 3 and above.sum() > 3 and inside.sum() > 3
    np.testing.assert_array_equal(mean_c, mean_r)
    assert logvar_c.min() >= LO and logvar_c.max() <= HI
    np.testing.assert_array_equal(logvar_c[inside], logvar_r[inside])
    np.testing.assert_array_equal(logvar_c[below], LO)
    np.testing.assert_array_equal(logvar_c[above], HI)
    assert clipped.posterior_logvar(params, x).max() <= HI

    def logvar_of_bias(model, bias, xi):  # d logvar_k / d b_k: 1 inside, 0 outside
        head = {**params["params"]["to_logvar"], "bias": bias}
        p = {**params, "params": {**params["params"], "to_logvar": head}}
        return model.apply(p, xi, method="encode")[1]

    bias = params["params"]["to_logvar"]["bias"]
    for model, expected in ((raw, np.ones_like(inside)), (clipped, inside)):
        jac = jax.vmap(jax.jacfwd(logvar_of_bias, 1), (None, None, 0))(model, bias, x)
        np.testing.assert_array_equal(
            jnp.diagonal(jac, axis1=1, axis2=2), expected.astype(np.float32)
        )


def test_vampprior_components_and_flow_base_are_clipped_too():
    clipped, raw, params = _clipped_and_raw("vamp_vae", num_pseudo_inputs=30)
    w = jax.random.uniform(jax.random.key(5), (30, 12))  # pseudo-inputs in [0, 1]
    params = {**params, "params": {**params["params"], "pseudo_inputs": w}}
    _, logvars_c = clipped.apply(params, method="prior_components")
    _, logvars_r = raw.apply(params, method="prior_components")
    assert (logvars_r < LO).any() and (logvars_r > HI).any()
    np.testing.assert_array_equal(logvars_c, jnp.clip(logvars_r, LO, HI))
    z = jax.random.normal(jax.random.key(6), (5, 4))
    assert not np.allclose(clipped.log_prior(params, z), raw.log_prior(params, z))

    clipped, raw, params = _clipped_and_raw("flow_vae", flow_length=2)
    x = jax.random.uniform(jax.random.key(0), (16, 12))
    out_c = clipped.apply(params, x, method="encode")
    out_r = raw.apply(params, x, method="encode")
    assert (out_r[1] < LO).any() and (out_r[1] > HI).any()
    np.testing.assert_array_equal(out_c[1], jnp.clip(out_r[1], LO, HI))
    for a, b in zip(out_c[2:], out_r[2:]):  # the flow's parameters are not clipped
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "model,match",
    [
        ({"logvar_range": (2.0, -6.0)}, "lo < hi"),
        ({"logvar_range": (-6.0, math.inf)}, "lo < hi"),
        ({"logvar_range": (-6.0,)}, "lo < hi"),
        ({"logvar_range": (-6.0, 2.0), "kind": "ae"}, "'ae' does not"),
        ({"logvar_range": (-6.0, 2.0), "posterior": "full"}, "'full_covariance_vae'"),
        ({"logvar_range": (-6.0, 2.0), "stochastic_layers": 2}, "'hierarchical_vae'"),
    ],
)
def test_config_checks_refuse_a_bad_or_meaningless_logvar_range(model, match):
    objective = {"name": "mse"} if model.get("kind") == "ae" else {}
    config = make_config(model=model, objective=objective)
    with pytest.raises(ValueError, match=match):
        config_checks.validate_config(config)


def test_logvar_range_passes_for_its_families_and_the_full_posterior_refuses_it():
    for kind in ("vae", "vamp_vae", "cvae", "flow_vae"):
        config = make_config(model={"kind": kind, "logvar_range": (LO, HI)})
        config_checks.validate_config(config)
    cfg = model_config(posterior="full", logvar_range=(LO, HI), latent_dim=3)
    net = vae.build(
        cfg, image_shape=(2, 3), vae_class=full_covariance.FullCovarianceVAE
    )
    with pytest.raises(ValueError, match="logvar_range must be None"):
        net.init(jax.random.key(0), jnp.zeros(6))


# ------------------------------------------------------------ gradient normalisation
def _tree(seed, scales):
    keys = jax.random.split(jax.random.key(seed), 3)
    return {
        "dense": {
            "kernel": scales[0] * jax.random.normal(keys[0], (4, 3)),
            "bias": scales[1] * jax.random.normal(keys[1], (3,)),
        },
        "pseudo_inputs": scales[2] * jax.random.normal(keys[2], (5, 4)),
    }


def _by_hand(grads):
    """g / (||g||_2 + 1e-7) per leaf, in NumPy float64."""
    return jax.tree.map(
        lambda g: (
            np.asarray(g, np.float64)
            / (np.linalg.norm(np.asarray(g, np.float64).ravel()) + 1e-7)
        ),
        grads,
    )


def _steps(tx, params, grads_seq):
    state, updates = tx.init(params), []
    for grads in grads_seq:
        step, state = tx.update(grads, state, params)
        updates.append(step)
    return updates


@pytest.mark.parametrize("normalize", [True, False])
def test_normalize_gradients_is_adam_on_per_tensor_unit_gradients(normalize):
    """Two steps whose gradients change scale per tensor (x30, x0.01): Adam's moments
    see the change unless every tensor's gradient is normalised first."""
    config = make_config(
        optim={"learning_rate": 5e-4, "normalize_gradients": normalize}
    ).optim
    params = _tree(0, (1.0, 1.0, 1.0))
    grads_seq = [_tree(1, (3.0, 0.02, 50.0)), _tree(2, (90.0, 2e-4, 50.0))]
    tx = optim.make_optimizer(config, total_steps=10)
    got = _steps(tx, params, grads_seq)
    adam = optax.adam(5e-4, b1=0.9, b2=0.999, eps=1e-8)
    normed = [
        jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), _by_hand(g))
        for g in grads_seq
    ]
    for leaf in jax.tree.leaves(normed[0]):
        np.testing.assert_allclose(np.linalg.norm(leaf), 1.0, rtol=1e-5)
    expected = _steps(adam, params, normed if normalize else grads_seq)
    other = _steps(adam, params, grads_seq if normalize else normed)
    for step_got, step_expected, step_other in zip(got, expected, other):
        for a, b in zip(jax.tree.leaves(step_got), jax.tree.leaves(step_expected)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-10)
    gaps = [  # the two differ at the second step: the test can tell them apart
        np.max(np.abs(a - b) / np.abs(b))
        for a, b in zip(jax.tree.leaves(got[1]), jax.tree.leaves(other[1]))
    ]
    assert max(gaps) > 0.1


def test_normalize_gradients_leaves_the_ema_codebook_alone_and_refuses_clipping():
    config = make_config(optim={"normalize_gradients": True}).optim
    m, c = 8, 3
    params = {"params": {"codebook": jnp.ones((m, c)), "count_probe": jnp.zeros(m)}}
    params["params"]["encoder"] = {"kernel": jnp.full((3, 2), 0.5)}
    grads = {
        "params": {
            "codebook": jnp.full((m, c), 100.0),  # the batch's sums s_j
            "count_probe": jnp.full(m, 50.0),  # and counts n_j
            "encoder": {"kernel": jnp.arange(6.0).reshape(3, 2)},
        }
    }
    tx = optim.make_optimizer(config, 10, codebook_ema_decay=0.9)
    updates, _ = tx.update(grads, tx.init(params), params)
    rest = {"encoder": params["params"]["encoder"]}
    adam = optax.adam(1e-3)
    unit = _by_hand({"encoder": grads["params"]["encoder"]})
    unit = jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), unit)
    expected, _ = adam.update(unit, adam.init(rest), rest)
    np.testing.assert_allclose(
        updates["params"]["encoder"]["kernel"], expected["encoder"]["kernel"], rtol=1e-6
    )
    np.testing.assert_allclose(  # e = m / N = s / n after one update, unnormalised
        updates["params"]["codebook"], 100.0 / 50.0 - 1.0, rtol=1e-5
    )
    clipped = make_config(optim={"normalize_gradients": True, "grad_clip_norm": 1.0})
    with pytest.raises(ValueError, match="grad_clip_norm=0"):
        config_checks.validate_config(clipped)


# ------------------------------------------------------------ the paper config
def test_paper_config_is_the_authors_setting():
    config = make_config("vamp_paper_mnist")
    config_checks.validate_config(config)
    m, o, t = config.model, config.objective, config.train
    assert (m.kind, m.architecture, tuple(m.hidden), m.activation) == (
        "vamp_vae",
        "mlp",
        (300, 300),
        "gated",
    )
    assert (m.latent_dim, m.num_pseudo_inputs, m.logvar_range) == (40, 500, (LO, HI))
    assert m.kernel_init == "he_normal_untruncated"
    assert (o.name, o.likelihood, o.kl_warmup_steps) == ("elbo", "bernoulli", 50_000)
    assert (config.data.name, config.data.binarize) == ("mnist", "dynamic")
    assert config.data.valid_size == 10_000
    assert (config.optim.name, config.optim.learning_rate) == ("adam", 5e-4)
    assert config.optim.normalize_gradients and config.optim.grad_clip_norm == 0
    assert (t.batch_size, t.num_epochs, t.eval_every) == (100, 2000, 500)
    # gated 784-300-300-(40, 40), 40-300-300-784, pseudo-inputs 500 x 784
    assert config_checks.estimate_parameters(m, (28, 28)) == (
        2 * (784 * 300 + 300)
        + 2 * (300 * 300 + 300)
        + 2 * (300 * 40 + 40)
        + 2 * (40 * 300 + 300)
        + 2 * (300 * 300 + 300)
        + (300 * 784 + 784)
        + 500 * 784
    )


def test_paper_config_builds_and_trains_a_few_steps_on_digits():
    """The paper's model as configured (gated 300-300, K = 40, C = 500), on the
    bundled 8 x 8 digits (1300 training images, batch 100): finite steps that move
    every parameter tensor, and the warm-up's beta."""
    config = make_config("vamp_paper_mnist", data={"name": "digits", "valid_size": -1})
    exp = build.build_experiment(config)
    assert exp.model.logvar_range == (LO, HI)
    assert exp.model.encoder.activation == "gated"
    assert exp.model.kernel_init == "he_normal_untruncated"
    hparams = exp.hparams_fn
    for step, beta in ((0, 0.0), (25_000, 0.5), (50_000, 1.0), (80_000, 1.0)):
        np.testing.assert_allclose(hparams(jnp.asarray(step))["beta"], beta)
    state = exp.init_state()
    assert state.params["params"]["pseudo_inputs"].shape == (500, 64)
    before = jax.tree.map(np.array, state.params)  # copies: the step donates state
    step_fn = train.make_train_step(exp.loss_one, exp.hparams_fn, exp.binarize)
    for i in range(3):
        batch = exp.train_x[i * 100 : (i + 1) * 100]
        state, metrics = step_fn(state, batch)
        assert np.isfinite(metrics["objective"]) and int(metrics["nonfinite"]) == 0
    assert int(state.step) == 3
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), before, state.params)
    assert all(jax.tree.leaves(moved))
