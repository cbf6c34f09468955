"""kmat_cli.locks: one exclusive lock per file, refused while another holder lives, gone when it closes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmat_cli import locks
from kmat_cli.errors import UsageError

fcntl = pytest.importorskip("fcntl")


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def test_a_second_holder_is_refused_with_the_callers_message(tmp_path: Path) -> None:
    path = tmp_path / "f.lock"
    first, second = _open(path), _open(path)  # two open file descriptions: flock treats them as two holders
    try:
        locks.lock_exclusive(first, "unused")
        with pytest.raises(UsageError, match=r"^f\.lock is busy$") as caught:
            locks.lock_exclusive(second, "f.lock is busy")
        assert caught.value.exit_code == 2
    finally:
        os.close(first)
        os.close(second)


def test_the_lock_is_released_when_its_holder_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.lock"
    first = _open(path)
    locks.lock_exclusive(first, "busy")
    os.close(first)
    second = _open(path)
    try:
        locks.lock_exclusive(second, "busy")  # no error: the first holder is gone
    finally:
        os.close(second)


def test_a_lock_held_by_another_process_is_seen_through_flock(tmp_path: Path) -> None:
    """The lock is the kernel's flock, so a process that does not use kmat at all excludes kmat too."""
    path = tmp_path / "f.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys;f=open(sys.argv[1],'a');fcntl.flock(f,fcntl.LOCK_EX);"
            "print('held',flush=True);sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        fd = _open(path)
        try:
            with pytest.raises(UsageError, match="busy"):
                locks.lock_exclusive(fd, "busy")
        finally:
            os.close(fd)
    finally:
        holder.communicate("")
    fd = _open(path)
    try:
        locks.lock_exclusive(fd, "busy")
        with pytest.raises(BlockingIOError):  # and kmat's lock is the same flock a foreign process sees
            other = _open(path)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(other)
    finally:
        os.close(fd)


def test_a_file_system_without_locks_leaves_the_file_unlocked(tmp_path: Path, monkeypatch) -> None:
    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")  # as some network mounts answer

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    fd = _open(tmp_path / "f.lock")
    try:
        locks.lock_exclusive(fd, "busy")  # no error: used unlocked
    finally:
        os.close(fd)
