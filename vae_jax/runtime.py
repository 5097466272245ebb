"""Process-wide settings that entry points choose: log verbosity, orbax's per-save
INFO records, and the matplotlib backend.

Importing ``vae_jax`` changes no global state; the runner, the sweep runner, the
scripts and the tests call ``configure()`` once at start-up.
"""

from __future__ import annotations

import logging as std_logging

from absl import logging


class DropOrbaxInfo(std_logging.Filter):
    """Drops orbax's per-save INFO records (~40 lines a checkpoint); warnings pass."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        from_orbax = "orbax" in record.pathname.replace("\\", "/").split("/")
        return record.levelno > std_logging.INFO or not from_orbax


def quiet_orbax(logger: std_logging.Logger | std_logging.Handler | None = None) -> None:
    """Installs ``DropOrbaxInfo`` once on ``logger`` (default: absl's logger, which
    orbax logs through)."""
    target = logger if logger is not None else logging.get_absl_logger()
    if not any(isinstance(f, DropOrbaxInfo) for f in target.filters):
        target.addFilter(DropOrbaxInfo())
    std_logging.getLogger("orbax").setLevel(std_logging.WARNING)


def configure(verbosity: int = logging.INFO, plot_backend: str | None = "Agg") -> None:
    """absl verbosity, orbax's INFO records dropped, and a matplotlib backend (Agg
    writes PNG files without a display; None keeps the current one)."""
    logging.set_verbosity(verbosity)
    quiet_orbax()
    if plot_backend is not None:
        import matplotlib  # lazy: entry points that plot nothing skip the import

        matplotlib.use(plot_backend)
