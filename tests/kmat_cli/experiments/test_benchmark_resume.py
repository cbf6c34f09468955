"""A killed ``kmat benchmark`` recomputes only unfinished cells; a failed cell is reported, the grid goes on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from bench_helpers import SMALL

LINE = re.compile(r"cell ([0-9a-f]{16}) .*: done \((read back|computed|resumed)")


def _finished(root: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (root / "cells").glob("*/result.json")}


def test_killed_benchmark_reruns_only_unfinished_cells(tmp_path: Path, kmat_exe: str, kmat_main) -> None:
    out = tmp_path / "bench"
    args = ["benchmark", "--task", "phantom", "--methods", "coop,kmat", "--seeds", "1,2", "--epochs", "12",
            "--shots", "2", "--no-plots", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([kmat_exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _finished(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = _finished(out)
    cells = {p.name for p in (out / "cells").iterdir()}
    started = {k for k in cells - set(before) if list((out / "cells" / k).glob("train/*/config.yaml"))}
    assert 1 <= len(before) < 4, f"kill came too late or too early: {len(before)} of 4 cells finished"

    again = kmat_main(*args)
    assert again.code == 0, again.err
    how = dict(LINE.findall(again.err))
    assert len(how) == 4
    assert {k for k, h in how.items() if h == "read back"} == set(before)
    assert {k for k, h in how.items() if h == "resumed"} == started  # the run folder is continued
    assert {k for k, h in how.items() if h == "computed"} == {
        k for k in how if k not in before and k not in started
    }
    after = _finished(out)
    assert {k: after[k] for k in before} == before  # finished cells' result.json untouched
    for key in how:  # one run folder per cell: resumed ones were not restarted
        assert len(list((out / "cells" / key).glob("train/*/config.yaml"))) == 1


def test_failed_cell_is_reported_and_the_grid_goes_on(tmp_path: Path, kmat_main) -> None:
    out = tmp_path / "bench"
    args = ["benchmark", *SMALL, "--seeds", "1", "--methods", "zeroshot,coop", "--out", str(out),
            "--set", "train.lr=1.0e+30", "--set", "train.warmup_epochs=0"]  # fmt: skip
    first = kmat_main(*args)
    assert first.code == 1
    failed = re.findall(r"cell ([0-9a-f]{16}) phantom / coop .*FAILED: RuntimeFailure", first.err)
    assert len(failed) == 1
    error = json.loads((out / "cells" / failed[0] / "error.json").read_text())
    assert "loss became nan" in error["error"] and "Traceback" in error["traceback"]
    assert not (out / "cells" / failed[0] / "result.json").exists()
    markdown = (out / "report.md").read_text()
    section = markdown.split("## Failed cells")[1]
    assert failed[0] in section and "RuntimeFailure" in section
    table = markdown.split("### phantom")[1].split("\n\n")[1]
    hi = next(line for line in table.splitlines() if line.startswith("| Hi "))
    assert hi.split("|")[2].strip() not in ("—", "") and hi.split("|")[3].strip() == "—"  # zero-shot / coop
    assert "## Failed cells" in first.out and f"report: {out / 'report.md'}" in first.out
    second = kmat_main(*args)  # retried next time, the finished cell read back
    assert second.code == 1
    assert re.search(r"phantom / zeroshot .*done \(read back\)", second.err)
    assert re.search(rf"cell {failed[0]} .*FAILED", second.err)
