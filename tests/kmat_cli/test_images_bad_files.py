"""A file that is no readable image (text, empty, truncated, wrong magic, a broken link, DICOM without pixels):
named before any run folder when it is a training image, an error on its own row in predict."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from faults import CLASSES, assert_error, assert_no_runs, cli, custom_task, png, train_args, two_class_prompts

pytestmark = pytest.mark.usefixtures("no_progress")


# ------------------------------------------------------------------------ non-image and corrupt image files
def _corrupt(path: Path, kind: str) -> Path:
    """Turn ``path`` (a PNG) into a bad file of ``kind``; returns the path the error must name."""
    good = path.read_bytes()
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif kind == "random-bytes":
        path.write_bytes(os.urandom(300))
    elif kind == "html":
        path.write_text("<html><body>404 Not Found</body></html>")
    elif kind == "wrong-magic":
        path.write_bytes(b"\x89PNX" + good[4:])
    elif kind == "broken-link":
        path.unlink()
        path.symlink_to(path.parent / "gone.png")
    elif kind == "dicom-no-pixels":
        path.unlink()
        path = path.with_suffix(".dcm")
        path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\x00")
    else:
        raise AssertionError(kind)
    return path


BAD_FILES = [
    "text",
    "empty",
    "truncated",
    "random-bytes",
    "html",
    "wrong-magic",
    "broken-link",
    "dicom-no-pixels",
]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_training_image_is_named_before_any_run_folder(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "task"
    task = custom_task(folder, per_split={"train": 2})  # shots 2: every training image is read
    bad = _corrupt(folder / "hi" / "train" / CLASSES[1] / "1.png", kind)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, bad)
    assert_no_runs(tmp_path / "runs")


def test_predict_reports_bad_files_on_their_rows(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    expected = {}
    for i, kind in enumerate(BAD_FILES):
        expected[_corrupt(png(folder / f"{i}-{kind}.png", i), kind).name] = kind
    png(folder / "good-1.png", 101)
    png(folder / "deep" / "good-2.png", 102)
    (folder / "notes.txt").write_text("skipped: not named like an image")
    prompts = two_class_prompts(tmp_path)
    result = cli("predict", folder, "--embeddings", prompts, "--workers", "0")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {*expected, "good-1.png", "good-2.png"}
    for name in expected:
        assert by_name[name]["error"] and not by_name[name]["label"], by_name[name]
    for name in ("good-1.png", "good-2.png"):
        assert by_name[name]["label"] in CLASSES and not by_name[name]["error"]
    assert len(result.lines) == 1 and result.lines[0].startswith("kmat: predict done: 2 ok, 8 failed")


def test_predict_with_only_bad_files_exits_1_with_rows(tmp_path: Path) -> None:
    bad = _corrupt(png(tmp_path / "x.png", 1), "truncated")
    result = cli("predict", bad, "--embeddings", two_class_prompts(tmp_path), "--workers", "0")
    assert result.code == 1
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == 1 and "truncated" in rows[0]["error"]
