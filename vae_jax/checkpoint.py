"""Orbax checkpoints of a training state: atomic saves, last N kept, safe restore.

States are saved as ``flax.serialization.to_state_dict`` trees (plain dicts of
arrays) and restored onto the abstract shape of a freshly built state, so nothing is
ever unpickled and a mismatched config is caught before any array is read.
"""

from __future__ import annotations

import pathlib

import flax.serialization
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used with this configuration."""


def make_manager(directory: str | pathlib.Path, keep: int) -> ocp.CheckpointManager:
    """A manager writing ``<directory>/<step>/`` and keeping the last ``keep`` steps."""
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(
        pathlib.Path(directory).absolute(),
        options=options,
        item_handlers=ocp.StandardCheckpointHandler(),
    )


def save(manager: ocp.CheckpointManager, state, step: int) -> None:
    """Writes ``state`` at ``step`` and waits until it is committed on disk.

    Orbax writes into a temporary directory and renames it when complete, so a
    crash mid-save never replaces the previous checkpoint.
    """
    tree = flax.serialization.to_state_dict(state)
    manager.save(int(step), args=ocp.args.StandardSave(tree), force=True)
    manager.wait_until_finished()


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
    return flax.serialization.from_state_dict(template, restored)


def restore_step(manager: ocp.CheckpointManager, template, step: int):
    """Restores the checkpoint at ``step`` onto ``template``'s structure.

    Raises FileNotFoundError (naming the steps there are) if there is none at
    ``step``, and ``CheckpointError`` on a shape mismatch with the config.
    """
    steps = sorted(manager.all_steps())
    if int(step) not in steps:
        raise FileNotFoundError(
            f"No checkpoint at step {step} in {manager.directory}; steps: {steps}."
        )
    return _restore_step(manager, template, int(step))


def restore_latest(manager: ocp.CheckpointManager, template):
    """Restores the newest readable checkpoint onto ``template``'s structure.

    Returns the restored state, or None if there is no checkpoint. A corrupt or
    truncated checkpoint is skipped with a warning in favour of the previous one; a
    shape mismatch with the config raises ``CheckpointError`` naming the fields.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    for step in steps:
        try:
            return _restore_step(manager, template, step)
        except CheckpointError:
            raise
        except Exception as err:  # noqa: BLE001 (any reader failure: fall back)
            logging.warning(
                "Checkpoint %d is unreadable (%s); trying the previous one.", step, err
            )
    if steps:
        raise CheckpointError(
            f"No readable checkpoint among steps {steps} in {manager.directory}."
        )
    return None
