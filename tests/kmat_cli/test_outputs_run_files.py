"""An output named by the user is never one of the files of the run in use: ``kmat predict --run RUN
--output RUN/config.yaml`` and ``kmat export RUN -o RUN/checkpoint-...`` are refused (exit 2, nothing
written), whatever the spelling (``..``, a link, a hard link); the run stays usable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faults import assert_error, cli, custom_task, run_folders, train_args

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(task file, finished run folder)."""
    tmp = tmp_path_factory.mktemp("run-files")
    task = custom_task(tmp / "task", per_split={"train": 2, "test": 1})
    assert cli(*train_args(task, tmp / "runs")).code == 0
    [run] = run_folders(tmp / "runs")
    return task, run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file() and p.name != ".lock"}


def _spellings(run: Path, name: str, tmp_path: Path) -> list[Path]:
    """``run/name`` directly, through ``..``, through a symbolic link and as a hard link outside."""
    link, hard = tmp_path / f"link-{name}", tmp_path / f"hard-{name}"
    link.symlink_to(run / name)
    os.link(run / name, hard)
    return [run / name, run / ".." / run.name / name, link, hard]


def test_predict_output_may_not_be_a_file_of_its_run(trained: tuple[Path, Path], tmp_path: Path) -> None:
    task, run = trained
    before = _snapshot(run)
    images = task.parent / "lo" / "test"
    for output in _spellings(run, "config.yaml", tmp_path):
        result = cli("predict", images, "--run", run, "--workers", "0", "--output", output)
        assert_error(result, output, "--output", run / "config.yaml")
    assert _snapshot(run) == before
    assert cli("evaluate", run).code == 0


def test_export_out_may_not_be_another_file_of_its_run(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    [checkpoint] = sorted(run.glob("checkpoint-*.safetensors"))
    before = _snapshot(run)
    for out in _spellings(run, checkpoint.name, tmp_path):
        assert_error(cli("export", run, "-o", out), out, "--out", checkpoint)
    assert _snapshot(run) == before
    result = cli("export", run, "-o", run / "prompts.safetensors")  # its own export file: allowed
    assert result.code == 0, result.err
