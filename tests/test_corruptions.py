"""Corruptions: statistics, purity (same key -> same output), PSNR formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import corruptions

D = 20_000


@pytest.mark.parametrize("name", sorted(corruptions.CORRUPTIONS))
def test_same_key_same_output_and_new_key_new_output(name):
    x = jax.random.uniform(jax.random.key(0), (D,))
    a = corruptions.corrupt(name, jax.random.key(1), x, 0.3)
    again = corruptions.corrupt(name, jax.random.key(1), x, 0.3)
    jitted = jax.jit(corruptions.corrupt, static_argnums=0)(
        name, jax.random.key(1), x, 0.3
    )
    c = corruptions.corrupt(name, jax.random.key(2), x, 0.3)
    np.testing.assert_array_equal(a, again)
    np.testing.assert_allclose(a, jitted, atol=1e-6)  # XLA fusion may differ by an ulp
    assert a.shape == x.shape and not np.array_equal(a, c)


def test_gaussian_noise_has_the_requested_std():
    x = jnp.full((D,), 0.5)
    noise = corruptions.additive_gaussian(jax.random.key(3), x, 0.2) - x
    np.testing.assert_allclose(jnp.std(noise), 0.2, rtol=0.03)
    assert abs(float(jnp.mean(noise))) < 0.01


@pytest.mark.parametrize("level", [0.1, 0.5])
def test_masking_zeroes_the_requested_fraction(level):
    x = jnp.full((D,), 0.7)
    out = corruptions.masking(jax.random.key(4), x, level)
    np.testing.assert_allclose(jnp.mean(out == 0), level, atol=0.015)
    np.testing.assert_array_equal(out[out != 0], np.float32(0.7))


def test_salt_and_pepper_hits_the_fraction_half_salt():
    x = jnp.full((D,), 0.5)
    out = corruptions.salt_and_pepper(jax.random.key(5), x, 0.4)
    hit = out != 0.5
    np.testing.assert_allclose(jnp.mean(hit), 0.4, atol=0.015)
    np.testing.assert_allclose(jnp.mean(out[hit] == 1.0), 0.5, atol=0.03)
    assert set(np.unique(np.asarray(out))) <= {0.0, 0.5, 1.0}


def test_unknown_corruption_raises():
    with pytest.raises(ValueError, match="masking"):
        corruptions.corrupt("blur", jax.random.key(0), jnp.zeros(3), 0.1)


def test_psnr_formula():
    x = jnp.zeros(100)
    np.testing.assert_allclose(
        corruptions.psnr(x, x + 0.1), 20.0, rtol=1e-5
    )  # MSE 1e-2
    np.testing.assert_allclose(corruptions.psnr(x, x + 0.01), 40.0, rtol=1e-5)
    np.testing.assert_allclose(
        corruptions.psnr(x, x + 0.5, peak=2.0), 10 * np.log10(16), rtol=1e-5
    )


def test_gaussian_noise_is_added_with_the_keys_own_draws():
    x, key = jnp.linspace(0.0, 1.0, 12), jax.random.key(7)
    expected = np.asarray(x) + 0.3 * np.asarray(jax.random.normal(key, (12,)))
    np.testing.assert_allclose(
        corruptions.additive_gaussian(key, x, 0.3), expected, rtol=1e-6
    )


def test_psnr_is_ten_log10_of_peak_squared_over_mse():
    x = np.array([0.2, 0.4, 0.6, 0.8], np.float32)
    y = np.array([0.3, 0.4, 0.4, 0.8], np.float32)
    mse = np.mean((x.astype(np.float64) - y) ** 2)  # 0.0125
    np.testing.assert_allclose(
        corruptions.psnr(jnp.asarray(x), jnp.asarray(y)),
        10 * np.log10(1 / mse),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        corruptions.psnr(jnp.asarray(x), jnp.asarray(y), peak=2.0),
        10 * np.log10(4 / mse),
        rtol=1e-5,
    )
