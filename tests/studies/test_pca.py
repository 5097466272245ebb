"""PCA and principal angles against numpy, and linear AE == PCA on low-rank data."""

import jax.numpy as jnp
import numpy as np

from vae_jax import data as data_lib
from vae_jax.studies import autoencoders, pca

from helpers import make_config

# A linear AE trained with the MSE to its optimum: the PCA subspace.
_LINEAR_AE = {
    "objective": {"name": "mse"},
    "optim": {"learning_rate": 3e-2, "schedule": "cosine"},
    "train": {"batch_size": 250, "num_steps": 1500, "steps_per_dispatch": 100},
}


def _low_rank(n=3000, d=20, scales=(3.0, 2.0, 1.0), noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, len(scales))))  # [D, K]
    z = rng.normal(size=(n, len(scales))) * np.asarray(scales)[None]
    x = z @ basis.T + noise * rng.normal(size=(n, d)) + rng.normal(size=d)[None]
    return x.astype(np.float32), basis


def test_pca_matches_numpy_svd():
    x, _ = _low_rank(n=300, d=12)
    xc = x - x.mean(0, keepdims=True)
    _, s, _ = np.linalg.svd(xc.astype(np.float64), full_matrices=False)
    for data in (x, x[:10]):  # N > D (covariance route) and N < D (direct SVD)
        fitted = pca.fit_pca(data)
        dc = data - data.mean(0, keepdims=True)
        _, s_ref, vt_ref = np.linalg.svd(dc.astype(np.float64), full_matrices=False)
        r = min(data.shape)
        assert fitted.components.shape == (r, 12) and fitted.variances.shape == (r,)
        recon = np.stack([pca.project(fitted, row, 3) for row in data])
        np.testing.assert_allclose(  # Eckart-Young on the data it was fitted to
            pca.optimal_mse(fitted, 3), np.mean((data - recon) ** 2), rtol=2e-3
        )
        np.testing.assert_allclose(
            fitted.variances[:r], s_ref**2 / len(data), rtol=1e-3, atol=1e-5
        )
        cos = np.abs(np.sum(np.asarray(fitted.components[:3]) * vt_ref[:3], axis=1))
        np.testing.assert_allclose(cos, 1.0, atol=1e-4)  # same vectors up to sign
    fitted = pca.fit_pca(x)
    np.testing.assert_allclose(
        pca.optimal_mse(fitted, 3), np.sum(s[3:] ** 2) / len(x) / x.shape[1], rtol=1e-3
    )
    recon = np.stack([pca.project(fitted, row, 3) for row in x])
    np.testing.assert_allclose(
        np.mean((x - recon) ** 2), pca.optimal_mse(fitted, 3), rtol=1e-3
    )
    assert 0.95 < float(pca.explained_variance_ratio(fitted, 3)) <= 1.0


def test_principal_angles_of_known_subspaces():
    d, theta = 6, 0.3
    e = np.eye(d)
    a = e[:, :2]  # span(e0, e1)
    b = np.stack([e[:, 0], np.cos(theta) * e[:, 1] + np.sin(theta) * e[:, 2]], axis=1)
    np.testing.assert_allclose(pca.principal_angles(a, b), [0.0, theta], atol=1e-3)
    mixed = a @ np.array([[2.0, 1.0], [-1.0, 3.0]])  # another basis of the same plane
    np.testing.assert_allclose(pca.principal_angles(a, mixed), [0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(
        pca.principal_angles(a, e[:, 2:4]), [np.pi / 2] * 2, atol=1e-3
    )
    # The basis differs (45 degrees) though the subspace is the same.
    rotated = a @ np.array([[1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(
        pca.nearest_vector_angles(rotated, a), [np.pi / 4] * 2, atol=1e-3
    )


def test_nearest_vector_angles_match_each_column_to_its_closest():
    """Per column of a, the angle to the nearest column of b up to sign and scale:
    K1 != K2, columns of any length; identical columns give 0, never NaN."""
    d, theta = 5, 0.4
    e = np.eye(d)
    a = np.stack(
        [2.0 * e[:, 0], 5.0 * (np.cos(theta) * e[:, 1] + np.sin(theta) * e[:, 2])], 1
    )
    b = np.stack([-3.0 * e[:, 1], 0.5 * e[:, 0], 7.0 * e[:, 3]], 1)  # [D, 3]
    np.testing.assert_allclose(pca.nearest_vector_angles(a, b), [0.0, theta], atol=1e-3)
    np.testing.assert_allclose(
        pca.nearest_vector_angles(b, a), [theta, 0.0, np.pi / 2], atol=1e-3
    )
    rng = np.random.default_rng(0)
    c = (rng.standard_normal((20, 3)) * rng.uniform(0.1, 10, (1, 3))).astype(np.float32)
    same = np.asarray(pca.nearest_vector_angles(c, c))
    assert np.all(np.isfinite(same)) and np.all(same < 1e-3)


def test_linear_autoencoder_recovers_the_pca_subspace():
    x, basis = _low_rank()
    k, shape = basis.shape[1], (4, 5)
    dataset = data_lib.Dataset(
        "lowrank", x[:2500], x[2500:2500], x[2500:], None, None, None, shape
    )
    centred, _ = data_lib.center_dataset(dataset)
    config = make_config(
        model={"kind": "ae", "architecture": "linear", "latent_dim": k}, **_LINEAR_AE
    )
    exp, params, _ = autoencoders.fit(config, centred)
    fitted = pca.fit_pca(centred.train)
    w = pca.decoder_basis(params)
    assert np.degrees(pca.principal_angles(w, fitted.components[:k].T)[-1]) < 1.0
    assert np.degrees(pca.principal_angles(w, jnp.asarray(basis))[-1]) < 2.0
    mse = autoencoders.reconstruction_mse(exp.model, params, centred.train)
    assert mse / float(pca.optimal_mse(fitted, k)) < 1.05  # optimum = noise only: tiny


def test_linear_ae_vs_pca_table_on_low_rank_data():
    """The report's table: subspace angle ~0 and MSE at the Eckart-Young optimum, on
    train and on test (PCA's rank-K projection), while the basis differs."""
    x, basis = _low_rank()
    k = basis.shape[1]
    dataset = data_lib.Dataset(
        "lowrank", x[:2500], x[2500:2500], x[2500:], None, None, None, (4, 5)
    )
    config = make_config(model={"kind": "ae", "architecture": "linear"}, **_LINEAR_AE)
    (row,) = autoencoders.linear_ae_vs_pca(config, dataset, ks=(k,))
    assert row["k"] == k and row["explained_variance"] > 0.9
    assert row["max_subspace_angle_deg"] < 1.0
    assert 0.99 < row["mse_ratio_train"] < 1.05
    assert 0.95 < row["mse_ratio_test"] < 1.1


def _orthonormal(d, k, seed=0):
    """[d, k] float64 orthonormal columns."""
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(d, k)))[0]


def test_principal_angles_are_float64_accurate_for_tiny_angles():
    """Identical 784 x 10 subspaces (the same basis and another basis of it) give
    < 1e-6 degrees, and known angles of 0.001 .. 0.01 degrees come back to 1e-6
    degrees: no float32 arccos of cosines near 1 (Knyazev & Argentati 2002)."""
    q = _orthonormal(784, 20)
    a = q[:, :10]
    mixed = a @ np.random.default_rng(1).normal(size=(10, 10))  # same subspace
    a32 = a.astype(np.float32)  # e.g. two copies of a float32 decoder's columns
    for x, y in ((a, a), (a, mixed), (a32, a32)):
        assert np.degrees(pca.principal_angles(x, y)).max() < 1e-6
    theta = np.radians(np.linspace(0.001, 0.01, 10))  # ascending
    rotated = np.cos(theta) * a + np.sin(theta) * q[:, 10:]  # column j by theta_j
    got = np.degrees(pca.principal_angles(a, rotated))
    np.testing.assert_allclose(got, np.degrees(theta), rtol=0, atol=1e-6)
    single = np.radians(0.001)
    b = a.copy()
    b[:, 3] = np.cos(single) * a[:, 3] + np.sin(single) * q[:, 15]
    got = np.degrees(pca.principal_angles(a, b))
    np.testing.assert_allclose(got, [0.0] * 9 + [0.001], rtol=0, atol=1e-6)
