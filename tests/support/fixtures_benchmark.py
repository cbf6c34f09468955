"""Shared set-up of the benchmark tests: a small phantom grid (1-2 epochs, 2 shots, 2 seeds) run once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from bench_helpers import METHODS, SMALL


@dataclass
class Invocation:
    code: int
    out: str
    err: str


@pytest.fixture
def kmat_main(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], Invocation]:
    """Run ``kmat ARGS`` in this process (the console script's ``main``); exit code, stdout, stderr."""
    from kmat_cli.app import main

    def call(argv: list[str]) -> Invocation:
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return Invocation(int(code or 0), captured.out, captured.err)

    return call


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unsharded ``kmat benchmark`` of zeroshot, coop and kmat on phantom, seeds 1 and 2."""
    from kmat_cli.app import main

    out = tmp_path_factory.mktemp("bench") / "full"
    try:
        main(["benchmark", *SMALL, "--methods", METHODS, "--out", str(out)])
    except SystemExit as exc:
        assert exc.code in (0, None), f"benchmark failed with {exc.code}"
    return out
