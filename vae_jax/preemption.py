"""SIGTERM/SIGINT handling: finish the current step chunk, checkpoint, exit cleanly."""

from __future__ import annotations

import signal
import threading


class Preempted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; rerun to resume."""


class PreemptionGuard:
    """Context manager whose ``requested`` turns True on SIGTERM or SIGINT.

    Outside the main thread (where handlers cannot be installed) it is inert.
    A second SIGINT restores the default behaviour (immediate KeyboardInterrupt).
    """

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._previous = {}

    def _handle(self, signum, frame):
        del frame
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
