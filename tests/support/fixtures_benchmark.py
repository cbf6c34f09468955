"""Shared set-up of the benchmark tests: a small phantom grid (1-2 epochs, 2 shots, 2 seeds) run once."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_helpers import METHODS, SMALL
from kmat_runner import cli


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unsharded ``kmat benchmark`` of zeroshot, coop and kmat on phantom, seeds 1 and 2."""
    out = tmp_path_factory.mktemp("bench") / "full"
    got = cli("benchmark", *SMALL, "--methods", METHODS, "--out", out)
    assert got.code == 0, got.err
    return out
