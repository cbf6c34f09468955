"""``kmat train``'s output for scripts and logs: the run folder on stdout (or the run and its metrics with
``--json``), one line per epoch and the scores table on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kmat_runner import cli
from short_runs import SHORT_FLAGS


# -------------------------------------------------------------- 5. + 10. output for scripts and logs
def test_train_prints_the_run_folder_on_stdout_and_epochs_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "runs"
    code, stdout, stderr = cli("train", "--task", "phantom", "--seed", "2", "--out", out, *SHORT_FLAGS)
    assert code == 0, stderr
    run = out / "train" / "phantom-kmat-s2-1"  # the seed is in the name
    assert stdout == f"{run}\n" and (run / "metrics.json").is_file()
    epochs = [line for line in stderr.splitlines() if line.startswith("kmat: epoch ")]
    assert len(epochs) == 1 and epochs[0].startswith("kmat: epoch 1/1 loss ")
    assert " lr " in epochs[0] and epochs[0].endswith(" s")
    assert "H (harmonic)" in stderr  # the table goes to stderr, beside the progress
    code, stdout, _ = cli("train", "--task", "phantom", "--seed", "2", "--out", out, "--json", *SHORT_FLAGS)
    result = json.loads(stdout)
    assert code == 0 and result["run"] == str(out / "train" / "phantom-kmat-s2-2")
    assert result["metrics"] == json.loads((out / "train" / "phantom-kmat-s2-2" / "metrics.json").read_text())
    code, stdout, _ = cli("evaluate", run, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["run"] == str(run) and result["metrics"]["format"] == "kmat.metrics/v1"
