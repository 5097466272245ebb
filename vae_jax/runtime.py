"""Process-wide settings that entry points choose: log verbosity, orbax's per-save
INFO records, the matplotlib backend and JAX's persistent compilation cache; and the
start-up warning for a GPU that JAX does not use (``backend_warnings``).

Importing ``vae_jax`` changes no global state; the runner, the sweep runner, the
scripts and the tests call ``configure()`` once at start-up.
"""

from __future__ import annotations

import logging as std_logging
import os
import pathlib
import shutil
import sys
import threading
from collections.abc import Callable, Mapping

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


def _is_closed_event_loop(exc_type, exc) -> bool:
    return (
        exc_type is not None
        and issubclass(exc_type, RuntimeError)
        and str(exc) == "Event loop is closed"
    )


def _drop_closed_event_loop_reports(previous, unpack=None):
    """A ``sys.excepthook`` (or, with ``unpack``, a ``threading.excepthook`` /
    ``sys.unraisablehook``) that drops "Event loop is closed" reports: tensorstore's
    threads print one per pending read or write when orbax gives up on a checkpoint
    (which ``checkpoint`` then reports in one line)."""

    def hook(*args):
        exc_type, exc = unpack(*args) if unpack else args[:2]
        if not _is_closed_event_loop(exc_type, exc):
            previous(*args)

    hook.drops_closed_event_loop_reports = True
    return hook


def quiet_closed_event_loops() -> None:
    """Installs ``_drop_closed_event_loop_reports`` once as ``sys.excepthook``,
    ``threading.excepthook`` and ``sys.unraisablehook``."""
    unpack = lambda report: (report.exc_type, report.exc_value)
    for owner, name, how in (
        (sys, "excepthook", None),
        (threading, "excepthook", unpack),
        (sys, "unraisablehook", unpack),
    ):
        current = getattr(owner, name)
        if not getattr(current, "drops_closed_event_loop_reports", False):
            setattr(owner, name, _drop_closed_event_loop_reports(current, how))


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
    quiet_closed_event_loops()
    cache = compilation_cache_dir()
    if cache is not None:
        enable_compilation_cache(cache)
    if plot_backend is not None:
        import matplotlib  # lazy: entry points that plot nothing skip the import

        matplotlib.use(plot_backend)


def visible_gpu_signs(
    environ: Mapping[str, str] | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    which: Callable[[str], str | None] = shutil.which,
) -> list[str]:
    """What says an NVIDIA GPU is there: ``nvidia-smi`` on the PATH,
    ``/proc/driver/nvidia``, ``CUDA_VISIBLE_DEVICES`` naming devices (not "" or -1)."""
    environ = os.environ if environ is None else environ
    signs = []
    if which("nvidia-smi"):
        signs.append("nvidia-smi")
    if exists("/proc/driver/nvidia"):
        signs.append("/proc/driver/nvidia")
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() not in ("", "-1"):
        signs.append(f"CUDA_VISIBLE_DEVICES={visible}")
    return signs


def backend_warnings(
    backend: str,
    environ: Mapping[str, str] | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    which: Callable[[str], str | None] = shutil.which,
) -> list[str]:
    """One line when a GPU is visible (``visible_gpu_signs``) but JAX's default
    ``backend`` is "cpu" (a jaxlib without CUDA), naming the install extras; none
    otherwise, nor when ``JAX_PLATFORMS`` asks for CPU on purpose."""
    environ = os.environ if environ is None else environ
    if backend != "cpu" or environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return []
    signs = visible_gpu_signs(environ, exists, which)
    if not signs:
        return []
    line = (
        f"A GPU is visible ({', '.join(signs)}) but JAX runs on CPU: this jaxlib has "
        "no CUDA support. Install it with pip install -e '.[cuda12]' (or pip install "
        "'jax[cuda12]'); on TPU VMs pip install -e '.[tpu]'. JAX_PLATFORMS=cpu "
        "silences this."
    )
    return [line]
