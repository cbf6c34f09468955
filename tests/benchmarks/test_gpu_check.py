"""benchmarks/gpu_check.sh: without CUDA it says so and exits 0; with a (stand-in) CUDA device it runs its
three steps and writes one table, failing when a step fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from repo_paths import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"

# A stand-in interpreter: reports a CUDA device and answers each step as the real one would print.
STAND_IN = """#!/usr/bin/env bash
case "$*" in
  *is_available*) exit 0 ;;
  *get_device_name*) echo "Stand-in GPU | torch 0 | CUDA 0" ;;
  *pytest*) echo "..... [100%]"; echo "11 passed in 9.1s" ;;
  *device_compare.py*)
    echo "| run | Hi acc % | Lo acc % | max diff (points) | min cos(t_lo) | tolerance | ok | s |"
    echo "| cpu | 80.0 | 60.0 | 0.0 | 1.00000 | <= 2 points, cos >= 0.999 | yes | 9.0 |"
    echo "| cuda+amp | 79.0 | 61.0 | 1.0 | 0.99900 | <= 5 points, cos >= 0.99 | yes | 3.0 |" ;;
  *speed.py*) echo "speedup_vs_naive=15.0 overhead_vs_bound=1.05"; exit "${SPEED_EXIT:-0}" ;;
  *) exit 3 ;;
esac
"""


def _run(tmp_path: Path, python: str, **env: str) -> subprocess.CompletedProcess[str]:
    report = tmp_path / "report.md"
    return subprocess.run(
        ["bash", str(SCRIPT), str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": python, **env},
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_says_so_and_exits_0(tmp_path: Path) -> None:
    result = _run(tmp_path, sys.executable)
    assert result.returncode == 0, result.stderr
    assert "no CUDA device" in result.stdout
    assert not (tmp_path / "report.md").exists()


def _stand_in(tmp_path: Path) -> str:
    python = tmp_path / "python"
    python.write_text(STAND_IN)
    python.chmod(0o755)
    return str(python)


def test_with_a_device_it_writes_one_table(tmp_path: Path) -> None:
    result = _run(tmp_path, _stand_in(tmp_path))
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("GPU check, ") and "Stand-in GPU" in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert rows[0] == "| check | result | seconds | detail |" and len(rows) == 4
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["tests", "compare", "speed"]
    assert all(r.split("|")[2].strip() == "passed" for r in rows[1:])
    assert "11 passed" in rows[1] and "cuda+amp: Hi 79.0, Lo 61.0, ok yes;" in rows[2]
    assert "speedup_vs_naive=15.0 overhead_vs_bound=1.05" in rows[3]
    assert (tmp_path / "gpu-check-logs" / "speed.log").is_file()


def test_a_failing_step_fails_the_check(tmp_path: Path) -> None:
    result = _run(tmp_path, _stand_in(tmp_path), SPEED_EXIT="1")
    assert result.returncode == 1
    assert "| speed | FAILED (exit 1) |" in (tmp_path / "report.md").read_text()
