"""Shared test set-up: an isolated kmat cache for the whole session unless KMAT_CACHE is set, the helper
modules of ``tests/support/`` importable by name (``from faults import ...``, also in subprocesses that put
the folder on PYTHONPATH), and their fixtures registered for every test."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUPPORT = str(Path(__file__).resolve().parent / "support")
if SUPPORT not in sys.path:
    sys.path.insert(0, SUPPORT)
KMAT = str(Path(sys.executable).with_name("kmat"))

from kmat_runner import Result, cli  # noqa: E402  (tests/support is on sys.path from here on)

pytest_plugins = [
    "fake_llm",
    "fixtures_api",
    "fixtures_backbones",
    "fixtures_benchmark",
    "fixtures_cli",
    "fixtures_plugins",
    "fixtures_predict",
    "fixtures_speed",
    "fixtures_tasks",
    "fixtures_transports",
    "tiers",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier (make test-fast): no test that trains a model or starts a process",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("KMAT_CACHE"):
        os.environ["KMAT_CACHE"] = str(REPO / ".kmat-cache")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that train or spawn get their marker (tests/support/tiers.py), ``--fast`` deselects them and
    guards the rest; tests marked ``cuda`` are skipped where torch sees no CUDA device."""
    import tiers
    import torch

    tiers.mark(items)
    if config.getoption("fast"):
        tiers.fast_only(config, items)

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (benchmarks/gpu_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    """At most two torch threads per test process, the cores this process may use (kmat's own count,
    ``threads.cores``) shared out among pytest-xdist's processes (one each for two processes on two cores), so
    tests run side by side do not oversubscribe the CPU."""
    import torch

    from kmat_cli import threads

    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, threads.cores() // processes)))


@pytest.fixture(scope="session", autouse=True)
def _fast_tier(request: pytest.FixtureRequest) -> None:
    """Under ``--fast``, training, new processes and the full-size BiomedCLIP are refused from the session's
    start (tests/support/tiers.py)."""
    if request.config.getoption("fast"):
        request.getfixturevalue("fast_tier_guard")


@pytest.fixture
def kmat_main() -> Callable[..., Result]:
    """``kmat_main(*args)``: ``kmat ARGS`` in this process through the console script's entry point; returns
    the exit code and captured stdout and stderr (:class:`kmat_runner.Result`)."""
    return cli


@pytest.fixture
def kmat_exe() -> str:
    """The installed `kmat` console script of the interpreter running the tests."""
    return KMAT


@pytest.fixture
def trust_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """KMAT_TRUST_CODE=1: the toy world is named by import path (``toyworld:ToyTask``), so reading its run
    configs back (evaluate, export, resume) needs the user's opt-in."""
    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
