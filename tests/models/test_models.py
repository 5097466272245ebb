"""Model shapes, parameter counts, batching and the model registry."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import models

from helpers import model_config


@pytest.mark.parametrize("architecture", ["mlp", "conv", "linear"])
@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_shapes_batched_and_unbatched(kind, architecture):
    cfg = model_config(kind=kind, architecture=architecture, latent_dim=3, hidden=(16,))
    model = models.build_model(cfg, likelihood="bernoulli", image_shape=(8, 8))
    x = jax.random.uniform(jax.random.PRNGKey(0), (5, 64))
    params = model.init(jax.random.PRNGKey(1), x[0])
    if kind == "vae":
        mean, logvar = model.apply(params, x, method="encode")
        assert mean.shape == logvar.shape == (5, 3)
        out = model.apply(params, mean, method="decode")["logits"]
    else:
        code = model.apply(params, x, method="encode")
        assert code.shape == (5, 3)
        out = model.apply(params, code, method="decode")
    assert out.shape == (5, 64)
    single = jax.vmap(lambda xi: model.apply(params, xi))(x)
    np.testing.assert_allclose(
        jax.tree.leaves(single)[0],
        jax.tree.leaves(model.apply(params, x))[0],
        rtol=1e-5,
        atol=1e-5,
    )


def test_vae_mnist_parameter_count():
    cfg = model_config(hidden=(400,), latent_dim=20)
    model = models.build_model(cfg, likelihood="bernoulli", image_shape=(28, 28))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(784))
    count = sum(p.size for p in jax.tree.leaves(params))
    encoder = 784 * 400 + 400 + 2 * (400 * 20 + 20)
    decoder = 20 * 400 + 400 + 400 * 784 + 784
    assert count == encoder + decoder


def test_gaussian_sigma_fixed_or_learned():
    cfg = model_config(hidden=(8,), latent_dim=2)
    fixed = models.build_model(
        cfg, likelihood="gaussian", image_shape=(2, 3), sigma=0.5
    )
    learned = models.build_model(cfg, likelihood="gaussian", image_shape=(2, 3))
    z = jnp.ones(2)
    p_fixed = fixed.init(jax.random.PRNGKey(0), jnp.zeros(6))
    p_learned = learned.init(jax.random.PRNGKey(0), jnp.zeros(6))
    out = fixed.apply(p_fixed, z, method="decode")
    np.testing.assert_allclose(out["log_sigma"], np.full(6, np.log(0.5)), rtol=1e-6)
    assert "log_sigma" in p_learned["params"] and "log_sigma" not in p_fixed["params"]


def test_linear_ae_has_no_nonlinearity():
    cfg = model_config(kind="ae", architecture="linear", latent_dim=2)
    model = models.build_model(cfg, likelihood="bernoulli", image_shape=(2, 2))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(4))
    x, y = jax.random.normal(jax.random.PRNGKey(1), (2, 4))
    f = lambda v: model.apply(params, v)
    # Affine map: f(x) + f(y) - f(0) == f(x + y).
    np.testing.assert_allclose(f(x) + f(y) - f(jnp.zeros(4)), f(x + y), atol=1e-5)


@pytest.mark.parametrize(
    "field,value",
    [
        ("architecture", "resnet"),
        ("kind", "gan"),
        ("activation", "swish2"),
        ("kernel_init", "he_normal"),
    ],
)
def test_unknown_names_raise_with_choices(field, value):
    cfg = model_config(**{field: value})
    with pytest.raises(ValueError, match="choose one of|Unknown"):
        model = models.build_model(cfg, likelihood="bernoulli", image_shape=(8, 8))
        model.init(jax.random.PRNGKey(0), jnp.zeros(64))


def test_conv_rejects_bad_image_shape():
    cfg = model_config(architecture="conv")
    with pytest.raises(ValueError, match="divisible by 4"):
        models.build_model(cfg, likelihood="bernoulli", image_shape=(28, 20 + 1))


def _dense_kernels(cfg, image_shape=(28, 28)):
    model = models.build_model(cfg, likelihood="bernoulli", image_shape=image_shape)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros(math.prod(image_shape)))
    return [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if "kernel" in jax.tree_util.keystr(path)
    ]


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_kernel_init_scales_every_dense_kernel(kind):
    """lecun_normal (default): std 1/sqrt(fan_in); torch_default: U(+-1/sqrt(fan_in)),
    std 1/sqrt(3 fan_in); glorot_uniform: std sqrt(2 / (fan_in + fan_out));
    he_normal_untruncated: std sqrt(2 / fan_in)."""
    hidden = (500, 300)
    cfg = model_config(kind=kind, hidden=hidden, latent_dim=10)
    expected_std = {
        "lecun_normal": lambda k: 1.0 / np.sqrt(k.shape[0]),
        "torch_default": lambda k: 1.0 / np.sqrt(3.0 * k.shape[0]),
        "glorot_uniform": lambda k: np.sqrt(2.0 / sum(k.shape)),
        "he_normal_untruncated": lambda k: np.sqrt(2.0 / k.shape[0]),
    }
    for name, std in expected_std.items():
        cfg.kernel_init = name
        kernels = _dense_kernels(cfg)
        assert len(kernels) == 2 * len(hidden) + 2 + (kind == "vae")
        for kernel in kernels:
            np.testing.assert_allclose(np.std(kernel), std(kernel), rtol=0.1)
            if name == "torch_default":
                assert np.abs(kernel).max() <= 1.0 / np.sqrt(kernel.shape[0])


@pytest.mark.parametrize(
    "fields",
    [
        {"latent_dim": 3},
        {"latent_dim": 3, "posterior": "full"},
        {"latent_dim": 3, "stochastic_layers": 2, "hidden2": (5,), "latent_dim2": 2},
    ],
)
def test_posterior_logvar_is_the_log_variance_of_q(fields):
    """exp(posterior_logvar) = the variances of q(z|x) (of z1 for two layers) as
    ``encode`` gives them: exp(logvar), or diag(L L^T) for a full covariance; any
    leading dims."""
    cfg = model_config(hidden=(16,), **fields)
    model = models.build_model(cfg, likelihood="bernoulli", image_shape=(2, 3))
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 6))
    params = model.init(jax.random.PRNGKey(1), x[0])
    leaves, tree = jax.tree.flatten(params)  # perturbed: off-diagonal L_ij != 0 too
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    noise = [0.3 * jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)]
    params = jax.tree.unflatten(tree, [a + n for a, n in zip(leaves, noise)])
    logvar = model.posterior_logvar(params, x)
    assert logvar.shape == (4, 3)
    _, scale = model.apply(params, x, method="encode")
    if scale.ndim == 3:  # full covariance: scale_tril L, Var = diag(L L^T)
        assert np.abs(np.tril(scale, -1)).max() > 0.05
        expected = jnp.diagonal(scale @ jnp.swapaxes(scale, -1, -2), axis1=-2, axis2=-1)
    else:
        expected = jnp.exp(scale)
    np.testing.assert_allclose(jnp.exp(logvar), expected, rtol=1e-5)
    np.testing.assert_allclose(
        model.posterior_logvar(params, x[1]), logvar[1], rtol=1e-5
    )
