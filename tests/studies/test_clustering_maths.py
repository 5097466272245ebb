"""The DEC / IDEC loss against NumPy, KL(P || Q) falling over a chunk, and NMI.

Formulas (as implemented and cited in ``vae_jax.studies.clustering``):
- Xie, Girshick & Farhadi 2016 (DEC), eq. 1: q_ij = (1 + ||z_i - mu_j||^2 / alpha)^(
  -(alpha + 1) / 2) / sum_j' (...); eq. 2: L_c = KL(P || Q) = sum_i sum_j p_ij log(
  p_ij / q_ij); eq. 3: p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij.
- Guo, Gao, Liu & Yin 2017 (IDEC), eq. 5: L = L_r + gamma L_c, L_r the reconstruction
  error; their code (XifengGuo/IDEC, Keras ``loss=["kld", "mse"], loss_weights=[gamma,
  1]``) takes L_r as the mean squared error per pixel. DEC is gamma L_c alone.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn import metrics as sk_metrics

from vae_jax.studies import cluster_metrics, clustering

from helpers import tiny_model


def _soft_assignment_numpy(z, mu, alpha):
    """DEC eq. 1 in float64. z: [N, K], mu: [C, K] -> q: [N, C]."""
    d2 = ((z[:, None, :] - mu[None]) ** 2).sum(-1)
    num = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return num / num.sum(1, keepdims=True)


def _idec_loss_numpy(x, z, x_hat, mu, p, alpha, gamma, reconstruct):
    """(L, KL(p || q), MSE) per example: DEC eq. 2 (0 log 0 = 0), IDEC eq. 5 with the
    per-pixel MSE; DEC (``reconstruct=False``) is gamma KL. All [N]."""
    q = _soft_assignment_numpy(z, mu, alpha)
    logs = np.log(np.where(p > 0, p, 1.0) / q)
    kl = np.sum(np.where(p > 0, p * logs, 0.0), axis=1)
    mse = np.mean((x - x_hat) ** 2, axis=1)
    loss = mse + gamma * kl if reconstruct else gamma * kl
    return loss, kl, mse


def _autoencoder(seed=0):
    """(model, {"ae": params, "centroids": [3, 3]}) of a 16-8-3 autoencoder."""
    model, ae = tiny_model((4, 4), kind="ae", hidden=(8,), latent_dim=3, seed=seed)
    mu = jax.random.normal(jax.random.PRNGKey(seed + 1), (3, 3))
    return model, {"ae": ae, "centroids": mu}


def test_default_kernel_is_decs_alpha_one():
    """DEC fixes alpha = 1 (Xie et al. 2016, §3.1.1): q_j ∝ 1 / (1 + ||z - mu_j||^2)."""
    z = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    mu = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    want = _soft_assignment_numpy(np.asarray(z, np.float64), np.asarray(mu), 1.0)
    got = jax.vmap(clustering.soft_assignment, in_axes=(0, None))(z, mu)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    log_q = jax.vmap(clustering.log_soft_assignment, in_axes=(0, None))(z, mu)
    np.testing.assert_allclose(log_q, np.log(want), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "alpha, gamma, reconstruct",
    [(1.0, 0.1, True), (2.5, 3.0, True), (1.0, 1.0, False), (1.0, 0.5, False)],
)
def test_clustering_loss_matches_numpy(alpha, gamma, reconstruct):
    """The loss and its parts for 6 examples against the float64 formulas above; a
    target with zeros checks 0 log 0 = 0. ``gamma * mse - kl`` (or any other mix of
    the two terms) fails at gamma = 0.1 and 3."""
    model, params = _autoencoder()
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(6, 16)).astype(np.float32)
    p = rng.dirichlet(np.ones(3), size=6)
    p[0] = [0.0, 0.7, 0.3]
    loss_one = functools.partial(
        clustering.clustering_loss,
        model=model,
        alpha=alpha,
        gamma=gamma,
        reconstruct=reconstruct,
    )
    loss, aux = jax.vmap(loss_one, in_axes=(None, 0, 0))(
        params, jnp.asarray(x), jnp.asarray(p, jnp.float32)
    )
    z = np.asarray(model.apply(params["ae"], x, method="encode"), np.float64)
    x_hat = np.asarray(model.apply(params["ae"], x), np.float64)
    mu = np.asarray(params["centroids"], np.float64)
    want, kl, mse = _idec_loss_numpy(x, z, x_hat, mu, p, alpha, gamma, reconstruct)
    assert np.all(kl > 1e-2) and np.all(mse > 1e-2)  # both terms matter
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(aux["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(aux["mse"], mse if reconstruct else 0.0, rtol=1e-5)


def _mean_kl(model, params, x, p, alpha=1.0):
    """(1/N) sum_i KL(p_i || q_i) over all rows (DEC eq. 2 / N), NumPy float64."""
    z = np.asarray(model.apply(params["ae"], x, method="encode"), np.float64)
    q = _soft_assignment_numpy(z, np.asarray(params["centroids"], np.float64), alpha)
    return float(np.mean(np.sum(p * np.log(p / q), axis=1)))


def _blobs_and_target():
    """(model, params, x [300, 16], p [300, C]): three blobs, a 16-8-3 autoencoder with
    its code layer scaled x3 (codes spread over a few Student-t scales), centroids by
    k-means on its codes and the target P of eq. 3 from their Q (eq. 1)."""
    model, params = _autoencoder(seed=2)
    params["ae"]["params"]["to_code"]["kernel"] *= 3.0
    rng = np.random.default_rng(1)
    centers = rng.uniform(size=(3, 16))
    x = centers[rng.integers(0, 3, 300)] + 0.1 * rng.normal(size=(300, 16))
    x = jnp.asarray(np.clip(x, 0, 1), jnp.float32)
    codes = np.asarray(model.apply(params["ae"], x, method="encode"))
    params["centroids"], _ = clustering.kmeans_init(codes, 3, n_init=2, seed=0)
    q = clustering.make_assign_all(model)(params, x)
    return model, params, x, np.asarray(clustering.target_distribution(q), np.float64)


def _run_chunk(loss_one, tx, params, x, p):
    """One chunk of T = 30 steps (batches of 64) on ``loss_one`` from ``params``, P
    fixed: (params after, per-step metrics)."""
    chunk = clustering.make_dec_chunk(
        loss_one, num_steps=30, batch_size=64, data_key=jax.random.key(0)
    )
    state = clustering.init_dec_state(params["ae"], params["centroids"], tx)
    state, metrics = chunk(state, x, jnp.asarray(p, jnp.float32))
    return state.params, metrics


def test_dec_chunk_lowers_kl_to_the_target():
    """One DEC chunk (SGD, lr 0.01, momentum 0.9 as DEC-keras; P fixed at eq. 3 of the
    starting Q) lowers the mean KL(P || Q) over all rows by > 10%."""
    model, params, x, p = _blobs_and_target()
    loss_one = functools.partial(
        clustering.clustering_loss, model=model, alpha=1.0, gamma=1.0, reconstruct=False
    )
    after, metrics = _run_chunk(loss_one, optax.sgd(0.01, 0.9), params, x, p)
    before = _mean_kl(model, params, x, p)
    assert _mean_kl(model, after, x, p) < 0.9 * before
    assert np.mean(metrics["kl"][-5:]) < np.mean(metrics["kl"][:5])


def test_idec_chunk_keeps_kl_below_reconstruction_alone():
    """IDEC at gamma = 0.1 (Adam 1e-3, XifengGuo/IDEC) from an untrained autoencoder:
    its steps are mostly reconstruction, which moves the codes and raises KL(P || Q);
    the gamma L_c term must hold KL > 5% below that of the same steps on the MSE
    alone. A sign error on the KL term (``gamma * mse - kl``) lands above it."""
    model, params, x, p = _blobs_and_target()
    idec = functools.partial(
        clustering.clustering_loss, model=model, alpha=1.0, gamma=0.1, reconstruct=True
    )

    def mse_only(params, x, p):
        mse = jnp.mean(jnp.square(x - model.apply(params["ae"], x)))
        return mse, {"kl": jnp.zeros_like(mse), "mse": mse}

    after, metrics = _run_chunk(idec, optax.adam(1e-3), params, x, p)
    baseline, _ = _run_chunk(mse_only, optax.adam(1e-3), params, x, p)
    kl_idec, kl_mse = _mean_kl(model, after, x, p), _mean_kl(model, baseline, x, p)
    assert kl_idec < 0.95 * kl_mse, (kl_idec, kl_mse)
    assert np.mean(metrics["loss"][-5:]) < np.mean(metrics["loss"][:5])


# ------------------------------------------------------------------ NMI
def test_nmi_arithmetic_and_geometric_normalisations():
    """NMI = I(Y; C) / mean(H(Y), H(C)): ``nmi`` with the arithmetic mean (scikit-learn's
    default since 0.22), ``nmi_geometric`` with sqrt(H(Y) H(C)) (the default before 0.22,
    which the DEC-keras / IDEC numbers used). Both against scikit-learn and against the
    entropies computed here; they differ when H(Y) != H(C)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=500)
    clusters = np.where(rng.uniform(size=500) < 0.7, labels, rng.integers(0, 7, 500))
    scores = cluster_metrics.clustering_scores(labels, clusters)
    for key, method in (("nmi", "arithmetic"), ("nmi_geometric", "geometric")):
        want = sk_metrics.normalized_mutual_info_score(
            labels, clusters, average_method=method
        )
        assert scores[key] == pytest.approx(want, rel=1e-12)
    entropy = lambda v: (
        -np.sum((c := np.bincount(v) / len(v))[c > 0] * np.log(c[c > 0]))
    )
    h_y, h_c = entropy(labels), entropy(clusters)
    mi = sk_metrics.mutual_info_score(labels, clusters)
    assert scores["nmi"] == pytest.approx(mi / ((h_y + h_c) / 2), rel=1e-9)
    assert scores["nmi_geometric"] == pytest.approx(mi / np.sqrt(h_y * h_c), rel=1e-9)
    assert abs(scores["nmi"] - scores["nmi_geometric"]) > 1e-3


def test_cluster_accuracy_permuted_labels_and_known_confusion():
    labels = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])
    assert cluster_metrics.cluster_accuracy(labels, perm[labels]) == 1.0
    assert cluster_metrics.clustering_scores(labels, perm[labels])[
        "nmi"
    ] == pytest.approx(1.0)
    # confusion (rows = clusters, cols = classes): best map 0->1, 1->0, 2->2: (40+30+25)/150
    conf = np.array([[10, 40, 0], [30, 5, 15], [0, 25, 25]])
    clusters = np.concatenate([np.full(conf[c].sum(), c) for c in range(3)])
    truth = np.concatenate([np.repeat(np.arange(3), conf[c]) for c in range(3)])
    np.testing.assert_array_equal(
        cluster_metrics.confusion_matrix(truth, clusters), conf
    )
    assert cluster_metrics.cluster_accuracy(truth, clusters) == pytest.approx(
        (40 + 30 + 25) / 150
    )


@pytest.mark.parametrize(
    "labels, clusters",
    [(np.zeros(3, int), np.zeros(4, int)), (np.zeros((2, 3), int),) * 2],
)
def test_confusion_matrix_rejects_anything_but_two_equal_1d_label_arrays(
    labels, clusters
):
    with pytest.raises(ValueError, match=r"must be \[N\]"):
        cluster_metrics.confusion_matrix(labels, clusters)
