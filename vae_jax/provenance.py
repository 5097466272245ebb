"""What produced a run's checkpoints: a resumed run must have the config it started
with, or a recorded change of it.

``config.json`` holds the config of the run in a workdir. On resume the new config is
compared with it field by field (dotted names):

* ``FIXED`` fields (seed, data, model) can never change mid-run: the data split,
  shapes and PRNG streams depend on them;
* ``FREE`` fields (length of the run, logging, checkpointing, evaluation batch,
  where the data files are) may;
* every other field (objective, optimizer, batch size, ...) changes what the
  remaining steps compute: allowed only when asked for, and each change (free ones
  too) is appended to ``config_history.jsonl`` with the step it took effect.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import ml_collections

from vae_jax import writer

FIXED = ("seed", "data.", "model.")
FREE = (
    "train.num_epochs",
    "train.num_steps",
    "train.steps_per_dispatch",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.eval_batch_size",
    "train.data_parallel",
    "train.on_nonfinite",
    "train.max_skipped_fraction",
    "train.write_figures",
    "train.eval_test_during_training",
    "data.data_dir",
    "data.download",
)
HISTORY = "config_history.jsonl"


class ConfigChangeError(ValueError):
    """A resumed run's config differs from the one its checkpoints were written with."""


def flat_fields(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"model.latent_dim": 8, ...}`` of a nested dict (a config as JSON)."""
    fields = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            fields.update(flat_fields(value, f"{prefix}{key}."))
        else:
            fields[f"{prefix}{key}"] = value
    return fields


def _as_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def changed_fields(stored: dict, config: ml_collections.ConfigDict) -> dict:
    """``{field: (stored value, new value)}`` where they differ; fields the stored
    config lacks (added to the library since) are not changes."""
    old, new = flat_fields(stored), flat_fields(_as_json(config))
    return {k: (old[k], new.get(k)) for k in old if old[k] != new.get(k)}


def _is_fixed(field: str) -> bool:
    return any(field == f or (f.endswith(".") and field.startswith(f)) for f in FIXED)


def _describe(changes: dict) -> str:
    return "\n  ".join(
        f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changes.items())
    )


def check_resume(
    workdir: str | pathlib.Path,
    config: ml_collections.ConfigDict,
    allow_change: bool = False,
) -> dict:
    """Checks ``config`` against the ``config.json`` of the run in ``workdir`` (called
    when it has checkpoints, before they are read); returns the changed fields
    ``{field: (stored, new)}`` for ``record``. Raises ``ConfigChangeError`` listing
    the fields that may not change (see the module docstring), or if config.json is
    unreadable.
    """
    workdir = pathlib.Path(workdir)
    path = workdir / "config.json"
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        stored = err
    if not isinstance(stored, dict):
        raise ConfigChangeError(
            f"{path} is unreadable ({stored or 'not a JSON object'}), so nothing "
            f"records the config that wrote the checkpoints in {workdir}. Restore "
            "it, or choose another --workdir."
        )
    changes = changed_fields(stored, config)
    fixed = {k: v for k, v in changes.items() if k not in FREE and _is_fixed(k)}
    if fixed:
        raise ConfigChangeError(
            f"The run in {workdir} was started with other values of fields that "
            "cannot change mid-run:\n  "
            + _describe(fixed)
            + "\nUse the stored values (config.json) or another --workdir."
        )
    gated = {k: v for k, v in changes.items() if k not in FREE}
    if gated and not allow_change:
        raise ConfigChangeError(
            f"The run in {workdir} was started with other values of:\n  "
            + _describe(gated)
            + "\nUse the stored values (config.json), or pass --allow_config_change "
            f"to continue with these (recorded in {HISTORY})."
        )
    return changes


def record(
    workdir: str | pathlib.Path,
    config: ml_collections.ConfigDict,
    step: int,
    changes: dict,
) -> None:
    """Appends ``changes`` (from ``check_resume``) taking effect at ``step`` to
    ``config_history.jsonl`` and writes ``config`` as ``config.json``."""
    workdir = pathlib.Path(workdir)
    if changes and step > 0:
        entry = {"step": int(step), "changes": {k: list(v) for k, v in changes.items()}}
        with open(workdir / HISTORY, "a") as f:
            f.write(json.dumps(entry) + "\n")
    writer.write_config(workdir, config)
