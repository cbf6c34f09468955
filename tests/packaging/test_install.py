"""What a fresh clone installs and runs: the CPU-only constraints pin the same torch as the default ones, and
``make demo`` says how to call kmat next."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from repo_paths import REPO


# ------------------------------------------------------------------------------------ 9. CPU-only torch
def _requirements(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def test_cpu_constraints_pin_the_same_torch_from_the_cpu_wheel_index() -> None:
    pins = _requirements(REPO / "constraints.txt")
    cpu = _requirements(REPO / "constraints-cpu.txt")
    assert [line for line in cpu if not line.startswith("--")] == pins
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in cpu
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make install TORCH_CONSTRAINTS=constraints-cpu.txt" in readme


# ------------------------------------------------------------------------------- 1. after make demo
def test_make_demo_says_how_to_call_kmat_next() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    result = subprocess.run(
        [make, "-n", "demo", "STAMP=/dev/null"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "source .venv/bin/activate" in result.stdout and ".venv/bin/kmat" in result.stdout
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in readme
