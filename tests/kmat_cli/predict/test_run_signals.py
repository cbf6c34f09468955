"""``kmat predict`` stopped from outside: SIGKILL leaves no decoding worker behind, SIGTERM stops it like
Ctrl-C, a closed pipe ends it with exit 141; the rows written so far stay whole."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faults import KMAT, csv_rows, env, png
from processes import children, wait_gone

pytestmark = pytest.mark.usefixtures("no_progress")


def _busy_predict(tmp_path: Path, prompts: Path) -> tuple[subprocess.Popen, Path, set[int]]:
    """A real ``kmat predict`` with two decoding workers on 400 images, waited for until its workers are
    running and it has written rows; returns the process, its output and its workers' pids. Batches of 16
    images (2.4 MB of pixels each) fill the pipe to the parent: a worker left behind blocks on it for
    ever, even past the DataLoader's own check of its parent."""
    src = png(tmp_path / "src.png", 0, size=300)
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in range(400):
        (scans / f"{i:04d}.png").symlink_to(src)
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(
        [KMAT, "predict", scans, "--embeddings", prompts, "--workers", "2", "--batch-size", "16", "-o", out,
         "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= children(proc.pid)
        if len(workers) >= 2 and out.exists() and out.read_bytes().count(b"\n") >= 17:
            break
        time.sleep(0.02)
    assert proc.poll() is None and len(workers) >= 2, "predict finished before it could be killed mid-run"
    return proc, out, workers


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find processes")
def test_sigkilled_predict_leaves_no_workers(tmp_path: Path, prompts: Path) -> None:
    proc, out, workers = _busy_predict(tmp_path, prompts)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)  # returns only once no worker holds the pipes any more
        assert proc.returncode == -signal.SIGKILL
        assert not wait_gone(workers, 5), "decoding workers outlived their SIGKILLed parent"
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    rows = csv_rows(out.read_bytes())
    assert out.read_bytes().endswith(b"\n") and all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find processes")
def test_sigterm_stops_predict_like_ctrl_c(tmp_path: Path, prompts: Path) -> None:
    """SIGTERM: a clean stop as on Ctrl-C (workers shut down, the rows so far kept whole, the summary line),
    exit code 143 (128 + SIGTERM)."""
    proc, out, workers = _busy_predict(tmp_path, prompts)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert not wait_gone(workers, 5)
    finally:
        proc.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    lines = err.decode().strip().splitlines()
    assert "Traceback" not in err.decode() and lines[-1] == "kmat: terminated"
    assert lines[-2].startswith("kmat: predict interrupted after")
    data = out.read_bytes()
    rows = csv_rows(data)
    assert data.endswith(b"\n") and 16 <= len(rows) - 1 < 400 and all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.slow
def test_predict_into_a_closed_pipe_exits_141_quietly(tmp_path: Path, prompts: Path) -> None:
    """``kmat predict ... | head -1``: the reader leaves after one line; predict stops with exit 141 (as a
    process ended by SIGPIPE), its workers gone, and stderr holds no traceback or "Exception ignored"."""
    scans = tmp_path / "scans"
    for i in range(300):
        png(scans / f"{i:03d}.png", i, size=32)
    cmd = f"{KMAT} predict {scans} --embeddings {prompts} --workers 2 --batch-size 2 | head -1"
    proc = subprocess.run(
        ["bash", "-c", cmd + "; echo ${PIPESTATUS[0]} >&2"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert proc.stdout.startswith("path,frame,label,") and proc.stdout.count("\n") == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "141", proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert lines[-2].startswith("kmat: predict interrupted after")
