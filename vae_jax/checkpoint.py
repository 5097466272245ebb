"""Orbax checkpoints of a training state: atomic, verified saves, last N kept, safe
restore.

States are saved as ``flax.serialization.to_state_dict`` trees (plain dicts of
arrays) and restored onto the abstract shape of a freshly built state, so nothing is
ever unpickled and a mismatched config is caught before any array is read. Only
finite states are saved, each with a CRC-32 per array (``checksums.json`` in its
step directory) that a restore verifies. A checkpoint that cannot be read or fails
its checksums is moved aside to ``<directory>_unreadable/`` (kept for inspection)
and the previous one is used.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging as std_logging
import pathlib
import shutil
import time
import zlib

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

CHECKSUMS = "checksums.json"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used with this configuration."""


class NonFiniteStateError(FloatingPointError):
    """A state holding NaN or inf was about to be checkpointed (it was not)."""


class CorruptCheckpointError(OSError):
    """A checkpoint's arrays do not match the checksums written with it."""


def make_manager(
    directory: str | pathlib.Path, keep: int, *, move_aside: bool = True
) -> ocp.CheckpointManager:
    """A manager writing ``<directory>/<step>/`` and keeping the last ``keep`` steps.

    A step whose ``_CHECKPOINT_METADATA`` holds JSON that is not an object stops
    orbax from even listing the steps: with ``move_aside`` (training) it is moved to
    ``<directory>_unreadable`` with a warning, else ``CheckpointError`` names it.
    """
    directory = pathlib.Path(directory).absolute()
    for step in _steps_with_foreign_metadata(directory):
        if not move_aside:
            raise CheckpointError(
                f"Checkpoint {step} in {directory} has a damaged _CHECKPOINT_METADATA "
                "(JSON, but not an object)."
            )
        if jax.process_index() == 0:
            where = _move_step_aside(directory, step)
            logging.warning(
                "Checkpoint %d has a damaged _CHECKPOINT_METADATA; moved to %s.",
                step,
                where,
            )
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(
        directory,
        options=options,
        item_handlers=ocp.StandardCheckpointHandler(),
    )


def _canonical(leaf) -> np.ndarray:
    """The leaf as the same values in a fixed dtype where a save/restore round trip may
    change it (a Python int step saved as int64 comes back int32): integers as int64,
    scalars as float64; float arrays keep theirs."""
    array = np.asarray(leaf)
    if array.dtype.kind in "biu":
        return array.astype(np.int64)
    return array.astype(np.float64) if array.ndim == 0 else array


def checksums(tree) -> dict[str, str]:
    """``{leaf path: "shape crc32"}`` of a state dict's arrays (host copies)."""
    sums = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
        array = np.ascontiguousarray(_canonical(leaf))
        crc = zlib.crc32(array.tobytes())
        sums[jax.tree_util.keystr(path)] = f"{array.shape} {crc:08x}"
    return sums


def nonfinite_leaves(tree) -> list[str]:
    """Paths of the floating-point leaves of ``tree`` holding NaN or inf."""
    return [
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
        if np.issubdtype(np.asarray(leaf).dtype, np.inexact)
        and not np.isfinite(leaf).all()
    ]


def _check_space(manager: ocp.CheckpointManager, tree, step: int) -> None:
    """Raises ``OSError`` (ENOSPC) before writing if the disk cannot hold the state."""
    need = sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)) + (1 << 20)
    free = shutil.disk_usage(manager.directory).free
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"No space left for checkpoint {step} in {manager.directory}: "
            f"{free / 2**20:.1f} MiB free, about {need / 2**20:.1f} MiB needed; the "
            "checkpoints before it are intact. Free some space and rerun to resume",
        )


@contextlib.contextmanager
def _orbax_errors_held():
    """Holds back orbax's ERROR records (tracebacks of its writer threads) while a
    save runs; ``save`` raises one ``OSError`` instead. Re-logged if it succeeds."""
    held: list[std_logging.LogRecord] = []

    def hold(record: std_logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/").split("/")
        if record.levelno >= std_logging.ERROR and "orbax" in path:
            held.append(record)
            return False
        return True

    absl_logger = logging.get_absl_logger()
    absl_logger.addFilter(hold)
    try:
        yield
    finally:
        absl_logger.removeFilter(hold)
    for record in held:  # reached only when the save succeeded
        absl_logger.handle(record)


def save(manager: ocp.CheckpointManager, state, step: int) -> None:
    """Writes ``state`` at ``step`` with its checksums and waits until it is on disk.

    Orbax writes into a temporary directory and renames it when complete, so a
    crash mid-save never replaces the previous checkpoint. A checkpoint already at
    ``step`` is replaced: a run killed after writing its best state past its last
    regular checkpoint recomputes that state on resuming (the regular checkpoint it
    resumes from can always write it again). Raises ``NonFiniteStateError`` (writing
    nothing) if any array holds NaN or inf.
    """
    tree = flax.serialization.to_state_dict(state)
    bad = nonfinite_leaves(tree)
    if bad:
        raise NonFiniteStateError(
            f"The state at step {step} holds NaN or inf in {', '.join(bad[:3])}"
            f"{' ...' if len(bad) > 3 else ''}; it was not checkpointed."
        )
    sums = checksums(tree)
    _check_space(manager, tree, step)
    try:
        with _orbax_errors_held():
            if int(step) in manager.all_steps():
                manager.delete(int(step))
            manager.save(int(step), args=ocp.args.StandardSave(tree), force=True)
            manager.wait_until_finished()
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        raise OSError(
            f"Checkpoint {step} could not be written in {manager.directory} ({first}); "
            "the checkpoints before it are intact."
        ) from err
    if jax.process_index() == 0:
        step_dir = pathlib.Path(manager.directory) / str(int(step))
        tmp = step_dir / f".{CHECKSUMS}.tmp"
        tmp.write_text(json.dumps(sums, indent=0))
        tmp.replace(step_dir / CHECKSUMS)


def _shape_mismatches(template_tree, metadata_tree) -> list[str]:
    """Names of leaves whose stored shape differs from the template's, or that are missing."""
    stored = {
        jax.tree_util.keystr(path): tuple(getattr(leaf, "shape", ()))
        for path, leaf in jax.tree_util.tree_flatten_with_path(metadata_tree)[0]
    }
    problems = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(template_tree)[0]:
        name = jax.tree_util.keystr(path)
        if name not in stored:
            problems.append(f"{name}: missing from the checkpoint")
        elif stored[name] != tuple(np.shape(leaf)):
            problems.append(
                f"{name}: checkpoint {stored[name]} vs config {np.shape(leaf)}"
            )
    return problems


def _verify(manager: ocp.CheckpointManager, step: int, restored) -> None:
    """Raises ``CorruptCheckpointError`` unless ``restored`` matches the checksums
    saved with ``step`` (a checkpoint written without them is used unverified)."""
    path = pathlib.Path(manager.directory) / str(step) / CHECKSUMS
    if not path.is_file():
        logging.warning(
            "Checkpoint %d has no %s; restored unverified.", step, CHECKSUMS
        )
        return
    try:
        expected = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptCheckpointError(f"{path} is unreadable ({err})") from err
    actual = checksums(restored)
    wrong = sorted(
        k for k in actual.keys() | expected.keys() if actual.get(k) != expected.get(k)
    )
    if wrong:
        raise CorruptCheckpointError(
            f"checkpoint {step}: {len(wrong)} arrays fail their checksums "
            f"({', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''})"
        )


def _restore_step(manager: ocp.CheckpointManager, template, step: int):
    tree = flax.serialization.to_state_dict(template)
    metadata = manager.item_metadata(step)
    metadata = getattr(metadata, "tree", metadata)
    if not jax.tree_util.tree_leaves(metadata):
        raise OSError(f"checkpoint {step} has no readable metadata")
    mismatches = _shape_mismatches(tree, metadata)
    if mismatches:
        raise CheckpointError(
            f"Checkpoint {step} in {manager.directory} does not match the config:\n  "
            + "\n  ".join(mismatches)
            + "\nUse a new --workdir, or the config the checkpoint was written with."
        )
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    _verify(manager, step, restored)
    return flax.serialization.from_state_dict(template, restored)


def restore_step(manager: ocp.CheckpointManager, template, step: int):
    """Restores the checkpoint at ``step`` onto ``template``'s structure.

    Raises FileNotFoundError (naming the steps there are) if there is none at
    ``step``, ``CheckpointError`` on a shape mismatch with the config and
    ``CorruptCheckpointError`` if its arrays fail their checksums.
    """
    steps = sorted(manager.all_steps())
    if int(step) not in steps:
        raise FileNotFoundError(
            f"No checkpoint at step {step} in {manager.directory}; steps: {steps}."
        )
    return _restore_step(manager, template, int(step))


def unreadable_dir(manager: ocp.CheckpointManager) -> pathlib.Path:
    """Where ``restore_latest`` moves checkpoints it cannot use: ``<dir>_unreadable``."""
    directory = pathlib.Path(manager.directory)
    return directory.with_name(directory.name + "_unreadable")


def _move_aside(manager: ocp.CheckpointManager, step: int) -> pathlib.Path:
    """Moves step ``step``'s directory into ``unreadable_dir`` (never overwriting)."""
    return _move_step_aside(pathlib.Path(manager.directory), step)


def _move_step_aside(directory: pathlib.Path, step: int) -> pathlib.Path:
    aside = directory.with_name(directory.name + "_unreadable")
    target = aside / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 0
    while target.exists():
        suffix += 1
        target = target.with_name(f"{target.name.split('.')[0]}.{suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    (directory / str(step)).rename(target)
    return target


def _steps_with_foreign_metadata(directory: pathlib.Path) -> list[int]:
    """Steps whose ``_CHECKPOINT_METADATA`` parses as JSON but not as an object
    (orbax logs and skips unparsable ones itself, but raises on these)."""
    steps = []
    for path in sorted(directory.glob("*/_CHECKPOINT_METADATA")):
        if not path.parent.name.isdigit():
            continue
        try:
            value = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError, OSError):
            continue
        if not isinstance(value, dict):
            steps.append(int(path.parent.name))
    return steps


def restore_latest(manager: ocp.CheckpointManager, template, *, move_aside=True):
    """Restores the newest readable checkpoint onto ``template``'s structure.

    Returns the restored state, or None if there is none. A corrupt, truncated or
    checksum-failing checkpoint is skipped with a warning in favour of the previous
    one; with ``move_aside`` (training) it is moved to ``unreadable_dir`` first, so
    training continues past it, and None is returned if no checkpoint is readable;
    without (read-only use) ``CheckpointError`` is raised then. A shape mismatch
    with the config raises ``CheckpointError`` naming the fields.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    restored, moved = None, False
    for step in steps:
        try:
            restored = _restore_step(manager, template, step)
            break
        except CheckpointError:
            raise
        except Exception as err:  # noqa: BLE001 (any reader failure: fall back)
            if move_aside and jax.process_index() == 0:
                where = _move_aside(manager, step)
                moved = True
                logging.warning(
                    "Checkpoint %d is unreadable (%s); moved to %s, trying the "
                    "previous one.",
                    step,
                    err,
                    where,
                )
            else:
                logging.warning(
                    "Checkpoint %d is unreadable (%s); trying the previous one.",
                    step,
                    err,
                )
    if moved:
        manager.reload()
    if restored is None and steps and not move_aside:
        raise CheckpointError(
            f"No readable checkpoint among steps {steps} in {manager.directory}."
        )
    if restored is None and steps:
        logging.warning(
            "No readable checkpoint in %s (all moved to %s); starting afresh.",
            manager.directory,
            unreadable_dir(manager),
        )
    return restored
