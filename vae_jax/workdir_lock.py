"""An exclusive lock on a run's workdir, so two processes never train into one.

``<workdir>/.lock`` is held with ``fcntl.flock`` for the life of the run and names
its holder (pid, host, start time). The kernel releases the lock when the holder
exits or is killed, so a lock is never stale: a file left behind by a dead process
is simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import socket
import time

LOCK_FILE = ".lock"


class WorkdirLockedError(RuntimeError):
    """Another live process holds the workdir's lock."""


@contextlib.contextmanager
def locked(workdir: str | pathlib.Path):
    """Holds ``<workdir>/.lock`` (created if needed) inside the ``with`` block.

    Raises ``WorkdirLockedError`` naming the holder if another process has it.
    """
    path = pathlib.Path(workdir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            raise WorkdirLockedError(
                f"Workdir {workdir} is in use by {holder or 'another process'}; wait "
                "for that run to end, stop it, or choose another --workdir."
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(),
            0,
        )
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # the file stays: deleting it would race a new holder
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
