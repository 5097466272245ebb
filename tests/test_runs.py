"""``runs.load_run`` rebuilds a finished run from its workdir, bit for bit, and
``evaluate.evaluate_model`` scores it."""

import pathlib

import flax.serialization
import jax
import numpy as np
import pytest

from vae_jax import checkpoint, evaluate, runs, writer


@pytest.fixture(scope="module")
def finished(straight_run):
    """(workdir, final metrics) of ``straight_run``: 40 steps of a (32,) MLP VAE,
    checkpoints kept at steps 20/30/40."""
    return straight_run, writer.read_metrics(straight_run / "metrics.jsonl")[-1]


def _raw_params(workdir: pathlib.Path, step: int):
    """The params of checkpoint ``step`` as orbax stored them (no template)."""
    manager = checkpoint.make_manager(workdir / "checkpoints", 3)
    return manager.restore(step)["params"]


def test_load_run_restores_the_final_params_and_evaluation(finished):
    workdir, final = finished
    exp, state = runs.load_run(workdir)
    assert int(state.step) == 40
    assert exp.config.model.hidden == (32,)  # JSON arrays come back as tuples
    restored = flax.serialization.to_state_dict(state.params)
    jax.tree.map(np.testing.assert_array_equal, restored, _raw_params(workdir, 40))
    eval_fn = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    test = evaluate.evaluate_dataset(
        eval_fn,
        state.params,
        exp.eval_sets()["test"],
        exp.config.train.eval_batch_size,
        exp.keys["eval"],
    )
    assert test["loss"] == final["test/loss"]


def test_load_run_at_a_step(finished):
    workdir, _ = finished
    _, state = runs.load_run(workdir, step=20)
    assert int(state.step) == 20
    restored = flax.serialization.to_state_dict(state.params)
    jax.tree.map(np.testing.assert_array_equal, restored, _raw_params(workdir, 20))
    with pytest.raises(FileNotFoundError, match=r"step 7 .*steps: \[20, 30, 40\]"):
        runs.load_run(workdir, step=7)


def test_load_run_without_a_run_or_a_checkpoint_says_so(tmp_path, finished):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        runs.load_run(tmp_path / "missing")
    writer.write_config(tmp_path, writer.read_config(finished[0]))
    with pytest.raises(FileNotFoundError, match="no checkpoints/ directory"):
        runs.load_run(tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # looking created nothing
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint yet"):
        runs.load_run(tmp_path)


def test_evaluate_model_is_the_nll_and_active_units_of_the_run(finished):
    exp, state = runs.load_run(finished[0])
    x = exp.eval_sets()["test"][:40]
    out = evaluate.evaluate_model(
        exp, state.params, x, 10, chunk_size=4, batch_size=20, active_examples=100
    )
    key = jax.random.fold_in(exp.keys["eval"], 5000)
    ll_fn = evaluate.make_log_likelihood_fn(exp.model.log_weights, 10, 4)
    nll = evaluate.evaluate_log_likelihood(ll_fn, state.params, x, 20, key, 10)
    assert {k: out[k] for k in nll} == nll
    assert out["num_examples"] == 40 and out["num_samples"] == 10
    latent_dim = exp.config.model.latent_dim
    assert len(out["active_units"]) == 1 and 0 <= out["active_units"][0] <= latent_dim
    assert out["unit_variances"][0].shape == (latent_dim,)
    assert out["seconds"] > 0
    # L_10 >= the single-sample ELBO in expectation (Burda et al. 2015, Thm. 1).
    eval_fn = evaluate.make_eval_fn(exp.loss_one, {"beta": 1.0})
    elbo_loss = evaluate.evaluate_dataset(eval_fn, state.params, x, 40, key)["loss"]
    assert out["nll"] < elbo_loss
