"""Run records: ``metrics.jsonl`` (one JSON object per write) and ``config.json``."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping

import ml_collections


class MetricWriter:
    """Appends ``{"step": s, **scalars}`` lines to ``<workdir>/metrics.jsonl``.

    ``write_scalars(step, scalars)`` has clu's signature. Lines at steps after
    ``resume_step`` left by an interrupted run are dropped on open, so a resumed
    run's file reads as if it had never stopped.
    """

    def __init__(self, workdir: str | pathlib.Path, resume_step: int = 0):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
        with open(self.path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        record = {"step": int(step)}
        record.update({k: _to_json_float(v) for k, v in scalars.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


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


def write_config(workdir: str | pathlib.Path, config: ml_collections.ConfigDict) -> None:
    """Saves the run's config as ``config.json`` beside its checkpoints."""
    (pathlib.Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2))


def read_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
    """Loads a run's ``config.json`` as a ConfigDict."""
    text = (pathlib.Path(workdir) / "config.json").read_text()
    return ml_collections.ConfigDict(json.loads(text))
