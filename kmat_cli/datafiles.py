"""The one reader of the data files kmat accepts: JSON and YAML, bounded and strict, one-line errors.

Every JSON or YAML file or string kmat reads (config and task files, ``--set`` values, descriptions, split
files, run-folder JSON, checkpoints, benchmark results, LLM answers, prompts metadata) goes through here.
Each is refused with a :class:`DataError` (a :class:`~kmat_cli.errors.UsageError`, exit code 2) whose one
line names the source and, given a ``hint``, what to do, when it is:

- larger than ``max_bytes`` (default :data:`MAX_BYTES`);
- malformed, or not UTF-8 text;
- nested deeper than :data:`MAX_DEPTH` levels (never a ``RecursionError``);
- holding an integer of more than :data:`MAX_DIGITS` digits (never Python's digit-limit ``ValueError``);
- for JSON, holding a number that is not finite: ``NaN``, ``Infinity`` or one that overflows (``1e400``);
  kmat writes none (:func:`kmat_cli.atomic.write_json` refuses them), so none is valid data.

YAML is parsed by :class:`kmat_cli.safeyaml.StrictSafeLoader` (no tags, anchors or repeated keys). A file
that does not exist raises :class:`MissingFile` (also a DataError), so a caller can say what it expected.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kmat_cli import atomic, safeyaml
from kmat_cli.errors import UsageError, short_repr

MAX_BYTES = 64 << 20  # the largest data file kmat reads (a split file of ~500k images); typical: a few KB
MAX_DEPTH = safeyaml.MAX_DEPTH
MAX_DIGITS = safeyaml.MAX_DIGITS


class DataError(UsageError):
    """A data file or string kmat cannot accept (see the module rules)."""


class MissingFile(DataError):
    """The data file does not exist."""


class _Refused(ValueError):
    """Raised inside the JSON parser's number hooks; becomes a DataError naming the source."""


def _error(source: str, problem: str, hint: str) -> DataError:
    return DataError(f"{source}: {problem}{f'; {hint}' if hint else ''}")


def read_text(path: str | Path, *, hint: str = "", what: str = "it", max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path``, at most ``max_bytes`` long; else a one-line DataError (MissingFile when
    the file does not exist); ``what`` names the file in "cannot read ..." (e.g. ``"descriptions"``)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise MissingFile(f"{path}: not found{f'; {hint}' if hint else ''}") from exc
    except OSError as exc:
        raise _error(str(path), f"cannot read {what} ({exc.strerror or exc})", hint) from exc
    if len(raw) > max_bytes:
        raise _error(str(path), f"larger than {max_bytes >> 20} MiB, too large for this file", hint)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(str(path), f"cannot read {what}: not UTF-8 text", hint) from exc


# ------------------------------------------------------------------------------------------------ JSON
def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _Refused(f"an integer of {digits} digits (at most {MAX_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {short_repr(text, 40)} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise _Refused(f"{name} is not a finite number")


def _depth(data: Any) -> int:
    """How deeply ``data`` nests lists and mappings (a scalar: 0), walked without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(text: str | bytes, source: str, *, hint: str = "", max_bytes: int = MAX_BYTES) -> Any:
    """``text`` parsed as JSON under the module rules; ``source`` (a file, a metadata key, a URL) starts
    every error message and ``hint`` ends it."""
    if len(text) > max_bytes:
        raise _error(source, f"larger than {max_bytes >> 20} MiB, too large for this file", hint)
    try:
        data = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
        )
    except RecursionError as exc:
        raise _error(source, f"nested more than {MAX_DEPTH} levels deep", hint) from exc
    except json.JSONDecodeError as exc:
        raise _error(source, f"not valid JSON (line {exc.lineno}: {exc.msg})", hint) from exc
    except UnicodeDecodeError as exc:
        raise _error(source, "not UTF-8 text", hint) from exc
    except _Refused as exc:
        raise _error(source, str(exc), hint) from exc
    if _depth(data) > MAX_DEPTH:
        raise _error(source, f"nested more than {MAX_DEPTH} levels deep", hint)
    return data


def read_json(path: str | Path, *, hint: str = "", what: str = "it", max_bytes: int = MAX_BYTES) -> Any:
    """The JSON data of the file ``path`` (:func:`read_text`, then :func:`parse_json`)."""
    return parse_json(read_text(path, hint=hint, what=what, max_bytes=max_bytes), str(path), hint=hint)


# ------------------------------------------------------------------------------------------------ YAML
def parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed as YAML under the module rules (:func:`kmat_cli.safeyaml.load`)."""
    if len(text) > MAX_BYTES:
        raise _error(source, f"larger than {MAX_BYTES >> 20} MiB, too large for this file", "")
    try:
        return safeyaml.load(text, source)
    except UsageError as exc:
        raise DataError(str(exc)) from exc


def read_yaml(path: str | Path, *, hint: str = "", what: str = "it") -> Any:
    """The YAML data of the file ``path`` (:func:`read_text`, then :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, hint=hint, what=what), str(path))


def read_owned_json(path: str | Path) -> Any:
    """The JSON data of kmat's own file ``path`` (a cache entry, a run's file), never read through a link:
    ``OSError`` where it is missing or planted (:func:`kmat_cli.atomic.read_owned`), :class:`DataError`
    where it breaks the module rules."""
    return parse_json(atomic.read_owned(path), str(path))
