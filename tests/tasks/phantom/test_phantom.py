"""The phantom task's world folder: one that must be generated where nothing can be written is a usage error
naming the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faults import SHORT, assert_error, assert_no_runs, cli

pytestmark = pytest.mark.usefixtures("no_progress")


def test_a_phantom_world_in_a_read_only_folder_is_a_usage_error(tmp_path: Path, read_only: Any) -> None:
    """A world that must be generated where nothing can be written: exit 2 naming the folder."""
    root = read_only(tmp_path / "worlds")
    result = cli("train", *SHORT, "--out", tmp_path / "runs", "--set", f"task.root={root}")
    assert_error(result, root, "set KMAT_CACHE")
    assert_no_runs(tmp_path / "runs")
