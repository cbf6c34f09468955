"""A file name too long for the file system (ENAMETOOLONG) is bad input wherever it is given: one
``kmat: error:`` line naming the path (shortened), exit code 2, for ``kmat evaluate``, ``kmat export`` and
``kmat train --task``; in ``kmat predict`` it is that file's error row and the other files are classified.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from faults import assert_error, cli, png, prompts_file

pytestmark = pytest.mark.usefixtures("no_progress")

LONG = "n" * 300  # one name longer than the 255 bytes of common file systems


def test_predict_gives_the_long_name_an_error_row_and_goes_on(tmp_path: Path) -> None:
    prompts = prompts_file(tmp_path / "p.safetensors", ["round", "spiky"])
    good = png(tmp_path / "good.png", 1)
    result = cli("predict", tmp_path / f"{LONG}.png", good, "--embeddings", prompts, "--workers", "0")
    assert result.code == 0, result.err  # a file that cannot be read is reported on its row
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [r["path"] for r in rows] == [str(tmp_path / f"{LONG}.png"), str(good)]
    assert "too long" in rows[0]["error"] and rows[0]["label"] == ""
    assert "1 ok, 1 failed" in result.err
    assert rows[1]["error"] == "" and rows[1]["label"] in ("round", "spiky")


def test_evaluate_export_and_train_refuse_a_long_name(tmp_path: Path) -> None:
    for args in (
        ["evaluate", tmp_path / LONG],
        ["export", tmp_path / LONG],
        ["train", "--task", tmp_path / f"{LONG}.yaml", "--out", tmp_path / "runs"],
    ):
        line = assert_error(cli(*args), "file name too long", str(tmp_path)[:40], "n" * 40)
        assert len(line) < 300
    assert not (tmp_path / "runs").exists()
