"""kmat's cache folder: a home where none can be made is a usage error saying to set KMAT_CACHE."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import SHORT, assert_error, assert_no_runs, cli, phantom_root

pytestmark = pytest.mark.usefixtures("no_progress")


# ---------------------------------------------------------------------------------------- the kmat cache
@pytest.mark.parametrize("phantom", ["generated", "given"])
def test_an_unwritable_home_says_to_set_kmat_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phantom: str
) -> None:
    """No KMAT_CACHE and a home where no cache folder can be made (HOME is a file): exit 2 saying so, for
    the phantom world's folder and for the feature cache (the world given elsewhere)."""
    extra = ["--set", f"task.root={phantom_root()}"] if phantom == "given" else []
    home = tmp_path / "home"
    home.write_text("not a folder\n", encoding="utf-8")
    monkeypatch.delenv("KMAT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    result = cli("train", *SHORT, "--out", tmp_path / "runs", *extra)
    assert_error(result, home, "set KMAT_CACHE")
    assert_no_runs(tmp_path / "runs")
