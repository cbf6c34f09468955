"""Errors kmat reports to users as one line, with the exit code the CLI returns.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input. Set ``KMAT_DEBUG=1`` for tracebacks.
"""

from __future__ import annotations

import errno
import re


class KmatError(Exception):
    """An error with a one-line message meant for the user; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(KmatError):
    """Bad usage or bad input (unknown name, malformed file, wrong key): exit code 2."""

    exit_code = 2


class RuntimeFailure(KmatError):
    """Something failed while running (non-convergence, a device error): exit code 1."""

    exit_code = 1


# control characters (C0, DEL, C1) and the bidirectional overrides and isolates that reorder what follows
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` as shown on a terminal: control characters (ESC, BEL, ...) and bidirectional overrides
    written as escapes (``\\x1b``), so no message can move the cursor, ring, or restyle the terminal."""
    return _UNPRINTABLE.sub(_escape, text)


def unprintable(text: str) -> str | None:
    """The first control character of ``text``, escaped (``"\\x07"``), or None when it has none."""
    found = _UNPRINTABLE.search(text)
    return None if found is None else _escape(found)


def from_os_error(exc: OSError) -> KmatError | None:
    """The one-line error of an ``OSError`` that is bad input rather than a failure (a file name too long
    for the file system: exit code 2), or None for any other."""
    if exc.errno == errno.ENAMETOOLONG:
        name = str(exc.filename) if exc.filename is not None else "a path"
        if len(name) > 120:
            name = name[:60] + "..." + name[-57:]
        return UsageError(f"{name}: file name too long for the file system; use a shorter name or path")
    return None


def short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)`` for an error message: at most ``limit`` characters, ending in ``...`` when cut, and
    bounded work however large ``value`` is (nested containers are abbreviated while rendering)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel = 3
    short.maxstring = short.maxother = short.maxlong = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
