"""``make demo``: side-by-side tables (shipped and partial low-end descriptions) of zero-shot, description
prototypes, CoOp and K-MaT whose numbers are the cells' metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from repo_paths import REPO

REGIMES = ("shipped", "partial")
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
    headings = [lines[i - 2] for i in tables]
    assert headings[:2] == [f"### phantom (knowledge.regime={k})" for k in REGIMES], r.stdout
    assert lines[-3].startswith("Full 3-seed reports: docs/benchmark-phantom/report.md")
    assert lines[-2].startswith("kmat is installed in .venv")
    assert lines[-1].startswith("Next: kmat data sample")
    metrics = {}
    for spec in (out / "cells").glob("*/cell.json"):
        cell = json.loads(spec.read_text())
        (found,) = spec.parent.glob("train/*/metrics.json")
        (cfg,) = spec.parent.glob("train/*/config.yaml")
        regime = yaml.safe_load(cfg.read_text())["knowledge"]["regime"]
        metrics[(cell["flags"]["method.name"], regime)] = json.loads(found.read_text())
    for regime, start in zip(REGIMES, tables, strict=False):
        header = [c.strip() for c in lines[start].strip("|").split("|")][1:]
        assert header == list(COLUMNS)
        body = lines[start + 2 : start + 5]
        assert [row.split("|")[1].strip() for row in body] == ["Hi", "Lo", "H"]
        for row, key in zip(body, ("hi", "lo", "H"), strict=True):
            cells = [c.strip().replace("*", "").replace(" (n=1)", "") for c in row.strip("|").split("|")][1:]
            for label, cell in zip(COLUMNS, cells, strict=True):
                method = COLUMNS[label]
                # zero-shot and CoOp read no descriptions: one cell serves both regimes
                m = metrics.get((method, regime)) or metrics[(method, "shipped")]
                acc, f1 = cell.removesuffix(")").split(" (")
                assert float(acc.split(" ± ")[0]) == pytest.approx(100 * m[key]["accuracy"], abs=0.051)
                assert float(f1.split(" ± ")[0]) == pytest.approx(100 * m[key]["macro_f1"], abs=0.051)
