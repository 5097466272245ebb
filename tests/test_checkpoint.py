"""Checkpoints: round trip, corrupt-latest fallback, shape mismatch errors."""

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


def test_corrupt_latest_falls_back_to_previous(tmp_path, caplog):
    manager = checkpoint.make_manager(tmp_path, keep=3)
    good, newer = _state(seed=1), _state(seed=2)
    checkpoint.save(manager, good.replace(step=jnp.asarray(1, jnp.int32)), 1)
    checkpoint.save(manager, newer.replace(step=jnp.asarray(2, jnp.int32)), 2)
    _truncate_files(tmp_path / "2")
    manager = checkpoint.make_manager(tmp_path, keep=3)
    restored = checkpoint.restore_latest(manager, _state())
    assert int(restored.step) == 1
    _assert_same(restored.params, good.params)


def test_all_corrupt_raises(tmp_path):
    manager = checkpoint.make_manager(tmp_path, keep=3)
    checkpoint.save(manager, _state(), 1)
    _truncate_files(tmp_path / "1")
    with pytest.raises(checkpoint.CheckpointError, match="No readable checkpoint"):
        checkpoint.restore_latest(checkpoint.make_manager(tmp_path, keep=3), _state())


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
