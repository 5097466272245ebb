"""DEC / IDEC maths, metrics, stopping rule and a tiny end-to-end run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vae_jax import models, runs
from vae_jax.configs import dec_mnist
from vae_jax.studies import cluster_metrics, clustering

from helpers import make_config

# DEC's config with a 16-32-3 autoencoder, for the blobs below.
_SMALL_DEC = {"model": {"hidden": (32,), "latent_dim": 3}, "train": {"batch_size": 64}}


def _q_numpy(z, mu, alpha=1.0):
    """Xie et al. 2016, eq. 1, written directly. z: [N, K], mu: [C, K] -> [N, C]."""
    d2 = ((z[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    num = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return num / num.sum(1, keepdims=True)


@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_soft_assignment_rows_sum_to_one_and_match_numpy(alpha):
    rng = np.random.default_rng(0)
    z, mu = (
        rng.normal(size=(7, 3)).astype(np.float32),
        rng.normal(size=(4, 3)).astype(np.float32),
    )
    q = jax.jit(
        jax.vmap(clustering.soft_assignment, in_axes=(0, None, None)), static_argnums=2
    )(z, mu, alpha)
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(q, _q_numpy(z, mu, alpha), rtol=1e-5)


def test_target_distribution_formula():
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]], np.float32)
    f = q.sum(0)
    expected = (q**2 / f) / (q**2 / f).sum(1, keepdims=True)
    p = clustering.target_distribution(jnp.asarray(q))
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    assert np.all(
        np.argmax(p, 1) == np.argmax(q, 1)
    )  # sharpening keeps the argmax here


def test_kl_matches_numpy_and_is_zero_at_p_equal_q():
    p = np.array([0.5, 0.3, 0.2, 0.0], np.float32)
    q = np.array([0.25, 0.25, 0.25, 0.25], np.float32)
    expected = np.sum(p[:3] * np.log(p[:3] / q[:3]))
    np.testing.assert_allclose(
        clustering.kl_to_assignment(p, jnp.log(q)), expected, rtol=1e-6
    )
    assert abs(float(clustering.kl_to_assignment(q, jnp.log(q)))) < 1e-7


def test_kl_gradient_matches_finite_differences():
    """d KL(P || Q) / d(z, mu) against finite differences (float64 via jax.enable_x64)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        z, mu = rng.normal(size=(3,)), rng.normal(size=(4, 3))
        p = rng.dirichlet(np.ones(4))

        def loss(z, mu):
            return clustering.kl_to_assignment(
                p, clustering.log_soft_assignment(z, mu, 1.0)
            )

        check_grads(
            jax.jit(loss), (z, mu), order=2, modes=["rev"], atol=1e-5, rtol=1e-5
        )


def test_stopping_rule():
    prev = np.zeros(1000, int)
    labels = prev.copy()
    labels[:1] = 1  # 0.1% changed: not < tol = 1e-3
    assert not clustering.should_stop(labels, prev, 1e-3)
    assert clustering.should_stop(prev.copy(), prev, 1e-3)
    assert not clustering.should_stop(prev, None, 1e-3)  # never at the first refresh
    assert clustering.changed_fraction(labels, prev) == pytest.approx(1e-3)


def test_dec_architecture_is_d_500_500_2000_10():
    config = dec_mnist.get_config()
    model = models.build_model(
        config.model, likelihood="bernoulli", image_shape=(28, 28)
    )
    params = model.init(jax.random.key(0), jnp.zeros((784,)))
    shapes = sorted(x.shape for x in jax.tree.leaves(params) if x.ndim == 2)
    widths = [(784, 500), (500, 500), (500, 2000), (2000, 10)]
    widths += [(10, 2000), (2000, 500), (500, 500), (500, 784)]
    assert shapes == sorted(widths)
    x = jax.random.uniform(jax.random.key(1), (784,))
    z = model.apply(params, x, method="encode")
    assert z.shape == (10,) and np.any(np.asarray(z) < 0)  # linear (not ReLU) embedding
    assert np.any(
        np.asarray(model.apply(params, z, method="decode")) < 0
    )  # linear output


def test_batch_indices_at_covers_each_row_once_per_epoch():
    idx = clustering.batch_indices_at(jax.random.key(0), jnp.arange(6), 13, 4, 20)
    epoch0, epoch1 = np.asarray(idx[:3]).ravel(), np.asarray(idx[3:]).ravel()
    assert len(set(epoch0)) == 12 and max(epoch0) < 13 and max(epoch1) < 13
    assert not np.array_equal(epoch0, epoch1)


def _blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0.0, 1.0, size=(3, 16))
    y = rng.integers(0, 3, size=n)
    x = np.clip(centers[y] + 0.05 * rng.normal(size=(n, 16)), 0, 1).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Blobs and DEC's 16-32-3 autoencoder pretrained 3 epochs on them, checkpointed
    in ``workdir``: (x, y, model, params, seconds per epoch, workdir)."""
    x, y = _blobs()
    workdir = tmp_path_factory.mktemp("ae")
    config = make_config("dec_mnist", **_SMALL_DEC)
    model, params, seconds = clustering.pretrain_autoencoder(config, x, workdir, 3)
    return x, y, model, params, seconds, workdir


def test_pretraining_resumes_from_its_checkpoint(pretrained):
    """A rerun of the finished pretraining trains no further and returns its params."""
    x, _, _, params, seconds, workdir = pretrained
    assert len(seconds) == 3
    config = make_config("dec_mnist", **_SMALL_DEC)
    _, params2, seconds2 = clustering.pretrain_autoencoder(config, x, workdir, 3)
    assert seconds2 == []
    jax.tree.map(np.testing.assert_array_equal, params, params2)


def test_pretrained_autoencoder_loads_as_a_run(pretrained):
    x, _, model, params, _, workdir = pretrained
    run = runs.load_run(workdir, dataset=clustering.pretraining_dataset(x))
    assert run.family == "ae" and run.step == run.experiment.total_steps
    jax.tree.map(np.testing.assert_array_equal, run.params, params)
    codes = run.encode(x[:50])
    np.testing.assert_allclose(codes, model.code(params, x[:50]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("idec", [False, True])
def test_dec_end_to_end_on_blobs(idec, pretrained):
    x, y, model, params, _, _ = pretrained
    cfg = make_config("dec_mnist").clustering
    cfg.update_interval, cfg.batch_size, cfg.max_steps, cfg.kmeans_n_init = 5, 64, 30, 3
    cfg.num_clusters = 3
    out = clustering.run_clustering(
        model, params, x, cfg, idec=idec, seed=0, labels_true=y
    )
    assert cluster_metrics.cluster_accuracy(y, out["labels"]) > 0.95
    assert out["history"][-1]["step"] <= 30


def test_batch_indices_at_matches_one_permutation_per_step():
    """The per-epoch permutations give exactly the per-step definition's batches."""
    key, count, batch, capacity = jax.random.key(3), 13, 4, 20

    def reference(step):  # epoch e's permutation drawn afresh for every step
        noise = jax.random.uniform(jax.random.fold_in(key, step // 3), (capacity,))
        perm = jnp.argsort(jnp.where(jnp.arange(capacity) < count, noise, 2.0))
        return perm[(step % 3) * batch : (step % 3 + 1) * batch]

    for start in (0, 2, 7):
        steps = start + jnp.arange(8)
        got = clustering.batch_indices_at(key, steps, count, batch, capacity)
        want = jnp.stack([reference(int(s)) for s in steps])
        np.testing.assert_array_equal(got, want)
    traced = jax.jit(
        lambda c: clustering.batch_indices_at(key, jnp.arange(8), c, batch, capacity, 4)
    )(count)
    np.testing.assert_array_equal(
        traced, clustering.batch_indices_at(key, jnp.arange(8), count, batch, capacity)
    )


def _small_dec_setup(pretrained):
    """Blobs, the pretrained 16-32-3 AE and a DEC config (T = 5, tol = 0: the budget
    alone stops a fit)."""
    x, y, model, params, _, _ = pretrained
    cfg = make_config("dec_mnist").clustering
    cfg.update(update_interval=5, batch_size=64, kmeans_n_init=2, num_clusters=3)
    cfg.tol = 0.0
    return x, y, model, params, cfg


def test_interrupted_dec_resumes_to_the_same_result(tmp_path, monkeypatch, pretrained):
    """A fit stopped at max_steps and rerun with a larger budget from its checkpoint
    ends bit-identical to one uninterrupted fit."""
    x, y, model, params, cfg = _small_dec_setup(pretrained)

    def fit(max_steps, workdir):
        cfg.max_steps = max_steps
        return clustering.run_clustering(
            model, params, x, cfg, idec=True, seed=0, workdir=workdir, labels_true=y
        )

    whole = fit(40, None)
    first = fit(15, tmp_path / "idec")
    assert first["history"][-1]["step"] == 15
    chunks_run, make_chunk = [], clustering.make_dec_chunk

    def counting_chunk(*args, **kwargs):
        chunk = make_chunk(*args, **kwargs)
        return lambda *a: chunks_run.append(1) or chunk(*a)

    monkeypatch.setattr(clustering, "make_dec_chunk", counting_chunk)
    resumed = fit(40, tmp_path / "idec")
    assert len(chunks_run) == (40 - 15) // 5  # from the checkpoint at step 15
    assert resumed["history"][-1]["step"] == whole["history"][-1]["step"] == 40
    assert [r["step"] for r in resumed["history"]] == list(range(0, 45, 5))
    np.testing.assert_array_equal(resumed["labels"], whole["labels"])
    jax.tree.map(
        np.testing.assert_array_equal, resumed["state"].params, whole["state"].params
    )
    for a, b in zip(resumed["history"], whole["history"], strict=True):
        assert a["step"] == b["step"] and a.get("loss") == b.get("loss")


@pytest.mark.parametrize("n", [1, 7, 10, 23])
def test_apply_all_keeps_every_row_in_order(n):
    """Padded batches of 10: N below, at and above the batch size, numpy or device x."""
    fn_one = lambda params, x: {"z": params["w"] @ x, "norm": jnp.sum(x * x)}
    apply_all = clustering.make_apply_all(fn_one, batch_size=10)
    params = {"w": jnp.arange(12.0).reshape(3, 4)}
    x = np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)
    for xs in (x, jnp.asarray(x)):
        out = apply_all(params, xs)
        np.testing.assert_allclose(out["z"], x @ np.asarray(params["w"]).T, rtol=1e-5)
        np.testing.assert_allclose(out["norm"], np.sum(x * x, axis=1), rtol=1e-5)


def test_dec_stop_on_a_saved_step_saves_once_and_resumes(
    tmp_path, monkeypatch, pretrained
):
    """A fit whose stop falls on a periodic save's step (10 refreshes of T = 5 steps,
    max_steps = 50) finishes, and a rerun resumes there and returns the same result
    without training further."""
    x, _, model, params, cfg = _small_dec_setup(pretrained)
    cfg.max_steps = 50  # the budget stops it, at a save step (save_every = 10)

    def fit():
        return clustering.run_clustering(
            model, params, x, cfg, idec=False, seed=0, workdir=tmp_path / "dec"
        )

    first = fit()
    assert first["history"][-1]["step"] == 50
    steps = [
        int(p.name)
        for p in (tmp_path / "dec" / "checkpoints").iterdir()
        if p.name.isdigit()
    ]
    assert max(steps) == 50

    def no_training(*args, **kwargs):
        return lambda *a: pytest.fail("the rerun trained")

    monkeypatch.setattr(clustering, "make_dec_chunk", no_training)
    again = fit()
    np.testing.assert_array_equal(again["labels"], first["labels"])
    jax.tree.map(
        np.testing.assert_array_equal, again["state"].params, first["state"].params
    )
