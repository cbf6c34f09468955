"""How kmat processes stop: SIGTERM handled like Ctrl-C, and helper processes that die with their parent.

* :func:`terminate_as_interrupt`: while active (main thread only), SIGTERM raises :class:`Terminated`, so a
  command stops as on Ctrl-C (``finally`` blocks run, worker processes are shut down, rows written so far
  are kept); the CLI exits with 143 (128 + SIGTERM). Like ``KeyboardInterrupt`` it is a ``BaseException``
  (no ``except Exception`` swallows it) but not a ``KeyboardInterrupt``, which Typer turns into exit 130.
* :class:`ParentWatch`: the ``worker_init_fn`` of decoding processes. A worker must not outlive the process
  that started it, even when that one is killed with SIGKILL and can clean nothing up: otherwise it is
  re-parented, waits forever on a queue nobody reads and keeps the parent's stdout and stderr open (a
  ``... | tee`` or ``subprocess.communicate()`` never returns). On Linux the kernel sends the worker SIGTERM
  when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere, or where that call fails, a daemon thread
  checks the parent every :data:`POLL_SECONDS` and ends the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

TERMINATED_EXIT_CODE = 128 + int(signal.SIGTERM)  # 143, as a shell reports a process ended by SIGTERM
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(BaseException):
    """SIGTERM arrived while :func:`terminate_as_interrupt` was active."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the previous handler
    is restored after it. Outside the main thread (where Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parent_death_signal() -> bool:
    """Ask Linux to send this process SIGTERM when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int, direct: bool) -> bool:
    """``pid`` still runs: for a ``direct`` parent, it is still this process's parent (a dead parent's
    children are re-parented); otherwise (e.g. a worker started by a fork server) it exists and is not a
    zombie."""
    if direct:
        return os.getppid() == pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc to ask: kill(pid, 0) found it


def _watch(pid: int, direct: bool) -> None:
    while _alive(pid, direct):
        time.sleep(POLL_SECONDS)
    os._exit(1)


class ParentWatch:
    """``worker_init_fn`` for DataLoader workers (picklable, so any start method works): the worker ends
    when the process that made this object ends (see the module docstring).

    ``use_prctl=False`` leaves out the Linux parent-death signal and relies on the polling thread alone."""

    def __init__(self, use_prctl: bool = True) -> None:
        self.parent = os.getpid()
        self.use_prctl = use_prctl

    def __call__(self, worker_id: int = 0) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler inherited through fork
        direct = os.getppid() == self.parent
        if direct and self.use_prctl and _parent_death_signal():
            if os.getppid() != self.parent:  # the parent died before the request took effect
                os._exit(1)
            return
        watch = threading.Thread(
            target=_watch, args=(self.parent, direct), name="kmat-parent-watch", daemon=True
        )
        watch.start()
