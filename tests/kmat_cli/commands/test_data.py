"""``kmat data check``: the table of images per class and split shows user text (class names) literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import cli

pytestmark = pytest.mark.usefixtures("no_progress")


def test_data_check_shows_class_names_literally(bracket_task: Path, wide: None) -> None:
    result = cli("data", "check", bracket_task)
    assert result.code == 0, result.err
    cells = [[c.strip() for c in line.split("│")] for line in result.out.splitlines() if "│" in line]
    for modality in ("hi", "lo"):  # per split: train, val, test, total
        assert [modality, "nevus [benign]", "2", "1", "1", "4"] in cells, result.out
    assert cells.count(["", "[/]", "2", "1", "1", "4"]) == 2, result.out
