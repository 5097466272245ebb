"""The procedural sprites and the mutual information gap (Chen et al. 2018, eq. 6)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from vae_jax.studies import disentanglement as dis


def _factors(num=4000, seed=0):
    return dis.sample_factors(np.random.default_rng(seed), num)


def test_mutual_information_matches_sklearn_and_entropy():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 3000)
    b = (a + rng.integers(0, 3, 3000)) % 7
    np.testing.assert_allclose(
        dis.mutual_information(a, b), mutual_info_score(a, b), rtol=1e-10
    )
    np.testing.assert_allclose(dis.mutual_information(a, a), dis.entropy(a))
    np.testing.assert_allclose(dis.entropy(np.arange(8)), np.log(8))


def test_codes_equal_to_the_factors_give_mig_near_one():
    """z_k = v_k (plus noise far below a bin) for k < 5 and 5 noise dims: each factor
    has one latent with I = H(v_k) and others with only finite-sample MI."""
    factors = _factors()
    rng = np.random.default_rng(1)
    codes = np.concatenate(
        [factors + 1e-3 * rng.normal(size=factors.shape), rng.normal(size=(4000, 5))],
        axis=1,
    )
    out = dis.mig(codes, factors)
    assert 0.95 < out["mig"] <= 1.0  # measured 0.990
    assert np.all(out["per_factor"] <= 1.0)
    np.testing.assert_allclose(np.diag(out["mi"][:5]), out["entropy"], rtol=1e-6)
    np.testing.assert_allclose(out["entropy"], np.log(dis.FACTOR_SIZES), rtol=0.01)


def test_codes_independent_of_the_factors_give_mig_near_zero():
    factors = _factors()
    codes = np.random.default_rng(2).normal(size=(4000, 10))
    assert dis.mig(codes, factors)["mig"] < 0.005  # measured 0.0007


def test_a_rotated_mix_scores_in_between():
    """Codes (v_x + v_y, v_x - v_y) / sqrt 2 and the other factors: each latent of the
    pair informs both positions equally, so the x and y gaps fall to near zero while
    shape, scale and rotation keep theirs: MIG near 3/5."""
    factors = _factors()
    x, y = factors[:, 3].astype(float), factors[:, 4].astype(float)
    codes = np.stack(
        [factors[:, 0], factors[:, 1], factors[:, 2], (x + y), (x - y)], axis=1
    ) + 1e-3 * np.random.default_rng(3).normal(size=(4000, 5))
    out = dis.mig(codes, factors)
    assert 0.4 < out["mig"] < 0.75
    assert np.all(out["per_factor"][3:] < 0.15)
    assert np.all(out["per_factor"][:3] > 0.95)


def test_mig_refuses_one_latent():
    with pytest.raises(ValueError, match="K >= 2"):
        dis.mig(np.zeros((10, 1)), np.zeros((10, 5), int))


def test_sprites_render_the_factors():
    """A square of half-width 0.8 * 0.16 * 32 = 4.1 px at scale 1 covers 8 x 8 pixels;
    position moves it, shape changes the area (ellipse pi * 5.1 * 2.6 ~ 42 px);
    rotating a square by 2 pi / 10 keeps its area roughly."""
    base = np.array([0, 5, 0, 8, 8])
    im = dis.render(np.stack([base, base + [0, 0, 0, 3, 0], base + [1, 0, 0, 0, 0]]))
    assert im.shape == (3, 1024) and set(np.unique(im)) <= {0.0, 1.0}
    assert im[0].sum() == 64
    cols = np.nonzero(im.reshape(3, 32, 32).sum(1))[1].reshape(3, -1)
    shift = 3 * 0.6 / 15 * 32  # three grid steps of x, in pixels
    assert abs((cols[1].mean() - cols[0].mean()) - shift) < 1.0
    assert abs(im[2].sum() - np.pi * 5.12 * 2.56) < 6
    rotated = dis.render(np.array([[0, 5, 1, 8, 8]]))
    assert abs(rotated.sum() - 64) < 8 and not np.array_equal(rotated[0], im[0])
    dataset, f_train, f_test = dis.sprites(50, 20, seed=0)
    assert dataset.binary and dataset.train.shape == (50, 1024)
    np.testing.assert_array_equal(dataset.test, dis.render(f_test))
    assert f_train.shape == (50, 5)
