"""Where ``kmat predict`` streams its rows: ``--output`` checked against the inputs and opened with a lock,
or stdout.

Rows are written in place (never through a temporary file) so that each finished batch is in the file
at once and stays there after a crash, a kill or Ctrl-C. So that this cannot go wrong:

* an output that is one of the inputs, the prompts file, or a file inside a walked folder named like an
  image (the next run would classify it) is refused before anything is opened (:func:`check_output`), and
  so is any file of the run in use (:func:`check_run_files`, also for ``kmat export -o``);
* a regular file (or a new one) is locked (``flock``) before it is emptied: a second ``kmat predict`` with
  the same output at the same time is refused with exit code 2 and leaves the first one's file alone, so
  the file is always one run's complete rows, never two runs interleaved (:func:`open_output`);
* a FIFO or a device (``/dev/null``, ``/dev/stdout``) is opened and written as it is, and a symbolic link
  writes the file it points to.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from kmat_cli.errors import UsageError
from kmat_cli.images import IMAGE_SUFFIXES

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; outputs are not locked there
    fcntl = None  # type: ignore[assignment]  # the module or None, tested before each use


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(path)


def _same(path: Path, st: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.stat(path), st)
    except OSError:
        return False


def _inside(path: str, folder: str) -> Path | None:
    """``path`` relative to ``folder`` when it lies inside it (both real paths), else None."""
    try:
        return Path(path).relative_to(folder)
    except ValueError:
        return None


def check_output(
    output: Path, paths: Sequence[str | Path], files: Iterable[Path], protected: Iterable[Path] = ()
) -> None:
    """Refuse (``UsageError``, nothing opened yet) an ``output`` that is the same file as one of the input
    ``files`` or of the ``protected`` files (e.g. the prompts file; also through links or hard links), or
    that lies in a folder of ``paths`` under a name the folder walk would pick up (not hidden, an image
    suffix)."""
    try:
        mine = os.stat(output)
    except OSError:
        mine = None  # not there yet: it cannot be an existing input
    for what, candidates in (("one of the inputs", files), ("the prompts file", protected)):
        same = None if mine is None else next((p for p in candidates if _same(p, mine)), None)
        if same is not None:
            raise UsageError(f"{output}: --output is {what} ({same}); choose another output file")
    real = _real(output)
    if Path(real).suffix.lower() not in IMAGE_SUFFIXES:
        return
    for folder in paths:
        if not Path(folder).is_dir():
            continue
        rel = _inside(real, _real(folder))
        if rel is not None and not any(part.startswith(".") for part in rel.parts):
            raise UsageError(
                f"{output}: --output lies in the input folder {folder} and is named like an image, so it "
                "would be read as an input; choose another name or folder"
            )


def check_run_files(
    output: str | os.PathLike[str], run: str | os.PathLike[str], option: str, allowed: Iterable[Path] = ()
) -> None:
    """Refuse (``UsageError``, nothing opened yet) an existing ``output`` that is one of the files of the
    run folder ``run`` (any file in it or below it, compared as files, so a link, a hard link or a ``..``
    spelling counts), except the ``allowed`` ones: writing it would break the run."""
    try:
        mine = os.stat(output)
    except OSError:
        return  # not there yet: it cannot be a file of the run
    if any(_same(Path(a), mine) for a in allowed):
        return
    for folder, _, names in os.walk(run):
        for name in names:
            if _same(Path(folder, name), mine):
                raise UsageError(
                    f"{output}: {option} is {Path(folder, name)}, a file of the run in use, which it would "
                    "break; choose another file"
                )


def _lock(fd: int, output: Path) -> None:
    """Take an exclusive ``flock`` on ``fd`` without waiting; a held one means another writer."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UsageError(
                f"{output}: another kmat predict is writing this file; wait for it or choose another --output"
            ) from exc
        # a file system without locks (some network mounts): write unlocked, as before


def open_output(output: Path) -> BinaryIO:
    """``output`` opened for streaming rows, unbuffered (see the module docstring): a FIFO or device as it
    is; a regular or new file locked against other ``kmat predict`` runs and then emptied (opened for
    appending, so nothing is cut before the lock is held). A file that cannot be opened is a one-line
    ``UsageError``."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        stream = open(output, "ab", buffering=0)  # noqa: SIM115 (the caller closes it)
    except OSError as exc:
        raise UsageError(f"{output}: cannot write the output file ({exc.strerror or exc})") from exc
    try:
        fd = stream.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            _lock(fd, output)
            os.ftruncate(fd, 0)
    except BaseException:
        stream.close()
        raise
    return stream


def stdout_stream() -> Any:
    """The binary stream under ``sys.stdout`` (a text-only one wrapped); a closed stdout is bad usage."""
    out = sys.stdout
    if out is None or getattr(out, "closed", False):
        raise UsageError("stdout is closed; give --output FILE for the rows")
    return getattr(out, "buffer", None) or _TextStream(out)


class _TextStream:
    """A binary-stream face for a text stream without ``.buffer`` (e.g. a captured stdout)."""

    def __init__(self, text: Any) -> None:
        self.text = text

    def write(self, data: bytes | memoryview) -> int:
        self.text.write(bytes(data).decode("utf-8", errors="surrogateescape"))
        return len(data)

    def flush(self) -> None:
        self.text.flush()
