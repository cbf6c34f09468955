"""Predict's rows as CSV and JSON lines: one record per row whatever the file and class names hold, valid UTF-8."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from faults import cli, csv_rows, png, prompts_file

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_line_breaks_in_file_and_class_names_stay_in_one_row(tmp_path: Path, fmt: str) -> None:
    """``\\r``, ``\\n`` and Unicode line separators in a file name or a class name never split a row: CSV
    read back with the csv module, JSONL line by line with ``str.splitlines`` (which splits on U+2028)."""
    classes = ["round\rnodule", "mass\n2", "ring\u2028lesion"]
    prompts = prompts_file(tmp_path / "p.safetensors", classes)
    scans = tmp_path / "scans"
    names = ["a\rb.png", "c\nd.png", "e\u2028f.png", "g\x85h.png", "plain.png"]
    for i, name in enumerate(names):
        png(scans / name, i)
    out = tmp_path / f"rows.{fmt}"
    result = cli("predict", scans, "--embeddings", prompts, "--workers", "0", "-f", fmt, "-o", out)
    assert result.code == 0, result.err
    expected = sorted(str(scans / n) for n in names)
    if fmt == "csv":
        rows = csv_rows(out.read_bytes())
        assert rows[0] == ["path", "frame", "label", *[f"prob_{c}" for c in classes], "error"]
        assert [r[0] for r in rows[1:]] == expected
        assert all(len(r) == len(rows[0]) and r[2] in classes for r in rows[1:])
    else:
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["path"] for r in records] == expected
        assert all(set(r["probabilities"]) == set(classes) and r["label"] in classes for r in records)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_non_utf8_file_name_is_escaped_in_its_row_only(tmp_path: Path, prompts: Path, fmt: str) -> None:
    """The output decodes as strict UTF-8; the bad name's row has ``\\xNN`` for each undecodable byte; every
    other row is byte-identical to a run without that file."""
    scans = tmp_path / "scans"
    png(scans / "a.png", 1)
    png(scans / "z.png", 3)
    bad = os.fsencode(scans) + b"/caf\xe9-\xff.png"
    png(Path(os.fsdecode(bad)), 2)
    rows = {}
    for name in ("with", "without"):
        out = tmp_path / f"{name}.{fmt}"
        result = cli("predict", scans, "--embeddings", prompts, "--workers", "0", "-f", fmt, "-o", out)
        assert result.code == 0, result.err
        rows[name] = out.read_bytes().split(b"\n")
        if name == "with":
            os.unlink(bad)
    text = b"\n".join(rows["with"]).decode("utf-8")  # strict
    escaped = str(scans) + "/caf\\xe9-\\xff.png"
    if fmt == "csv":
        parsed = csv_rows(text.encode())
        assert [r[0] for r in parsed[1:]] == [str(scans / "a.png"), escaped, str(scans / "z.png")]
    else:
        assert [json.loads(line)["path"] for line in text.splitlines()] == [
            str(scans / "a.png"),
            escaped,
            str(scans / "z.png"),
        ]
    head = 1 if fmt == "csv" else 0
    assert rows["with"][: head + 1] + rows["with"][head + 2 :] == rows["without"]
