"""Wall-clock seconds a run has spent training, summed over its resumes.

``train_seconds.json`` in the run's workdir holds ``{"seconds": s}``; each process
that trains the run adds its own wall time (start-up, compiles, training and
evaluations) at every progress log and at its end, so a killed process loses only
the time since its last log.
"""

from __future__ import annotations

import json
import pathlib
import time

from absl import logging

from vae_jax import writer

FILE = "train_seconds.json"


def recorded_seconds(workdir: str | pathlib.Path) -> float | None:
    """The seconds recorded in ``workdir`` (None: no readable record)."""
    path = pathlib.Path(workdir) / FILE
    try:
        return float(json.loads(path.read_text())["seconds"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as err:
        logging.warning("Ignoring unreadable %s (%s); counting from 0.", path, err)
        return None


class TrainClock:
    """Adds this process's wall time since ``start`` (a ``time.perf_counter()``
    value) to what earlier processes recorded in ``workdir``."""

    def __init__(self, workdir: str | pathlib.Path, start: float):
        self.path = pathlib.Path(workdir) / FILE
        self.before = recorded_seconds(workdir) or 0.0
        self.start = start

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start

    def write(self) -> float:
        """Records and returns the total so far; a failed write (a full disk) is
        logged and never stops the run."""
        total = self.seconds()
        try:
            writer.write_text_atomic(self.path, json.dumps({"seconds": total}))
        except OSError as err:
            logging.warning(
                "Could not record the training time in %s: %s", self.path, err
            )
        return total
