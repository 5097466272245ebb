"""Early stopping on the validation loss, with the best parameters kept.

Training stops once the objective at beta = 1 on the validation split (``valid/loss``,
lower is better) has not improved for ``train.early_stopping_patience`` evaluations
(one every ``train.eval_every`` steps), counting only evaluations after
``train.early_stopping_start`` (e.g. the end of a KL warm-up); the final evaluation,
``runs.load_run`` and everything built on it use the parameters of the best
evaluation (Prechelt 1998; the VampPrior authors' look-ahead of 50 epochs).

On disk, beside ``checkpoints/``: ``checkpoints_best/<step>/`` holds the best state
so far and ``early_stopping.json`` marks a run that stopped (its step, the best step
and value). The tracker is replayed from ``metrics.jsonl`` on resume, so a resumed
run stops where an uninterrupted one does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Iterable, Mapping

from vae_jax import parallel, writer

METRIC = "valid/loss"  # the objective at beta = 1 on the validation split
BEST_DIR = "checkpoints_best"
MARKER = "early_stopping.json"


@dataclasses.dataclass
class Tracker:
    """Best ``METRIC`` so far and evaluations since it improved.

    patience: evaluations without improvement that stop training (> 0);
    start_step: evaluations at steps <= it never count towards patience (they can
    still be the best).
    """

    patience: int
    start_step: int = 0
    best: float = math.inf
    best_step: int | None = None
    waited: int = 0

    def update(self, step: int, value: float) -> bool:
        """Records the evaluation at ``step``; True when it is the best so far (a NaN
        never is)."""
        if value < self.best:
            self.best, self.best_step, self.waited = float(value), int(step), 0
            return True
        if step > self.start_step:
            self.waited += 1
        return False

    @property
    def stopped(self) -> bool:
        return self.waited >= self.patience

    @classmethod
    def replay(
        cls, records: Iterable[Mapping], patience: int, start_step: int, up_to: int
    ) -> Tracker:
        """The tracker after the ``METRIC`` records of ``metrics.jsonl`` at steps <=
        ``up_to`` (those a resumed run keeps)."""
        tracker = cls(patience, start_step)
        for record in records:
            if METRIC in record and record["step"] <= up_to:
                tracker.update(record["step"], record[METRIC])
        return tracker

    def summary(self) -> str:
        return (
            f"no improvement of {METRIC} for {self.waited} evaluations; the best, "
            f"{self.best:.4f}, was at step {self.best_step}"
        )


def write_marker(workdir: pathlib.Path, step: int, tracker: Tracker) -> None:
    """Marks the run in ``workdir`` as stopped early at ``step``."""
    record = {"stopped_at": int(step), "best_step": tracker.best_step}
    record.update(best=tracker.best, metric=METRIC, patience=tracker.patience)
    (pathlib.Path(workdir) / MARKER).write_text(json.dumps(record, indent=1))


def stopped_at(workdir: pathlib.Path) -> int | None:
    """The step the run in ``workdir`` stopped early at, or None."""
    path = pathlib.Path(workdir) / MARKER
    return json.loads(path.read_text())["stopped_at"] if path.is_file() else None


def clear_marker(workdir: pathlib.Path) -> None:
    (pathlib.Path(workdir) / MARKER).unlink(missing_ok=True)


def best_dir(workdir: pathlib.Path) -> pathlib.Path | None:
    """``checkpoints_best/`` of a run that stopped early, else None."""
    path = pathlib.Path(workdir) / BEST_DIR
    return path if stopped_at(workdir) is not None and path.is_dir() else None


def tracker_for_run(config, workdir: pathlib.Path, step: int) -> Tracker | None:
    """The run's early-stopping tracker replayed to ``step`` from its metrics (None
    when ``train.early_stopping_patience`` is 0); an early-stop mark the replay does
    not confirm (a changed patience) is cleared."""
    cfg = config.train
    tracker = None
    if cfg.early_stopping_patience > 0:
        records = writer.read_metrics(workdir / "metrics.jsonl")
        tracker = Tracker.replay(
            records, cfg.early_stopping_patience, cfg.early_stopping_start, step
        )
    if (tracker is None or not tracker.stopped) and parallel.is_primary():
        clear_marker(workdir)
    return tracker
