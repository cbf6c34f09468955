"""Fixtures of the task tests."""

from __future__ import annotations

from typing import Any

import pytest
from kmat_runner import cli


@pytest.fixture
def prepare_ok():
    """Run ``kmat data prepare`` in-process and assert it succeeded; returns the CLI result."""

    def go(*args: str) -> Any:
        result = cli("data", "prepare", *args)
        assert result.code == 0, result.output
        return result

    return go
