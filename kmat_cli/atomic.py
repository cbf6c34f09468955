"""Atomic file writes: a reader sees the old file or the complete new one, never a half-written one.

Each writer writes to a temporary file in the destination folder, flushes and fsyncs it, then
``os.replace``-s it over the destination (atomic on POSIX and Windows within one filesystem). The file gets
the permissions a plain ``open(dest, "w")`` would give it (0666 minus the umask), not the private 0600 of
the temporary file, so reports and exported prompts can be shared.

Who named the destination decides how it is written, the same for every writer:

* a file kmat **owns** (the default: everything under the cache root, in a run folder, a benchmark or tune
  folder): the path itself is replaced, never followed. A symbolic link, FIFO or device found there (planted
  by someone sharing the folder) is replaced by kmat's file, with one ``kmat: warning:`` line; a symbolic
  link in a folder between the owning root (declared with :func:`own`) and the file would redirect the
  write, so it is refused (a :class:`~kmat_cli.errors.UsageError` naming the link, exit code 2). Readers of
  cache entries (and of a run's old ``metrics.json``) use :func:`read_owned` / :func:`planted`, which never
  follow a link either, so a planted entry reads as missing (a cache miss) and is then replaced.
* a file the **user named** (``--output``, ``-o``; ``user_named=True``), see :func:`target`: missing or a
  regular file is replaced as above; a symbolic link has the file it points to written that way (the link
  stays a link; a dangling link's target is created); a FIFO, a character or block device or a socket
  (``/dev/null``, ``/dev/stdout``, a named pipe) has nothing to replace atomically, so the content is made
  in a temporary file in the system's temporary folder and then streamed into the destination, opened for
  writing as a plain ``open`` would.

A write that the file system refuses becomes a one-line error naming the destination, and the temporary
file is removed: a read-only or not-a-folder destination is a :class:`~kmat_cli.errors.UsageError` (exit
code 2: the user chose the place), a full disk or any other I/O failure a
:class:`~kmat_cli.errors.RuntimeFailure` (exit code 1). Writers that are not Python file objects (the
safetensors library) report the OS error number as ``(os error N)`` in their message; it is read from there.

A writer creates missing parent folders, except a folder under :func:`guard_folder` (a run folder while
it trains): a write into it first checks that it is still the same folder (device and inode), so a folder
deleted or replaced meanwhile fails the write instead of being recreated half-empty.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kmat_cli.errors import KmatError, RuntimeFailure, UsageError

_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _file_mode() -> int:
    """0666 minus the process umask (read once at import: ``os.umask`` can only be read by setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()
_GUARDED: dict[str, tuple[int, int, str]] = {}  # folder -> (st_dev, st_ino, message when it is gone)
_OWNED: set[str] = set()  # absolute paths of the folders kmat owns (cache root, run and grid folders)


def own(folder: str | os.PathLike) -> None:
    """Declare ``folder`` as kmat's own: below it, no folder may be a symbolic link (:func:`check_owned`)."""
    _OWNED.add(os.path.abspath(folder))


def _owner(path: str | os.PathLike) -> str | None:
    """The outermost declared folder that contains ``path`` (itself excluded), or None."""
    full = os.path.abspath(path)
    roots = [r for r in _OWNED if full.startswith(r.rstrip(os.sep) + os.sep)]
    return min(roots, key=len) if roots else None


def check_owned(folder: str | os.PathLike) -> None:
    """Raise a UsageError where ``folder``, or a folder between it and the kmat folder that contains it
    (:func:`own`), is a symbolic link: a write into it would land outside kmat's folder."""
    root = _owner(folder)
    if root is None:
        return
    current = Path(root)
    for part in Path(os.path.abspath(folder)).relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise UsageError(
                f"{current}: is a symbolic link inside kmat's folder {root}; kmat never writes through "
                "links there; remove the link"
            )


def planted(path: str | os.PathLike) -> bool:
    """Whether ``path`` exists in a kmat folder but is not kmat's own regular file: a symbolic link (even a
    dangling one), a FIFO, a device or a socket. Such an entry is never read and is replaced on write."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def read_owned(path: str | os.PathLike) -> bytes:
    """The bytes of an owned file, never through a link: a planted entry (:func:`planted`) raises
    ``FileNotFoundError`` like a missing file, so the caller computes the content again."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileNotFoundError(errno.ENOENT, "a symbolic link, not kmat's file", str(path)) from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise FileNotFoundError(errno.ENOENT, "not a regular file", str(path))
        return handle.read()


def open_owned(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of an owned file (a lock file) that never follows a link: a planted entry is removed
    (one warning) and the file created in its place."""
    path = Path(path)
    check_owned(path.parent)
    for _ in range(2):
        if planted(path):
            note = _planted_note(path)
            path.unlink()
            _say_replaced(note)
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), mode)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
    raise UsageError(f"{path}: cannot be opened as kmat's own file; remove it")


def _planted_note(path: Path) -> str:
    """The warning for replacing the planted entry at ``path`` (see :func:`planted`)."""
    what = f"a symbolic link to {os.readlink(path)}" if path.is_symlink() else "not a regular file"
    return f"{path}: was {what}; replaced by kmat's own file (kmat never writes through links in its folders)"


def _say_replaced(note: str) -> None:
    from kmat_cli.progress import warn

    warn(note)


@contextmanager
def guard_folder(folder: str | os.PathLike, message: str) -> Iterator[None]:
    """While active, writes into ``folder`` never create it and raise ``RuntimeFailure(message)`` once it
    is gone or is no longer the folder it was on entry (deleted, or replaced by another one)."""
    key = os.path.abspath(folder)
    try:
        st = os.stat(key)
    except OSError:
        raise RuntimeFailure(message) from None
    previous = _GUARDED.get(key)
    _GUARDED[key] = (st.st_dev, st.st_ino, message)
    try:
        yield
    finally:
        if previous is None:
            _GUARDED.pop(key, None)
        else:  # nested: the outer guard holds again
            _GUARDED[key] = previous


def _guarded(folder: Path) -> bool:
    """Whether ``folder`` is under :func:`guard_folder`; raises its RuntimeFailure once it is gone or
    replaced."""
    entry = _GUARDED.get(os.path.abspath(folder))
    if entry is None:
        return False
    dev, ino, message = entry
    try:
        st = os.stat(folder)
    except OSError:
        raise RuntimeFailure(message) from None
    if (st.st_dev, st.st_ino) != (dev, ino):
        raise RuntimeFailure(message)
    return True


def _errno(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``: an ``OSError``'s, or one quoted as ``(os error N)``."""
    if isinstance(exc, OSError):
        return exc.errno
    found = _OS_ERROR.search(str(exc))
    return int(found.group(1)) if found else None


def write_error(dest: str | os.PathLike, exc: BaseException) -> KmatError | None:
    """The one-line error for a write of ``dest`` that failed with ``exc`` (None: not an OS-level failure)."""
    code = _errno(exc)
    if code is None:
        return None
    reason = os.strerror(code)
    if code in _USER_ERRNOS:
        return UsageError(
            f"{dest}: cannot write ({reason}); choose a writable location or fix its permissions"
        )
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return RuntimeFailure(f"{dest}: cannot write ({reason}); free disk space and run the command again")
    return RuntimeFailure(f"{dest}: cannot write ({reason})")


def target(dest: str | os.PathLike) -> tuple[Path, bool]:
    """(the path to write, whether to write through it): ``True`` for an existing file, or a link to one,
    that is not a regular file or a folder (a FIFO, a device, a socket, ``/dev/stdout``), which is opened
    and written as it is instead of being replaced; otherwise a symbolic link is resolved to its final
    target (all links of a chain), which is then replaced."""
    path = Path(dest)
    try:
        mode = path.stat().st_mode  # follows links, also the kernel's own like /dev/stdout -> pipe:[N]
    except OSError:
        mode = None
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return path, True
    return (Path(os.path.realpath(path)) if path.is_symlink() else path), False


@contextmanager
def _through(dest: Path) -> Iterator[Path]:
    """Yield a temporary path in the system's temporary folder; on success its bytes are streamed into
    ``dest`` (a FIFO or a device, opened as it is: never replaced), and it is removed either way."""
    try:
        fd, tmp = tempfile.mkstemp(prefix="kmat-", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise (write_error(dest, exc) or exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    except Exception as exc:
        error = None if isinstance(exc, KmatError) else write_error(dest, exc)
        if error is None:
            raise
        raise error from exc
    finally:
        with suppress(OSError):
            tmp_path.unlink()


@contextmanager
def atomic_path(dest: str | os.PathLike, *, user_named: bool = False) -> Iterator[Path]:
    """Yield a temporary path for the content of ``dest``; on success it replaces ``dest``; on error it is
    removed and ``dest`` is left as it was. An owned ``dest`` is replaced itself, whatever is there; a
    ``user_named`` one may be a link whose target is replaced, or a FIFO or device that is streamed into
    (:func:`target`)."""
    note = None
    if user_named:
        dest, special = target(dest)
        if special:
            with _through(dest) as streamed:
                yield streamed
            return
    else:
        dest = Path(dest)
        check_owned(dest.parent)
        note = _planted_note(dest) if planted(dest) else None
    try:
        if not _guarded(dest.parent):
            dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        _guarded(dest.parent)  # a guarded folder that vanished meanwhile is the error to report
        raise (write_error(dest, exc) or exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, dest)  # replaces a link or FIFO at ``dest`` itself, never its target
        if note is not None:
            _say_replaced(note)
    except Exception as exc:
        if not isinstance(exc, KmatError):
            _guarded(dest.parent)
        error = None if isinstance(exc, KmatError) else write_error(dest, exc)
        if error is None:
            raise
        raise error from exc
    finally:
        if tmp_path.exists():
            with suppress(OSError):
                tmp_path.unlink()


def write_bytes(dest: str | os.PathLike, data: bytes, *, user_named: bool = False) -> None:
    """Write ``data`` to ``dest`` atomically (``user_named``: see :func:`atomic_path`)."""
    with atomic_path(dest, user_named=user_named) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | os.PathLike, text: str, *, user_named: bool = False) -> None:
    """Write UTF-8 ``text`` to ``dest`` atomically."""
    write_bytes(dest, text.encode("utf-8"), user_named=user_named)


def write_json(dest: str | os.PathLike, obj: Any, indent: int = 2, *, user_named: bool = False) -> None:
    """Write ``obj`` as JSON to ``dest`` atomically (non-finite floats are rejected)."""
    text = json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False) + "\n"
    write_text(dest, text, user_named=user_named)


def write_with(dest: str | os.PathLike, writer: Callable[[Path], None], *, user_named: bool = False) -> None:
    """Call ``writer(tmp_path)`` (e.g. ``safetensors.torch.save_file``) and move the result to ``dest``."""
    with atomic_path(dest, user_named=user_named) as tmp:
        writer(tmp)


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files that killed writers left in ``folder`` (``.<name>.<random>.tmp``, never
    read by anyone); returns how many. Call it only where no other process is writing (a resumed run)."""
    removed = 0
    for tmp in Path(folder).glob(".*.tmp"):
        with suppress(FileNotFoundError):
            tmp.unlink()
            removed += 1
    return removed
