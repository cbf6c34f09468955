"""SIGTERM stops ``kmat train`` like Ctrl-C: the run says ``interrupted``, exit code 143, and one line
says how to continue it (an interrupted run resumes as a killed one does: test_reliability_kill.py). A real
process and a real signal."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faults import KMAT, custom_task, env, run_folders, status, train_args

pytestmark = pytest.mark.usefixtures("no_progress")


def _default_sigint() -> None:
    """The child takes Ctrl-C as a terminal's foreground process does, even where this test runs in a
    background job (a shell without job control starts those with SIGINT ignored, and children inherit it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_training_marks_the_run_interrupted(tmp_path: Path, sig: signal.Signals) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 4, "test": 1})
    args = train_args(task, tmp_path / "runs", "--set", "train.epochs=150", "--set", "train.batch_size=1")
    proc = subprocess.Popen(
        [KMAT, *args], env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            runs = run_folders(tmp_path / "runs")
            if runs and (runs[0] / "checkpoint.json").is_file():
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    [run] = run_folders(tmp_path / "runs")
    text = err.decode()
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), text
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    said = [line for line in lines if line.startswith(f"kmat: {run}: interrupted after epoch ")]
    assert said and said[0].endswith(f"continue it with `kmat train --resume {run}`"), text
    if sig == signal.SIGTERM:
        assert lines[-1] == "kmat: terminated", text
    assert status(run) == "interrupted"
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] < 150
