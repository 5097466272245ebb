"""Early stopping: the tracker's counting, a run that stops once patience runs out and
finishes with (and loads) its best parameters, and a resumed run that stops where an
uninterrupted one does, with the same best parameters bit for bit."""

import json
import math
import signal

import jax
import numpy as np
import pytest

from vae_jax import (
    checkpoint,
    config_checks,
    early_stopping,
    loop,
    preemption,
    runs,
    writer,
)

from helpers import short_run_config

# Scripted validation losses by step: the best is at step 20; with patience 2 the
# evaluations at 25 and 30 do not improve on it, so training stops at step 30; after
# step 40 every evaluation improves.
SCRIPT = {5: 5.0, 10: 4.0, 15: 4.5, 20: 3.0, 25: 3.5, 30: 3.6, 35: 1.0, 40: 0.5}


def test_tracker_counts_evaluations_without_improvement_after_the_start():
    tracker = early_stopping.Tracker(patience=2, start_step=10)
    assert tracker.update(5, 5.0) and tracker.update(10, 4.0)
    assert not tracker.update(10, 4.5) and tracker.waited == 0  # at the start: free
    assert not tracker.update(15, 4.0)  # equal is no improvement
    assert not tracker.stopped and tracker.waited == 1
    assert not tracker.update(20, math.nan)  # NaN never improves
    assert tracker.stopped and (tracker.best, tracker.best_step) == (4.0, 10)
    assert tracker.update(25, 3.9) and tracker.waited == 0 and not tracker.stopped
    records = [{"step": s, early_stopping.METRIC: v} for s, v in SCRIPT.items()]
    records.insert(2, {"step": 12, "train/objective": 1.0})  # other records ignored
    replayed = early_stopping.Tracker.replay(records, 2, 0, up_to=30)
    assert (replayed.best_step, replayed.waited, replayed.stopped) == (20, 2, True)
    assert not early_stopping.Tracker.replay(records, 2, 0, up_to=25).stopped


def _scripted_losses(monkeypatch):
    """The tracker sees SCRIPT's value at each evaluated step in place of the real
    validation loss (which metrics.jsonl records), in a run and in its replay."""
    update = early_stopping.Tracker.update
    monkeypatch.setattr(
        early_stopping.Tracker,
        "update",
        lambda self, step, value: update(self, step, SCRIPT.get(step, 1 / step)),
    )


def _config(**train):
    config = short_run_config(100, write_figures=False, eval_every=5)
    config.train.update(
        **{"early_stopping_patience": 2, "checkpoint_every": 5, **train}
    )
    return config


def _params(tree):
    return jax.tree.leaves(jax.device_get(tree))


def test_run_stops_and_finishes_with_its_best_parameters(tmp_path, monkeypatch):
    _scripted_losses(monkeypatch)
    final = loop.train_and_evaluate(_config(), str(tmp_path))
    marker = json.loads((tmp_path / early_stopping.MARKER).read_text())
    assert (marker["stopped_at"], marker["best_step"], marker["best"]) == (30, 20, 3.0)
    records = writer.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if early_stopping.METRIC in r] == [
        5,
        10,
        15,
        20,
        25,
        30,
    ]
    (last,) = [r for r in records if "test/elbo" in r]
    assert last["step"] == 30
    # The run loads (and was finally evaluated with) the best state, step 20.
    run = runs.load_run(tmp_path)
    assert run.step == 20
    at_30 = runs.load_run(tmp_path, step=30)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(_params(run.params), _params(at_30.params))
    )
    monkeypatch.undo()
    evaluate_now = loop.make_evaluator(run.experiment)
    assert evaluate_now(run.params)["test/elbo"] == pytest.approx(final["test/elbo"])
    assert evaluate_now(at_30.params)["test/elbo"] != pytest.approx(final["test/elbo"])
    # A rerun finds the run finished: nothing trained or evaluated again.
    before = (tmp_path / "metrics.jsonl").read_text()
    assert loop.train_and_evaluate(_config(), str(tmp_path)) == pytest.approx(final)
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_evaluations_before_the_start_do_not_count(tmp_path, monkeypatch):
    _scripted_losses(monkeypatch)
    loop.train_and_evaluate(_config(early_stopping_start=25), str(tmp_path))
    # 25 is free, 30 counts once: no stop there; 35 and 40 improve; the run ends at
    # step 100 with no early-stop mark, and loads its latest state.
    assert not (tmp_path / early_stopping.MARKER).exists()
    assert runs.load_run(tmp_path).step == 100


class Killed(Exception):
    """A process ended where it stands: nothing saved on the way out."""


def _straight_and_interrupted(tmp_path, monkeypatch, make_config, interrupt):
    """Runs ``make_config()`` straight, then again with ``interrupt(directory, at)``
    called after every checkpoint save (it raises to end the run), then resumes that
    run. -> (straight workdir, interrupted-and-resumed workdir, the error raised)."""
    _scripted_losses(monkeypatch)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    loop.train_and_evaluate(make_config(), str(straight))
    save = checkpoint.save

    def save_then_interrupt(manager, state, at):
        save(manager, state, at)
        interrupt(str(manager.directory), at)

    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    with pytest.raises((preemption.Preempted, Killed)) as raised:
        loop.train_and_evaluate(make_config(), str(resumed))
    monkeypatch.setattr(checkpoint, "save", save)
    loop.train_and_evaluate(make_config(), str(resumed))
    return straight, resumed, raised.value


def _same_params(a, b):
    for x, y in zip(_params(a.params), _params(b.params)):
        np.testing.assert_array_equal(x, y)


def test_resumed_run_stops_where_the_uninterrupted_one_does(tmp_path, monkeypatch):
    def sigterm_at_25(directory, at):
        if at == 25 and "best" not in directory:
            signal.raise_signal(signal.SIGTERM)

    straight, resumed, error = _straight_and_interrupted(
        tmp_path, monkeypatch, _config, sigterm_at_25
    )
    assert isinstance(error, preemption.Preempted)
    a, b = runs.load_run(straight), runs.load_run(resumed)
    assert a.step == b.step == 20
    _same_params(a, b)
    marker = lambda d: json.loads((d / early_stopping.MARKER).read_text())
    assert marker(straight) == marker(resumed)


def test_run_killed_after_a_best_checkpoint_resumes(tmp_path, monkeypatch):
    """A run killed after writing its best state at step 35, past its last regular
    checkpoint (30), resumes from 30 and writes the best at 35 again (replacing the
    one left behind) rather than failing: it ends as an uninterrupted run does."""
    seen = []

    def killed_after_best_35(directory, at):
        if at == 35 and "best" in directory:
            seen.append(checkpoint.make_manager(directory, 1).all_steps())
            raise Killed

    config = lambda: _config(early_stopping_patience=3, checkpoint_every=10)
    straight, resumed, error = _straight_and_interrupted(
        tmp_path, monkeypatch, config, killed_after_best_35
    )
    assert isinstance(error, Killed) and seen == [[35]]
    a, b = runs.load_run(straight), runs.load_run(resumed)
    assert a.step == b.step == 100
    _same_params(a, b)


def test_early_stopping_needs_evaluations_on_a_validation_split():
    config = short_run_config(10, eval_every=0)
    config.train.early_stopping_patience = 3
    with pytest.raises(ValueError, match="early_stopping_patience"):
        config_checks.validate_config(config)
    config.train.eval_every = 5
    config_checks.validate_config(config)
    config.data.valid_size = 0
    with pytest.raises(ValueError, match="validation split"):
        config_checks.validate_config(config)
