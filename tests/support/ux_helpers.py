"""Helpers of the user-experience tests (importable by name: ``from ux_helpers import ...``)."""

from __future__ import annotations

import pytest

SHORT = {"epochs": 1, "shots": 2, "threads": 1}  # a run of a few seconds


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``kmat ARGS`` in this process: (exit code, stdout, stderr)."""
    from kmat_cli import app

    with pytest.raises(SystemExit) as exc:
        app.main([str(a) for a in args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err
