"""``make demo``: one side-by-side table of zero-shot, CoOp and K-MaT whose numbers are the cells' metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLUMNS = {"Zero-shot": "zeroshot", "Descriptions": "descriptions", "CoOp": "coop", "K-MaT": "kmat"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_prints_one_table_equal_to_the_cells_metrics(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "KMAT_NO_PROGRESS": "1"}
    args = ["make", "-s", "demo", f"DEMO_OUT={out}", "DEMO_FLAGS=--epochs 1 --shots 2"]
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    tables = [i for i, line in enumerate(lines) if line.startswith("| |")]
    assert len(tables) == 1, r.stdout
    assert lines[-1] == "Full 3-seed report (methods and K-MaT ablation): docs/benchmark-phantom/report.md"
    header = [c.strip() for c in lines[tables[0]].strip("|").split("|")][1:]
    assert header == list(COLUMNS)
    metrics = {}
    for spec in (out / "cells").glob("*/cell.json"):
        method = json.loads(spec.read_text())["flags"]["method.name"]
        (found,) = spec.parent.glob("train/*/metrics.json")
        metrics[method] = json.loads(found.read_text())
    body = lines[tables[0] + 2 : tables[0] + 5]
    assert [row.split("|")[1].strip() for row in body] == ["Hi", "Lo", "H"]
    for row, key in zip(body, ("hi", "lo", "H"), strict=True):
        cells = [c.strip().replace("*", "").replace(" (n=1)", "") for c in row.strip("|").split("|")][1:]
        for label, cell in zip(COLUMNS, cells, strict=True):
            m = metrics[COLUMNS[label]][key]
            acc, f1 = cell.removesuffix(")").split(" (")
            assert float(acc.split(" ± ")[0]) == pytest.approx(100 * m["accuracy"], abs=0.051)
            assert float(f1.split(" ± ")[0]) == pytest.approx(100 * m["macro_f1"], abs=0.051)
