"""A run folder deleted while a command works on it is never recreated: ``kmat evaluate`` and ``kmat
export`` fail with one line saying it vanished (as training does), and leave no folder behind."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from faults import assert_error, cli, custom_task, run_folders, train_args

from kmat_cli import export, scoring

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    task = custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})
    assert cli(*train_args(task, tmp_path / "runs")).code == 0
    [folder] = run_folders(tmp_path / "runs")
    return folder


def _deleting(original: Any, folder: Path) -> Any:
    """``original`` that first deletes ``folder`` (someone's ``rm -r`` while the command works)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        shutil.rmtree(folder)
        return original(*args, **kwargs)

    return call


def test_evaluate_does_not_recreate_a_deleted_run(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "metrics_on_test", _deleting(scoring.metrics_on_test, run))
    assert_error(cli("evaluate", run), run, "vanished", code=1)
    assert not run.exists()


def test_export_does_not_recreate_a_deleted_run(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "prompt_file_content", _deleting(export.prompt_file_content, run))
    assert_error(cli("export", run), run, "vanished", code=1)
    assert not run.exists()
