"""One-class training as one vmapped program, anomaly scores and AUROC."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import models, objectives, optim, train
from vae_jax.studies import anomaly, cluster_metrics

from helpers import make_config


def _config(kind):
    return make_config(
        model={"kind": kind, "hidden": (16,), "latent_dim": 3},
        objective={"name": "mse" if kind == "ae" else "elbo"},
        train={"batch_size": 8},
    )


def _class_data(seed=0):
    """3 classes of 16-pixel data with unequal counts (20, 13, 17)."""
    rng = np.random.default_rng(seed)
    counts = (20, 13, 17)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    x = rng.uniform(size=(len(y), 16)).astype(np.float32) * (1 + y[:, None]) / 3
    return x, y


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_vmapped_one_class_training_equals_one_by_one(kind):
    config = _config(kind)
    x, y = _class_data()
    xs, counts = anomaly.stack_by_class(x, y, range(3))
    assert xs.shape == (3, 20, 16) and list(counts) == [20, 13, 17]
    model = models.build_model(config.model, likelihood="bernoulli", image_shape=(4, 4))
    tx = optim.make_optimizer(config.optim, 10)
    step_fn = train.make_step_fn(
        objectives.make_objective(config, model), objectives.make_hparams(config)
    )
    chunk = anomaly.make_one_class_chunk(step_fn, num_steps=5, batch_size=8)
    keys = [
        jax.random.split(jax.random.PRNGKey(c), 3) for c in range(3)
    ]  # init, train, data
    stack = lambda i: jnp.stack([k[i] for k in keys])
    state = anomaly.init_stacked_states(model, tx, jnp.zeros(16), stack(0), stack(1))
    member = lambda tree, c: jax.tree.map(lambda a: a[c], tree)  # model c of the stack
    singles = [member(state, c) for c in range(3)]
    vchunk = anomaly.vmap_chunk(chunk)
    for _ in range(2):  # two chunks: 10 steps, past the 13-example class's epoch
        state, vmetrics = vchunk(state, jnp.asarray(xs), jnp.asarray(counts), stack(2))
    one = jax.jit(chunk)
    for c in range(3):
        for _ in range(2):
            singles[c], metrics_c = one(
                singles[c], jnp.asarray(xs[c]), counts[c], keys[c][2]
            )
        np.testing.assert_allclose(
            metrics_c["objective"], vmetrics["objective"][c], rtol=1e-5, atol=1e-6
        )
        tree_c = member(state.params, c)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
            tree_c,
            singles[c].params,
        )
    # the models differ: each saw only its own class
    assert not np.allclose(
        state.params["params"]["to_mean" if kind == "vae" else "to_code"]["kernel"][0],
        state.params["params"]["to_mean" if kind == "vae" else "to_code"]["kernel"][1],
    )


def test_padded_rows_are_never_read():
    """Batches of a class with count n read only rows < n (padding never trained on)."""
    idx = anomaly.batch_indices_at(jax.random.PRNGKey(0), jnp.arange(12), 13, 4, 20)
    assert int(idx.max()) < 13


def test_score_all_matches_per_example_scores_and_auroc():
    config = _config("vae")
    model = models.build_model(config.model, likelihood="bernoulli", image_shape=(4, 4))
    x, y = _class_data()
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    vae_params = jax.vmap(lambda k: model.init(k, jnp.zeros(16)))(
        keys
    )  # 2 stacked models
    ae = models.build_model(
        _config("ae").model, likelihood="bernoulli", image_shape=(4, 4)
    )
    ae_params = jax.vmap(lambda k: ae.init(k, jnp.zeros(16)))(keys)
    for name in ("recon", "elbo", "iwae"):
        params = ae_params if name == "recon" else vae_params
        score_one = anomaly.make_score_fn(
            ae if name == "recon" else model, name, num_samples=3
        )
        scores = anomaly.make_score_all(score_one, batch_size=16)(
            params, x, jax.random.PRNGKey(1)
        )
        assert scores.shape == (len(x), 2) and np.all(np.isfinite(scores))
        b, i = divmod(37, 16)
        key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(1), b), 16)[i]
        direct = score_one(
            jax.tree.map(lambda a: a[1], params), jnp.asarray(x[37]), key
        )
        np.testing.assert_allclose(scores[37, 1], direct, rtol=1e-5)
    aurocs = anomaly.one_class_aurocs(
        np.stack([y != 0, y != 1], 1).astype(float), y, [0, 1]
    )
    assert aurocs == {0: 1.0, 1: 1.0}


def test_auroc_perfect_reversed_and_chance():
    truth = np.array([0, 0, 0, 1, 1])
    assert cluster_metrics.auroc(truth, np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 1.0
    assert cluster_metrics.auroc(truth, -np.array([0.1, 0.2, 0.3, 0.8, 0.9])) == 0.0
    assert cluster_metrics.auroc(truth, np.ones(5)) == 0.5


def test_train_one_class_models_resumes(tmp_path):
    config = _config("ae")
    x, y = _class_data()
    xs, counts = anomaly.stack_by_class(x, y, range(3))
    model = models.build_model(config.model, likelihood="bernoulli", image_shape=(4, 4))
    state, seconds = anomaly.train_one_class_models(
        config, model, xs, counts, 2, tmp_path
    )
    assert len(seconds) == 2 and int(state.step[0]) == 2 * (20 // 8)
    again, seconds2 = anomaly.train_one_class_models(
        config, model, xs, counts, 2, tmp_path
    )
    assert seconds2 == []
    jax.tree.map(np.testing.assert_array_equal, state.params, again.params)


def test_extreme_indices_top_and_bottom_k():
    scores = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 1.0, 8.0])
    least, most = anomaly.extreme_indices(scores, 3)
    assert least.tolist() == [1, 5, 3]  # ascending, ties in row order
    assert most.tolist() == [2, 6, 4]  # descending
    mask = np.array([True, False, True, True, False, False, True])
    least, most = anomaly.extreme_indices(scores, 2, mask)
    assert least.tolist() == [3, 0] and most.tolist() == [2, 6]
    least, most = anomaly.extreme_indices(scores, 10, mask)  # fewer rows than k
    assert sorted(least.tolist()) == sorted(most.tolist()) == [0, 2, 3, 6]


def test_write_extremes_figure(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)  # [60]
    scores = rng.uniform(size=(60, 3)) + (labels[:, None] != np.arange(3)[None])
    images = rng.uniform(size=(60, 4, 4))
    path = tmp_path / "extremes.png"
    picked = anomaly.write_extremes_figure(
        scores, labels, images, [0, 1, 2], [2, 0], path, k=4, score_name="recon"
    )
    assert list(picked) == [2, 0] and picked[0]["auroc"] == 1.0
    for c, rows in picked.items():
        assert len(rows["least"]) == len(rows["most"]) == 4
        assert np.all(labels[rows["least"] + rows["most"]] == c)  # normal images only
        assert scores[rows["most"][0], c] == scores[labels == c, c].max()
    assert path.stat().st_size > 1000
