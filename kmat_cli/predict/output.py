"""The output of ``kmat predict``: one row per image (per DICOM frame), streamed as CSV or JSON lines.

Rows go out one ``write`` and flush per batch, so rows written before a crash, a kill or Ctrl-C stay
complete and readable.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypedDict

from kmat_cli.errors import UsageError

if TYPE_CHECKING:
    from kmat_cli.predict.inputs import InMemoryImage

__all__ = ["FORMATS", "PROB_PREFIX", "Prediction", "Row", "RowList", "RowWriter", "check_format", "path_text"]

FORMATS = ("csv", "jsonl")
PROB_PREFIX = "prob_"


def check_format(fmt: str) -> str:
    """``fmt`` when it is one of :data:`FORMATS`, else a one-line ``UsageError``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not known; use one of: {', '.join(FORMATS)}")
    return fmt


@dataclass
class Row:
    """One output row: the input path, its frame (multi-frame DICOM, else None), the class probabilities
    (None on error) and the error (None on success)."""

    path: Path | InMemoryImage
    frame: int | None
    probs: Sequence[float] | None
    error: str | None


class Prediction(TypedDict):
    """A row in its JSON form (a JSON line; an item of ``kmat.predict``'s list): ``label`` and
    ``probabilities`` ({class: p}) are None on error, ``error`` is None on success."""

    path: str
    frame: int | None
    label: str | None
    probabilities: dict[str, float] | None
    error: str | None


_NUM = "{:.7g}".format  # probabilities as written: 7 significant digits


def _top(names: Sequence[str], probs: Sequence[float]) -> str:
    """The first most probable class."""
    return names[list(probs).index(max(probs))]


def path_text(path: Path | str | InMemoryImage) -> str:
    """A path as text for the output: as is when it is valid Unicode; a name that is not valid UTF-8 (its
    undecodable bytes became lone surrogates, as ``os.fsdecode`` does) with each such byte written as
    ``\\xNN`` (Python's ``backslashreplace``, so bytes 0x80-0xff only), keeping the output valid UTF-8."""
    text = str(path)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")
    return text


# Line breaks that str.splitlines() honours but JSON leaves unescaped: escaped so a JSONL row is one line.
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class RowWriter:
    """Rows as CSV or JSON lines on a binary stream: one ``write`` and a flush per batch, so the output
    always ends with complete rows.

    CSV columns: ``path, frame, label, prob_<class>..., error``; JSONL keys: ``path, frame, label,
    probabilities ({class: p}), error``. Error rows have an empty label and probabilities (null in JSON).
    A row is always one record: CSV fields holding a line break (``\\n`` or ``\\r``), a comma or a quote
    are quoted; JSON escapes control characters and Unicode line separators. Paths that are not valid UTF-8
    are escaped (:func:`path_text`), so the whole output is valid UTF-8.
    """

    def __init__(self, stream: BinaryIO, class_names: Sequence[str], fmt: str = "csv") -> None:
        check_format(fmt)
        self.stream = stream
        self.class_names = list(class_names)
        self.fmt = fmt

    @property
    def columns(self) -> list[str]:
        return ["path", "frame", "label", *[PROB_PREFIX + c for c in self.class_names], "error"]

    def header(self) -> None:
        if self.fmt == "csv":
            self._emit(self._csv([self.columns]))

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.fmt == "csv":
            self._emit(self._csv(self._csv_rows(rows)))
        else:
            lines = (json.dumps(prediction(r, self.class_names), ensure_ascii=False) + "\n" for r in rows)
            self._emit("".join(lines).translate(_JSON_LINE_BREAKS))

    def _csv_rows(self, rows: Sequence[Row]) -> list[list[str]]:
        """The CSV cells of ``rows`` (one loop, no call per cell: this runs in the model's process)."""
        names, empty, num = self.class_names, [""] * len(self.class_names), _NUM
        out = []
        for row in rows:
            frame = "" if row.frame is None else str(row.frame)
            probs = row.probs
            path = path_text(row.path)
            if probs is None:
                out.append([path, frame, "", *empty, row.error or ""])
            else:
                out.append([path, frame, _top(names, probs), *map(num, probs), row.error or ""])
        return out

    @staticmethod
    def _csv(rows: list[list[str]]) -> str:
        """CSV lines ending in ``\\n``. The csv module quotes only fields holding a character of its line
        terminator: rows are written with ``\\r\\n`` (so a ``\\r`` or ``\\n`` in a field is quoted), then
        each row's own terminator becomes ``\\n``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        lines = []
        for row in rows:
            buf.seek(0)
            buf.truncate()
            writer.writerow(row)
            lines.append(buf.getvalue()[:-2])
        return "\n".join(lines) + "\n"

    def _emit(self, text: str) -> None:
        view = memoryview(text.encode("utf-8", errors="backslashreplace"))
        start = self.stream.tell() if getattr(self.stream, "seekable", lambda: False)() else None
        try:
            while view:
                n = self.stream.write(view)
                view = view[n if n is not None else len(view) :]
            self.stream.flush()
        except OSError:
            if start is not None:  # e.g. a full disk: cut the torn rows off, the file ends with whole rows
                with contextlib.suppress(OSError):
                    self.stream.truncate(start)
            raise


def prediction(row: Row, class_names: Sequence[str]) -> Prediction:
    """``row`` in its JSON form, probabilities rounded as written (7 significant digits)."""
    probs = None
    if row.probs is not None:
        probs = {c: float(_NUM(p)) for c, p in zip(class_names, row.probs, strict=True)}
    return {
        "path": path_text(row.path),
        "frame": row.frame,
        "label": None if row.probs is None else _top(class_names, row.probs),
        "probabilities": probs,
        "error": row.error,
    }


class RowList:
    """Rows kept in memory as :class:`Prediction` dicts in ``.rows`` (the Python API's output)."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.rows: list[Prediction] = []

    def header(self) -> None:
        """Nothing: a list has no header."""

    def write(self, rows: Sequence[Row]) -> None:
        self.rows += [prediction(r, self.class_names) for r in rows]
