"""Process-wide settings that entry points choose: log verbosity, orbax's per-save
INFO records, the matplotlib backend and JAX's persistent compilation cache.

Importing ``vae_jax`` changes no global state; the runner, the sweep runner, the
scripts and the tests call ``configure()`` once at start-up.
"""

from __future__ import annotations

import logging as std_logging
import os
import pathlib

from absl import logging

CACHE_ENV = "VAE_JAX_COMPILATION_CACHE"  # a directory, or "off"


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
    # orbax's writer tasks that failed (e.g. a full disk, reported by the save as one
    # OSError) are logged again at exit as "Task exception was never retrieved".
    std_logging.getLogger("asyncio").setLevel(std_logging.CRITICAL)


def compilation_cache_dir() -> str | None:
    """Where compiled XLA programs are kept across processes: ``$VAE_JAX_COMPILATION_CACHE``
    ("off" disables), else ``$XDG_CACHE_HOME/vae_jax/xla`` (``~/.cache/vae_jax/xla``)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "none") else chosen
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return str(pathlib.Path(base) / "vae_jax" / "xla")


def enable_compilation_cache(directory: str) -> None:
    """JAX's persistent compilation cache in ``directory``: a rerun, a resumed run and
    every process of a sweep load the programs compiled before instead of compiling."""
    import jax  # lazy: configure() without a cache needs no JAX

    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def configure(verbosity: int = logging.INFO, plot_backend: str | None = "Agg") -> None:
    """absl verbosity, orbax's INFO records dropped, a matplotlib backend (Agg writes
    PNG files without a display; None keeps the current one) and the persistent
    compilation cache of ``compilation_cache_dir()``."""
    logging.set_verbosity(verbosity)
    quiet_orbax()
    cache = compilation_cache_dir()
    if cache is not None:
        enable_compilation_cache(cache)
    if plot_backend is not None:
        import matplotlib  # lazy: entry points that plot nothing skip the import

        matplotlib.use(plot_backend)
