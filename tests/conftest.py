"""Shared test set-up: an isolated kmat cache for the whole session unless KMAT_CACHE is set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KMAT = str(Path(sys.executable).with_name("kmat"))


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("KMAT_CACHE"):
        os.environ["KMAT_CACHE"] = str(REPO / ".kmat-cache")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (benchmarks/gpu_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def kmat_exe() -> str:
    """The installed `kmat` console script of the interpreter running the tests."""
    return KMAT
