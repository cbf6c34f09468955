"""Exclusive advisory file locks: the one lock every kmat file uses (run folders, ``predict --output``).

A lock is ``flock(LOCK_EX | LOCK_NB)`` on an open file descriptor: taken without waiting, held until the
descriptor is closed, and released by the kernel when the process ends, however it ends. The caller opens
the file (a lock file kmat owns through :func:`kmat_cli.atomic.open_owned`, never through a link).
Where there are no advisory locks (Windows, some network file systems) the file is used unlocked.
"""

from __future__ import annotations

import errno

from kmat_cli.errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def lock_exclusive(fd: int, busy: str) -> None:
    """Lock the open file ``fd`` for this process; ``UsageError(busy)`` (exit code 2) when another process
    holds it. Without lock support the file stays unlocked."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _HELD:
            raise UsageError(busy) from exc
