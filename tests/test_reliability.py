"""Faults a hostile user or a failing machine inflicts on a run, each ending in a
fallback with a warning, a clean stop with one message, or a refusal: a corrupt
latest checkpoint, diverging updates, a second runner on the workdir, a changed
config, a rerun of a finished run, a full disk."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vae_jax import checkpoint, loop, provenance, workdir_lock, writer

from helpers import REPO
from helpers import short_run_config as _config
from helpers import straight_config as _straight_config


def _copy(straight_run, tmp_path):
    shutil.copytree(straight_run, tmp_path, dirs_exist_ok=True)  # finished at step 40
    return tmp_path


def test_corrupt_latest_checkpoint_never_leaves_the_run_stuck(tmp_path, straight_run):
    """Before: resumed from 30, trained to 40 and died on the existing step 40,
    on every rerun."""
    workdir = _copy(straight_run, tmp_path)
    (workdir / "checkpoints" / "40" / "default" / "_METADATA").write_bytes(b"")
    final = loop.train_and_evaluate(_straight_config(50), str(workdir))
    assert np.isfinite(final["test/elbo"])
    manager = checkpoint.make_manager(workdir / "checkpoints", 3)
    assert manager.latest_step() == 50
    assert [p.name[:3] for p in (workdir / "checkpoints_unreadable").iterdir()] == [
        "40-"
    ]


def test_rerun_of_a_finished_run_adds_no_record(tmp_path, straight_run):
    """Before: every rerun appended another final evaluation."""
    workdir = _copy(straight_run, tmp_path)
    before = writer.read_metrics(workdir / "metrics.jsonl")
    final = loop.train_and_evaluate(_straight_config(40), str(workdir))
    assert writer.read_metrics(workdir / "metrics.jsonl") == before
    assert final == {k: v for k, v in before[-1].items() if k != "step"}


def test_killed_final_evaluation_is_written_once(tmp_path, straight_run):
    """A run killed after its last checkpoint but before the final record."""
    workdir = _copy(straight_run, tmp_path)
    records = writer.read_metrics(workdir / "metrics.jsonl")
    final_record = records.pop()
    (workdir / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )
    loop.train_and_evaluate(_straight_config(40), str(workdir))
    again = writer.read_metrics(workdir / "metrics.jsonl")
    assert len(again) == len(records) + 1
    assert again[-1]["test/elbo"] == pytest.approx(final_record["test/elbo"], abs=0)


def test_a_second_runner_is_refused_naming_the_holder(tmp_path):
    """Before: two runners interleaved metrics.jsonl and checkpoints."""
    held = pytest.raises(workdir_lock.WorkdirLockedError, match=r"in use by pid \d+")
    with workdir_lock.locked(tmp_path), held:
        loop.train_and_evaluate(_config(10), str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import os, sys; from vae_jax import workdir_lock; "
                "held = workdir_lock.locked(sys.argv[1]); held.__enter__(); "
                "os._exit(0)"  # dies holding the lock, leaving the file
            ),
            str(tmp_path),
        ],
        cwd=REPO,
        check=True,
    )
    assert holder.returncode == 0 and "pid" in (tmp_path / ".lock").read_text()
    with workdir_lock.locked(tmp_path):
        pass


@pytest.mark.parametrize(
    ("field", "value", "always"),
    [
        ("seed", 1, True),
        ("model.latent_dim", 4, True),
        ("objective.likelihood", "gaussian", None),  # adds a parameter: see below
        ("objective.beta", 0.5, False),
        ("optim.learning_rate", 3e-4, False),
    ],
)
def test_changed_config_does_not_resume_silently(
    tmp_path, straight_run, field, value, always
):
    """Before: a rerun with another seed, likelihood or sigma exited 0 and overwrote
    config.json (a changed seed also re-split the data)."""
    workdir = _copy(straight_run, tmp_path)
    config = _straight_config(50)
    section, _, name = field.rpartition(".")
    (config[section] if section else config)[name] = value
    stored = (workdir / "config.json").read_text()
    with pytest.raises(provenance.ConfigChangeError, match=field):
        loop.train_and_evaluate(config, str(workdir))
    assert (workdir / "config.json").read_text() == stored
    if always is None:  # allowed, but the checkpoint lacks the new sigma
        with pytest.raises(checkpoint.CheckpointError, match="log_sigma"):
            loop.train_and_evaluate(config, str(workdir), allow_config_change=True)
        return
    if always:
        with pytest.raises(provenance.ConfigChangeError, match="cannot change"):
            loop.train_and_evaluate(config, str(workdir), allow_config_change=True)
        return
    loop.train_and_evaluate(config, str(workdir), allow_config_change=True)
    (record,) = writer.read_metrics(workdir / provenance.HISTORY)
    assert record["step"] == 40 and record["changes"][field][1] == value
    assert "train.num_steps" in record["changes"]  # free changes are recorded too


def test_free_fields_change_without_asking(tmp_path, straight_run):
    workdir = _copy(straight_run, tmp_path)
    config = _straight_config(50)
    config.train.log_every = 5
    loop.train_and_evaluate(config, str(workdir))
    assert json.loads((workdir / "config.json").read_text())["train"]["log_every"] == 5


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_garbage_config_json_is_refused(tmp_path, straight_run, garbage):
    """Before: a hand-edited or garbage config.json was ignored and overwritten."""
    workdir = _copy(straight_run, tmp_path)
    (workdir / "config.json").write_bytes(garbage)
    with pytest.raises(provenance.ConfigChangeError, match="unreadable"):
        loop.train_and_evaluate(_straight_config(50), str(workdir))
    assert (workdir / "config.json").read_bytes() == garbage


def test_diverging_updates_never_reach_a_checkpoint(tmp_path):
    """Before: with checkpoint_every=1 checkpoint 1 held NaN parameters and was called
    "Last good checkpoint: step 1"; every rerun then failed."""
    config = _config(5, checkpoint_every=1, steps_per_dispatch=1, log_every=1)
    config.optim.name = "sgd"  # finite gradients, lr * gradient overflows to inf
    config.optim.learning_rate = 3e38
    with pytest.raises(loop.NonFiniteLossError, match="overflowed") as err:
        loop.train_and_evaluate(config, str(tmp_path))
    manager = checkpoint.make_manager(tmp_path / "checkpoints", 3)
    for step in manager.all_steps():
        restored = manager.restore(step)
        leaves = [np.asarray(x) for x in jax_leaves(restored)]
        assert all(np.isfinite(x).all() for x in leaves if x.dtype.kind == "f")
    latest = manager.latest_step()
    assert (
        f"Last good checkpoint: step {latest}" in str(err.value)
        if latest is not None
        else "No checkpoint was written yet" in str(err.value)
    )


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_full_disk_stops_with_one_message_and_keeps_checkpoints(tmp_path, monkeypatch):
    """A save that fails for lack of space ends the run with OSError (the runner's
    one line); the checkpoints written before stay restorable."""
    config = _config(30, write_figures=False)
    real_save, calls = checkpoint.save, []

    def failing_save(manager, state, step):
        calls.append(step)
        if step >= 20:
            raise OSError(28, "No space left on device")
        real_save(manager, state, step)

    monkeypatch.setattr(checkpoint, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        loop.train_and_evaluate(config, str(tmp_path))
    monkeypatch.setattr(checkpoint, "save", real_save)
    manager = checkpoint.make_manager(tmp_path / "checkpoints", 3)
    assert manager.all_steps() == [10]
    final = loop.train_and_evaluate(config, str(tmp_path))  # space is back: resumes
    assert np.isfinite(final["test/elbo"])
