"""benchmarks/speed.py: its command line, and the report it prints for each device measured: a header, the
table, then the last line ``speedup_vs_naive=<x> overhead_vs_bound=<y>`` of the first device."""

from __future__ import annotations

import subprocess
import sys

import pytest
import speed
import torch
from repo_paths import REPO
from speed_plan import FULL, QUICK, Plan, Results


@pytest.mark.parametrize(("flags", "plan"), [(["--quick"], QUICK), ([], FULL)])
def test_report_of_each_device_then_the_last_line(
    flags: list[str], plan: Plan, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    measured = []

    def measure(device: str, plan: Plan, threads: int, log: object) -> Results:
        measured.append((device, plan, threads))
        return Results(device=device, speedup=18.43, overhead=0.987)

    monkeypatch.setattr(speed, "measure", measure)
    threads = torch.get_num_threads()
    speed.main([*flags, "--device", "cpu", "--threads", str(threads)])
    lines = capsys.readouterr().out.splitlines()
    assert measured == [("cpu", plan, threads)]
    assert lines[0].startswith("Date ")
    assert f"; device cpu; {threads} torch threads; mode {plan.name} (step rows: median of " in lines[0]
    assert lines[1].startswith("Load average (1, 5, 15 min) at start ")
    assert lines[2] == "" and lines[3] == "| # | measurement | value | goal | met |"
    assert "| 1 | **speed-up vs naive** | 18.4x | >= 10x | yes |" in lines
    assert lines[-2:] == ["", "speedup_vs_naive=18.4 overhead_vs_bound=0.99"]


def test_command_line_runs_as_a_script() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "speed.py"), "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert all(flag in out.stdout for flag in ("--quick", "--threads", "--device"))
