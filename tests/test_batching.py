"""Tests for vae_jax.batching: dynamic binarisation and padded evaluation batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import batching


def test_dynamic_binarize():
    x = jnp.linspace(0.0, 1.0, 64, dtype=jnp.float32)
    draws = jax.vmap(batching.dynamic_binarize, in_axes=(0, None))(
        jax.random.split(jax.random.key(1), 4000), x
    )
    assert draws.shape == (4000, 64) and draws.dtype == jnp.float32
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(0), x, atol=0.03)
    assert not np.array_equal(draws[0], draws[1])


@pytest.mark.parametrize("n,b", [(10, 4), (8, 4), (3, 5), (0, 2)])
def test_pad_to_batches(n, b):
    x = np.arange(1, n * 3 + 1, dtype=np.float32).reshape(n, 3)
    xb, mask = batching.pad_to_batches(x, b)
    nb = -(-n // b)
    assert xb.shape == (nb, b, 3) and mask.shape == (nb, b) and mask.dtype == np.float32
    assert mask.sum() == n
    flat, flat_mask = xb.reshape(-1, 3), mask.reshape(-1)
    np.testing.assert_array_equal(flat[:n], x)
    np.testing.assert_array_equal(flat_mask[:n], 1.0)
    assert np.all(flat[n:] == 0.0) and np.all(flat_mask[n:] == 0.0)
