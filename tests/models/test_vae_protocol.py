"""The one-layer VAE's small protocol methods against the layers they are built from:
``__call__``, ``elbo_terms``'s default, ``gaussian_posterior`` and the phi/theta mask."""

import jax
import numpy as np
import pytest

from helpers import tiny_model

X = jax.random.uniform(jax.random.PRNGKey(0), (6,))


def test_call_decodes_the_posterior_mean():
    """model(x) = g(E_q[z|x]): the decoder applied to encode's mean, not its logvar."""
    model, params = tiny_model(latent_dim=3, hidden=(5,))
    mean, logvar = model.apply(params, X, method="encode")
    assert not np.allclose(mean, logvar)
    expected = model.apply(params, mean, method="decode")["logits"]
    np.testing.assert_allclose(model.apply(params, X)["logits"], expected, rtol=1e-6)


@pytest.mark.parametrize("posterior", ["diagonal", "full"])
def test_elbo_terms_draws_one_sample_by_default(posterior):
    model, params = tiny_model(latent_dim=3, hidden=(5,), posterior=posterior)
    key = jax.random.PRNGKey(1)
    default = model.elbo_terms(params, X, key)
    one = model.elbo_terms(params, X, key, num_samples=1)
    np.testing.assert_array_equal(np.asarray(default), np.asarray(one))
    assert np.all(np.isfinite(np.asarray(default)))


def test_gaussian_posterior_scale_is_the_standard_deviation_of_q():
    """scale_tril = diag(sigma), sigma^2 = exp(logvar) from ``encode``: L L^T = Cov."""
    model, params = tiny_model(latent_dim=3, hidden=(5,))
    mean, scale_tril = model.gaussian_posterior(params, X)
    enc_mean, logvar = model.apply(params, X, method="encode")
    np.testing.assert_allclose(mean, enc_mean, rtol=1e-6)
    cov = np.asarray(scale_tril, np.float64) @ np.asarray(scale_tril, np.float64).T
    np.testing.assert_allclose(cov, np.diag(np.exp(np.asarray(logvar))), rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_posterior_param_mask_marks_the_encoder_only(likelihood):
    """True on q(z|x)'s parameters (encoder, mean and logvar heads), False on the
    decoder and on a learned Gaussian log sigma (theta)."""
    model, params = tiny_model(latent_dim=3, hidden=(5,), likelihood=likelihood)
    mask = model.posterior_param_mask(params)
    flat = jax.tree_util.tree_flatten_with_path(mask)[0]
    by_module = {}
    for path, is_phi in flat:
        by_module.setdefault(path[1].key, set()).add(bool(is_phi))
    theta = {"decoder"} | ({"log_sigma"} if likelihood == "gaussian" else set())
    assert theta <= set(by_module)
    for name, values in by_module.items():
        assert values == {name not in theta}, name
    assert {"encoder", "to_mean", "to_logvar"} <= {
        n for n in by_module if n not in theta
    }
