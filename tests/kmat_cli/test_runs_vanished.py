"""A run folder deleted while a command works on it is never recreated: ``kmat train``, ``kmat evaluate``
and ``kmat export`` fail with one line saying it vanished, and leave no folder behind."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from faults import SHORT, assert_error, cli, custom_task, run_folders, train_args

from kmat_cli import export, scoring, train

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


# ------------------------------------------------------------------------------- a run folder that vanishes
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_run_folder_deleted_during_training_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Deleting (or replacing) the run folder after the first epoch: exit 1 naming the folder, and the
    folder is not recreated (nor does the replacement get any of the run's files)."""
    real = train.Trainer.save

    def save(self: train.Trainer) -> None:
        real(self)
        if self.epoch == 1:
            shutil.rmtree(self.folder)
            if how == "replaced":
                self.folder.mkdir()

    monkeypatch.setattr(train.Trainer, "save", save)
    out = tmp_path / "runs"
    result = cli("train", *SHORT, "--out", out)
    folder = out / "train" / "phantom-kmat-s1-1"
    assert_error(result, folder, "vanished during training", code=1, notes=True)
    if how == "deleted":
        assert not folder.exists(), f"the run folder was recreated: {sorted(folder.iterdir())}"
    else:
        assert sorted(folder.iterdir()) == []
