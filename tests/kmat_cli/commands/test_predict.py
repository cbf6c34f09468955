"""kmat predict through the installed `kmat` script: a full run, and a run killed with SIGKILL."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from predict_helpers import CLASSES, Model


def test_cli_run_streams_jsonl_and_reports_the_summary(
    kmat_exe: str, zoo: tuple[Path, dict[str, Any]], model: Model, tmp_path: Path
) -> None:
    root, info = zoo
    out = tmp_path / "rows.jsonl"
    proc = subprocess.run(
        [kmat_exe, "predict", str(root), "--embeddings", str(model.prompts), "--format", "jsonl",
         "--output", str(out), "--workers", "2", "--batch-size", "3", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    records = [json.loads(line) for line in out.read_text().splitlines()]
    n_rows = len(info["files"]) + sum(len(f) - 1 for f in info["frames"].values())
    assert len(records) == n_rows
    failed = [r for r in records if r["error"]]
    assert {Path(r["path"]).relative_to(root).as_posix() for r in failed} >= set(info["errors"])
    for r in records:
        if r["error"] is None:
            assert abs(sum(r["probabilities"].values()) - 1) < 1e-5 and r["label"] in CLASSES
    summary = proc.stderr.strip().splitlines()[-1]
    assert f"{n_rows - len(failed)} ok, {len(failed)} failed" in summary


@pytest.mark.slow
def test_cli_killed_run_keeps_complete_rows(kmat_exe: str, model: Model, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (1200, 1200, 3), dtype=np.uint8)).save(tmp_path / "src.png")
    folder = tmp_path / "many"
    folder.mkdir()
    n = 400
    for i in range(n):
        (folder / f"{i:04d}.png").symlink_to(tmp_path / "src.png")
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(
        [kmat_exe, "predict", str(folder), "--embeddings", str(model.prompts), "--output", str(out),
         "--batch-size", "1", "--workers", "1", "--device", "cpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 4:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    text = out.read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert text.endswith("\n") and 3 <= len(rows) - 1 < n
    assert all(len(r) == len(rows[0]) and r[2] in CLASSES for r in rows[1:])
    assert [r[0] for r in rows[1:]] == [str(folder / f"{i:04d}.png") for i in range(len(rows) - 1)]
