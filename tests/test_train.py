"""Training steps: scan chunks == single steps, run() returns every step, metric names,
non-finite guard, learning, eval masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import batching, evaluate, objectives, train

from helpers import make_config, tiny_model, tiny_state

D = 16


def _setup(lr=1e-2, beta=1.0):
    fields = {"hidden": (32,), "latent_dim": 3}
    cfg = make_config(model=fields, objective={"beta": beta})
    model, _ = tiny_model((4, 4), **fields)
    loss_one = objectives.make_objective(cfg, model)
    state = tiny_state((4, 4), learning_rate=lr, **fields)
    x = jax.random.uniform(jax.random.PRNGKey(9), (256, D))
    return loss_one, objectives.make_hparams(cfg), state, x, train.split_root_key(0)


@pytest.mark.parametrize("per_dispatch", [5, 1])
def test_scan_chunk_equals_single_steps(per_dispatch):
    loss_one, hparams_fn, state, x, keys = _setup()
    step_fn = train.make_step_fn(loss_one, hparams_fn, binarize=True)
    runner = train.ChunkRunner(
        step_fn, x, 32, keys["data"], steps_per_dispatch=per_dispatch
    )
    single = train.make_train_step(loss_one, hparams_fn, binarize=True)
    ref = jax.tree.map(jnp.copy, state)
    # Epochs of 8 steps (B = 32): 5 + 3 steps of epoch 0, 4 of epoch 1, then one chunk
    # across the end of epoch 1 (steps 12-16); one step per chunk without the loop.
    chunks = ((0, 5), (5, 3), (8, 4), (12, 5)) if per_dispatch == 5 else None
    chunks = chunks or tuple((s, 1) for s in range(17))
    losses = []
    for start, n in chunks:
        state, metrics = runner(state, start, n)
        assert {v.shape for v in metrics.values()} == {(n,)}
        losses.extend(metrics["objective"])
    for s in range(17):
        idx = batching.epoch_batches(keys["data"], s // 8, 256, 32)[s % 8]
        ref, m = single(ref, x[idx])
        np.testing.assert_allclose(losses[s], m["objective"], rtol=1e-5)
    assert int(state.step) == int(ref.step) == 17
    for n in (0, per_dispatch + 1):  # a chunk runs 1 to steps_per_dispatch steps
        with pytest.raises(ValueError, match="steps_per_dispatch"):
            runner(state, 17, n)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_run_returns_every_steps_metrics():
    loss_one, hparams_fn, state, x, keys = _setup()
    step_fn = train.make_step_fn(loss_one, hparams_fn)
    runner = train.ChunkRunner(step_fn, x, 32, keys["data"], steps_per_dispatch=5)
    ref = jax.tree.map(jnp.copy, state)
    state, metrics = runner.run(state, 12)  # chunks of 5, 5 and 2 steps
    assert int(state.step) == 12
    assert {k: v.shape for k, v in metrics.items()} == {k: (12,) for k in metrics}
    chunks = []
    for start, n in ((0, 5), (5, 5), (10, 2)):
        ref, chunk = runner(ref, start, n)
        chunks.append(chunk)
    assert set(metrics) == set(chunks[0]) >= {"objective", "elbo", "nonfinite_state"}
    for k, v in metrics.items():
        np.testing.assert_array_equal(v, np.concatenate([c[k] for c in chunks]))
    assert runner.run(state, 0)[1] == {}


def test_step_reports_the_weighted_objective_and_the_elbo_at_beta_1():
    """``objective`` is what is minimised (recon + beta KL); ``elbo`` is -(recon + KL)
    whatever beta, the number to compare with the evaluation's ``elbo``."""
    loss_one, hparams_fn, state, x, _ = _setup(beta=0.5)
    _, m = train.make_train_step(loss_one, hparams_fn)(state, x[:32])
    assert "loss" not in m
    np.testing.assert_allclose(m["objective"], m["recon"] + 0.5 * m["kl"], rtol=1e-6)
    np.testing.assert_allclose(m["elbo"], -(m["recon"] + m["kl"]), rtol=1e-6)


def test_nonfinite_step_is_not_applied():
    _, hparams_fn, state, x, _ = _setup()
    model_loss = lambda p, xi, k, h: (
        jnp.log(xi[0]) * sum(jnp.sum(l) for l in jax.tree.leaves(p)),
        {},
    )
    step = train.make_train_step(model_loss, hparams_fn)
    before = jax.tree.map(np.asarray, state.params)
    bad = x[:8].at[0, 0].set(-1.0)  # log(-1) = nan in one example
    state, metrics = step(state, bad)
    assert int(metrics["nonfinite"]) == 1 and int(state.step) == 1
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
        np.testing.assert_array_equal(a, b)
    state, metrics = step(state, x[:8])
    assert int(metrics["nonfinite"]) == 0


def test_training_lowers_the_negative_elbo():
    loss_one, hparams_fn, state, x, keys = _setup()
    eval_fn = evaluate.make_eval_fn(loss_one, {"beta": 1.0})
    before = evaluate.evaluate_dataset(eval_fn, state.params, x, 64, keys["eval"])[
        "loss"
    ]
    runner = train.ChunkRunner(
        train.make_step_fn(loss_one, hparams_fn), x, 32, keys["data"]
    )
    state, _ = runner.run(state, 200)
    assert int(state.step) == 200
    after = evaluate.evaluate_dataset(eval_fn, state.params, x, 64, keys["eval"])[
        "loss"
    ]
    assert after < before - 0.5


def test_eval_masked_mean_counts_every_example_once():
    loss_one, _, state, x, keys = _setup()
    x = np.asarray(x[:77])  # 77 = 2 * 32 + 13: a padded last batch
    eval_fn = evaluate.make_eval_fn(loss_one, {"beta": 1.0})
    got = evaluate.evaluate_dataset(eval_fn, state.params, x, 32, keys["eval"])
    params = state.params
    mean, logvar = jax.vmap(lambda xi: state.apply_fn(params, xi, method="encode"))(x)
    kl = jax.vmap(lambda m, lv: 0.5 * jnp.sum(jnp.exp(lv) + m**2 - 1 - lv))(
        mean, logvar
    )
    np.testing.assert_allclose(got["kl"], float(jnp.mean(kl)), rtol=1e-5)


def test_median_epoch_seconds_leaves_out_the_compiling_epoch():
    assert train.median_epoch_seconds([9.0, 1.0, 3.0, 2.0]) == 2.0
    assert train.median_epoch_seconds([9.0]) == 9.0
    assert train.median_epoch_seconds([]) is None
