"""kmat_cli.progress.draws_bars: bars only when asked for, not switched off, and stderr is a terminal."""

from __future__ import annotations

import pytest

from kmat_cli.progress import draws_bars


class _Console:
    def __init__(self, is_terminal: bool) -> None:
        self.is_terminal = is_terminal


def test_bars_on_a_terminal_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMAT_NO_PROGRESS", raising=False)
    assert draws_bars(True, _Console(True)) is True
    assert draws_bars(False, _Console(True)) is False
    assert draws_bars(True, _Console(False)) is False


def test_kmat_no_progress_switches_bars_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMAT_NO_PROGRESS", "1")
    assert draws_bars(True, _Console(True)) is False
