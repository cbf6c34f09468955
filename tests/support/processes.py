"""Processes seen through /proc: a process's live children, whether a pid is alive, waiting for pids to end."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path


def children(pid: int) -> set[int]:
    """Pids of the live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat_file.read_bytes().rsplit(b")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != b"Z":
                found.add(int(stat_file.parent.name))
    return found


def alive(pid: int) -> bool:
    """``pid`` names a process that is neither gone nor a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    """The pids of ``pids`` still alive after waiting up to ``seconds`` for all of them to end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return {p for p in pids if alive(p)}
