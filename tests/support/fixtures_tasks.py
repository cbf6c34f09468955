"""Fixtures of the task tests."""

from __future__ import annotations

from typing import Any

import pytest
from task_cli import run_cli


@pytest.fixture
def prepare_ok():
    """Run ``kmat data prepare`` in-process and assert it succeeded; returns the CLI result."""

    def go(*args: str) -> Any:
        result = run_cli("data", "prepare", *args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    return go
