"""``progress.rows``, the per-class bars of ``kmat describe``: drawn on a terminal (labels literally),
nothing off one or under ``KMAT_NO_PROGRESS``."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from kmat_cli import progress


def _terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(progress, "console", lambda: console)
    monkeypatch.delenv("KMAT_NO_PROGRESS", raising=False)
    return screen


def test_rows_draw_one_bar_per_label_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _terminal(monkeypatch)
    with progress.rows(["melanoma", "[bold]nevus"], 4) as advance:
        advance("melanoma", 3)
        advance("[bold]nevus")
    drawn = screen.getvalue()
    assert "melanoma" in drawn and "3/4" in drawn
    assert "[bold]nevus" in drawn and "1/4" in drawn  # a class name is shown as written, not as markup


@pytest.mark.parametrize("how", ["no terminal", "KMAT_NO_PROGRESS", "disabled"])
def test_rows_draw_nothing_when_progress_is_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, how: str
) -> None:
    screen = _terminal(monkeypatch) if how != "no terminal" else None
    if how == "KMAT_NO_PROGRESS":
        monkeypatch.setenv("KMAT_NO_PROGRESS", "1")
    with progress.rows(["melanoma"], 4, enabled=how != "disabled") as advance:
        advance("melanoma", 2)
    assert capsys.readouterr().err == "" and (screen is None or screen.getvalue() == "")
