"""Random and truncated bytes fed to the readers end in the library's own errors."""

import gzip
import pathlib
import shutil

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vae_jax import checkpoint, data_files, data_formats

from helpers import tiny_state

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_read_idx_random_bytes(tmp_path_factory, raw, compress):
    path = tmp_path_factory.mktemp("idx") / "x.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    try:
        array = data_formats.read_idx(path)
    except data_files.DataCorruptError:
        return
    assert array.dtype == np.uint8  # only a well-formed file may parse


@FUZZ
@given(st.integers(min_value=0, max_value=16 + 6 * 5 - 1))
def test_read_idx_every_truncation(tmp_path_factory, cut):
    good = b"\x00\x00\x08\x03" + np.array([6, 1, 5], ">u4").tobytes() + bytes(range(30))
    path = tmp_path_factory.mktemp("idx") / "x.idx.gz"
    path.write_bytes(gzip.compress(good[:cut]))
    with pytest.raises(data_files.DataCorruptError):
        data_formats.read_idx(path)


def _state():
    return tiny_state((2, 2), hidden=(4,), latent_dim=2)


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    checkpoint.save(checkpoint.make_manager(root, 2), _state(), 1)
    return root


@FUZZ
@given(st.data())
def test_checkpoint_with_random_bytes_fails_cleanly(
    tmp_path_factory, saved_checkpoint, draw
):
    root = tmp_path_factory.mktemp("fuzzed")
    shutil.copytree(saved_checkpoint, root, dirs_exist_ok=True)
    files = sorted(p for p in pathlib.Path(root).rglob("*") if p.is_file())
    victim = draw.draw(st.sampled_from(files))
    mode = draw.draw(st.sampled_from(["random", "truncate", "empty"]))
    raw = victim.read_bytes()
    if mode == "random":
        victim.write_bytes(draw.draw(st.binary(min_size=1, max_size=200)))
    elif mode == "truncate":
        victim.write_bytes(raw[: draw.draw(st.integers(0, max(len(raw) - 1, 0)))])
    else:
        victim.write_bytes(b"")
    restored = checkpoint.restore_latest(checkpoint.make_manager(root, 2), _state())
    if restored is None:  # unreadable: moved aside whole, for inspection
        (aside,) = pathlib.Path(f"{root}_unreadable").iterdir()
        assert (aside / victim.relative_to(root / "1")).is_file()
        return
    # Some files (e.g. descriptive metadata) are not needed to restore: then the
    # restored state must be the saved one, never silently different.
    assert int(restored.step) == 0
    expected = _state()
    for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(expected.params)):
        np.testing.assert_array_equal(a, b)


def test_metadata_that_is_json_but_not_an_object_is_moved_aside(
    tmp_path_factory, saved_checkpoint
):
    """A `_CHECKPOINT_METADATA` reading `0` made orbax's manager raise before any
    step could be listed (found by the fuzz test above)."""
    root = tmp_path_factory.mktemp("foreign_metadata")
    shutil.copytree(saved_checkpoint, root, dirs_exist_ok=True)
    (root / "1" / "_CHECKPOINT_METADATA").write_text("0")
    with pytest.raises(checkpoint.CheckpointError, match="damaged _CHECKPOINT_META"):
        checkpoint.make_manager(root, 2, move_aside=False)
    assert (root / "1").is_dir()  # read-only use moves nothing
    manager = checkpoint.make_manager(root, 2)
    assert manager.all_steps() == []
    (aside,) = pathlib.Path(f"{root}_unreadable").iterdir()
    assert (aside / "_CHECKPOINT_METADATA").read_text() == "0"
    assert checkpoint.restore_latest(manager, _state()) is None
