"""``kmat env``: the table of versions and folders shows a path holding rich markup literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import cli

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.mark.spawns
def test_env_shows_a_cache_path_with_markup_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wide: None
) -> None:
    cache = tmp_path / "c[/]" / "[bold]kmat"
    monkeypatch.setenv("KMAT_CACHE", str(cache))
    result = cli("env")
    assert result.code == 0, result.err
    assert str(cache) in result.out
