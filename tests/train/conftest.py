"""Make the toy world importable as ``toyworld`` (also for subprocesses, through PYTHONPATH), and trust it:
it is named by import path (``toyworld:ToyTask``), so reading its run configs back (evaluate, export,
resume) needs the user's opt-in, KMAT_TRUST_CODE=1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = str(Path(__file__).resolve().parent.parent / "methods")
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def _trust_the_toy_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
