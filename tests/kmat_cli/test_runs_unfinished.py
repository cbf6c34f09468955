"""A run that did not finish steers to ``kmat train --resume``: predict and export refuse it with that hint and
write nothing, evaluate warns with it, and the hint works as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import csv_records
from kmat_runner import cli, interrupted_run


def _interrupted(
    out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[Path, str]:
    """A run of 2 epochs stopped by Ctrl-C right after its epoch-1 checkpoint; (run folder, stderr)."""
    run, result = interrupted_run(out, monkeypatch, "--epochs", "2", "--shots", "2", "--threads", "1")
    return run, result.err


# ---------------------------------------------------------------- 5. unfinished runs steer to --resume
def test_an_unfinished_run_steers_to_resume_in_train_predict_export_and_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run, stderr = _interrupted(tmp_path / "runs", monkeypatch, capsys)
    hint = f"kmat train --resume {run}"
    assert hint in stderr and "interrupted after epoch 1 of 2" in stderr  # Ctrl-C says how to go on
    images = tmp_path / "scans"
    assert cli("data", "sample", "--out", images)[0] == 0
    for args in (
        ["predict", images, "--run", run],
        ["predict", images, "--embeddings", run],
        ["export", run],
    ):
        code, stdout, stderr = cli(*args)
        assert code == 2 and stdout == "" and hint in stderr and "unfinished run" in stderr, args
    assert not (run / "prompts.safetensors").exists()  # nothing deployable was written
    code, _, stderr = cli("evaluate", run)  # a diagnosis: allowed, with a warning line
    assert code == 0 and "kmat: warning:" in stderr and hint in stderr
    code, stdout, _ = cli("train", "--resume", run)  # the hint works as written
    assert code == 0 and stdout == f"{run}\n"
    code, stdout, _ = cli("predict", images, "--run", run)
    assert code == 0 and len(csv_records(stdout)) == 8
