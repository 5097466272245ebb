"""Checkpoints: round trip, corrupt-latest fallback (moved aside, training goes on
past it), checksums, only finite states saved, shape mismatch errors."""

import logging as std_logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import logging

from vae_jax import checkpoint, runtime

from helpers import tiny_state


def _state(latent_dim=3, seed=0):
    return tiny_state((2, 3), seed=seed, hidden=(8,), latent_dim=latent_dim)


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_round_trip_and_keep_last_n(tmp_path):
    manager = checkpoint.make_manager(tmp_path, keep=2)
    states = {s: _state(seed=s) for s in (1, 2, 3)}
    for s, st in states.items():
        checkpoint.save(manager, st.replace(step=jnp.asarray(s, jnp.int32)), s)
    assert manager.all_steps() == [2, 3]
    restored = checkpoint.restore_latest(manager, _state())
    assert int(restored.step) == 3
    _assert_same(restored.params, states[3].params)
    _assert_same(restored.opt_state, states[3].opt_state)


def test_no_checkpoint_gives_none(tmp_path):
    assert (
        checkpoint.restore_latest(checkpoint.make_manager(tmp_path, 2), _state())
        is None
    )


def _truncate_files(directory: pathlib.Path):
    for path in directory.rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _at(state, step):
    return state.replace(step=jnp.asarray(step, jnp.int32))


def test_corrupt_latest_is_moved_aside_and_training_goes_past_it(tmp_path):
    directory = tmp_path / "checkpoints"
    manager = checkpoint.make_manager(directory, keep=3)
    good, newer = _state(seed=1), _state(seed=2)
    checkpoint.save(manager, _at(good, 1), 1)
    checkpoint.save(manager, _at(newer, 2), 2)
    _truncate_files(directory / "2")
    manager = checkpoint.make_manager(directory, keep=3)
    restored = checkpoint.restore_latest(manager, _state())
    assert int(restored.step) == 1
    _assert_same(restored.params, good.params)
    assert manager.all_steps() == [1]
    (aside,) = (tmp_path / "checkpoints_unreadable").iterdir()
    assert aside.name.startswith("2-") and any(aside.rglob("*"))  # kept to inspect
    checkpoint.save(manager, _at(newer, 2), 2)  # the step is free again
    assert checkpoint.make_manager(directory, keep=3).all_steps() == [1, 2]


@pytest.mark.parametrize("damage", ["empty_metadata", "empty_step_dir", "deleted"])
def test_partial_checkpoint_falls_back(tmp_path, damage):
    manager = checkpoint.make_manager(tmp_path / "c", keep=3)
    checkpoint.save(manager, _at(_state(seed=1), 1), 1)
    checkpoint.save(manager, _at(_state(seed=2), 2), 2)
    step_dir = tmp_path / "c" / "2"
    if damage == "empty_metadata":
        (step_dir / "default" / "_METADATA").write_bytes(b"")
    elif damage == "deleted":
        max(
            step_dir.rglob("*"), key=lambda p: p.is_file() and p.stat().st_size
        ).unlink()
    else:
        for path in sorted(step_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    manager = checkpoint.make_manager(tmp_path / "c", keep=3)
    assert int(checkpoint.restore_latest(manager, _state()).step) == 1
    checkpoint.save(manager, _at(_state(), 2), 2)


def test_flipped_bytes_fail_the_checksums_and_fall_back(tmp_path, caplog):
    """64 bytes flipped inside the array data (which orbax itself reads back without
    complaint, as compressed chunks carry no checksum) are caught by the CRCs."""
    big = lambda seed: tiny_state((8, 8), seed=seed, hidden=(128,), latent_dim=8)
    manager = checkpoint.make_manager(tmp_path / "c", keep=3)
    checkpoint.save(manager, _at(big(1), 1), 1)
    checkpoint.save(manager, _at(big(2), 2), 2)
    victim = max(
        (tmp_path / "c" / "2" / "default" / "ocdbt.process_0" / "d").iterdir(),
        key=lambda p: p.stat().st_size,
    )
    raw = bytearray(victim.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(b ^ 0x5A for b in raw[middle : middle + 64])
    victim.write_bytes(bytes(raw))
    manager = checkpoint.make_manager(tmp_path / "c", keep=3)
    with caplog.at_level(std_logging.WARNING):
        restored = checkpoint.restore_latest(manager, big(0))
    assert int(restored.step) == 1
    _assert_same(restored.params, big(1).params)
    assert "fail their checksums" in caplog.text


def test_checksums_detect_a_changed_array():
    tree = {"a": np.arange(4.0, dtype=np.float32), "b": np.ones(3, np.int32)}
    before = checkpoint.checksums(tree)
    tree["a"][2] = np.nextafter(tree["a"][2], np.float32(9))  # one ulp
    after = checkpoint.checksums(tree)
    assert before["['a']"] != after["['a']"] and before["['b']"] == after["['b']"]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_state_is_never_saved(tmp_path, bad):
    manager = checkpoint.make_manager(tmp_path, keep=3)
    checkpoint.save(manager, _at(_state(), 1), 1)
    state = _at(_state(), 2)
    poisoned = jax.tree.map(lambda x: x.at[0].set(bad), state.opt_state[0].mu)
    state = state.replace(
        opt_state=(state.opt_state[0]._replace(mu=poisoned),)
        + tuple(state.opt_state[1:])
    )
    with pytest.raises(checkpoint.NonFiniteStateError, match="mu"):
        checkpoint.save(manager, state, 2)
    assert manager.all_steps() == [1]


def test_all_corrupt_are_moved_aside_or_raise_when_read_only(tmp_path):
    manager = checkpoint.make_manager(tmp_path / "c", keep=3)
    checkpoint.save(manager, _state(), 1)
    _truncate_files(tmp_path / "c" / "1")
    with pytest.raises(checkpoint.CheckpointError, match="No readable checkpoint"):
        checkpoint.restore_latest(
            checkpoint.make_manager(tmp_path / "c", keep=3), _state(), move_aside=False
        )
    manager = checkpoint.make_manager(tmp_path / "c", keep=3)
    assert checkpoint.restore_latest(manager, _state()) is None
    assert manager.all_steps() == []
    assert len(list((tmp_path / "c_unreadable").iterdir())) == 1


def test_shape_mismatch_names_the_field(tmp_path):
    manager = checkpoint.make_manager(tmp_path, keep=3)
    checkpoint.save(manager, _state(latent_dim=3), 1)
    with pytest.raises(checkpoint.CheckpointError, match="to_mean.*kernel"):
        checkpoint.restore_latest(manager, _state(latent_dim=5))


def test_saving_keeps_logs_free_of_orbax_info(tmp_path, caplog):
    runtime.configure()  # what every entry point does
    previous = logging.get_verbosity()
    logging.set_verbosity(logging.INFO)
    try:
        with caplog.at_level(std_logging.INFO):
            manager = checkpoint.make_manager(tmp_path, keep=2)
            checkpoint.save(manager, _state(), 1)
            checkpoint.restore_latest(manager, _state())
            logging.info("progress line")
    finally:
        logging.set_verbosity(previous)
    paths = [r.pathname for r in caplog.records]
    assert not [p for p in paths if "orbax" in pathlib.Path(p).parts], paths
    assert "progress line" in caplog.messages
