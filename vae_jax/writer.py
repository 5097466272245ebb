"""Run records: ``metrics.jsonl`` (one JSON object per write) and ``config.json``;
``markdown_table`` for the reports that tabulate them."""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import logging


def write_text_atomic(path: str | pathlib.Path, text: str) -> None:
    """Writes via a temporary file + rename: a reader (or a concurrent writer) never
    sees a torn file, and a crash leaves the previous version."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class MetricWriter:
    """Appends ``{"step": s, **scalars}`` lines to ``<workdir>/metrics.jsonl`` and, with
    ``tensorboard=True``, the same scalars (and images) to ``<workdir>/tensorboard/``.

    ``write_scalars(step, scalars)`` has clu's signature. Records at steps after
    ``resume_step`` left by an interrupted run are dropped on open (TensorBoard's
    ``purge_step`` likewise), so a resumed run reads as if it had never stopped.
    """

    def __init__(
        self,
        workdir: str | pathlib.Path,
        resume_step: int = 0,
        tensorboard: bool = True,
    ):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self.summary = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            logdir = str(pathlib.Path(workdir) / "tensorboard")
            self.summary = SummaryWriter(logdir, purge_step=resume_step + 1)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        record = {"step": int(step)}
        record.update({k: _to_json_float(v) for k, v in scalars.items()})
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as err:  # a torn last line is skipped by read_metrics
            raise OSError(
                err.errno,
                f"{self.path} could not be written ({err.strerror}); the checkpoints "
                "are intact: rerun to resume",
            ) from err
        if self.summary is not None:
            for name, value in record.items():
                if name != "step" and value is not None:
                    self.summary.add_scalar(name, value, int(step))

    def write_images(self, step: int, images: Mapping[str, Any]) -> None:
        """TensorBoard image summaries; ``images[name]: [N, H, W]`` in [0, 1]."""
        if self.summary is None:
            return
        for name, batch in images.items():
            self.summary.add_images(
                name, np.asarray(batch)[..., None], int(step), dataformats="NHWC"
            )

    def close(self) -> None:
        """Flushes TensorBoard's events; a failure (e.g. a full disk) is logged, not
        raised, so it never hides the error that ended a run."""
        if self.summary is not None:
            try:
                self.summary.close()
            except OSError as err:
                logging.warning("TensorBoard events not flushed: %s", err)


def _to_json_float(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(path: str | pathlib.Path) -> list[dict]:
    """All records of a ``metrics.jsonl`` (empty if absent); a torn last line is skipped."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class NullMetricWriter:
    """``MetricWriter``'s interface, writing nothing (the non-primary processes of a
    multi-host run)."""

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        del step, scalars

    def write_images(self, step: int, images: Mapping[str, Any]) -> None:
        del step, images

    def close(self) -> None:
        pass


def write_config(
    workdir: str | pathlib.Path, config: ml_collections.ConfigDict
) -> None:
    """Saves the run's config as ``config.json`` beside its checkpoints."""
    (pathlib.Path(workdir) / "config.json").write_text(
        config.to_json_best_effort(indent=2)
    )


def read_config(
    workdir: str | pathlib.Path, defaults: ml_collections.ConfigDict | None = None
) -> ml_collections.ConfigDict:
    """Loads a run's ``config.json`` as a ConfigDict; JSON arrays come back as tuples,
    as the configs write sequences (``model.hidden``). With ``defaults``, the stored
    values go over a copy of them: fields added to the library after the run was
    written take their default values."""
    text = (pathlib.Path(workdir) / "config.json").read_text()
    stored = _lists_to_tuples(json.loads(text))
    if defaults is None:
        return ml_collections.ConfigDict(stored)
    return ml_collections.ConfigDict(_merge(defaults.to_dict(), stored))


def _merge(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s values, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            value = _merge(base[key], value)
        merged[key] = value
    return merged


def _lists_to_tuples(tree):
    if isinstance(tree, dict):
        return {k: _lists_to_tuples(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return tuple(_lists_to_tuples(v) for v in tree)
    return tree


def markdown_row(cells: Sequence[Any], float_format: str | None = None) -> str:
    """``| c1 | c2 | ... |``: ``str(cell)``, or ``format(cell, float_format)`` for floats
    when given (e.g. ".4g"). Cells are not escaped: a "|" in one splits it."""
    text = [
        format(c, float_format) if float_format and isinstance(c, float) else str(c)
        for c in cells
    ]
    return "| " + " | ".join(text) + " |"


def markdown_table(
    header: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    float_format: str | None = None,
) -> str:
    """A Markdown (GitHub) table: the header row, ``|---|---|``, then a line per row
    (``markdown_row``), with no trailing newline. Each row has len(header) cells."""
    lines = [markdown_row(header), "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"Row {row!r} has {len(row)} cells; the header has {len(header)}."
            )
        lines.append(markdown_row(row, float_format))
    return "\n".join(lines)
