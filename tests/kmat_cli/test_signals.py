"""SIGTERM stops ``kmat train`` like Ctrl-C: the run says ``interrupted``, exit code 143, and one line
says how to continue it (an interrupted run resumes as a killed one does: test_runs_kill.py). A helper process
with ``ParentWatch`` dies with its SIGKILLed parent. Real processes and real signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import KMAT, custom_task, env, run_folders, status, train_args
from processes import alive, wait_gone

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


pytestmark = pytest.mark.usefixtures("no_progress")


WATCHED_WORKER = """
import multiprocessing as mp, os, sys, time
from kmat_cli.signals import ParentWatch

def work(watch):
    watch(0)
    time.sleep(120)  # a worker blocked forever, as on a queue nobody will read

if __name__ == "__main__":
    mp.set_start_method(sys.argv[2])
    child = mp.Process(target=work, args=(ParentWatch(use_prctl=sys.argv[1] == "prctl"),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find processes")
@pytest.mark.parametrize(("how", "method"), [("prctl", "fork"), ("watchdog", "fork"), ("watchdog", "spawn")])
def test_a_worker_dies_with_its_sigkilled_parent(tmp_path: Path, how: str, method: str) -> None:
    """A process with ``ParentWatch`` as its init (as predict's decoding workers have) ends within a second
    or two when its parent is SIGKILLed, with the parent-death signal and with the polling watchdog alone;
    the parent's stdout pipe then closes, so ``communicate()`` returns."""
    script = tmp_path / "watched.py"
    script.write_text(WATCHED_WORKER)
    proc = subprocess.Popen(
        [sys.executable, str(script), how, method], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env()
    )
    try:
        worker = int(proc.stdout.readline())  # type: ignore[union-attr]
        assert alive(worker)
        proc.kill()
        proc.communicate(timeout=10)
        assert not wait_gone({worker}, 5)
    finally:
        proc.kill()
        with contextlib.suppress(NameError, ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
