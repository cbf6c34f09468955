"""``kmat benchmark`` and ``kmat tune`` name their default folder after the task's name, never its path: a
task file given by an absolute path or through ``..`` still lands under ``runs/benchmark/`` and
``runs/tune/`` of the working folder; a folder holding another grid is never taken over."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import cli, custom_task
from short_runs import SHORT_FLAGS

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture
def task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A task file named ``faulty`` outside the working folder ``tmp_path/work``."""
    path = custom_task(tmp_path / "elsewhere" / "tasks", per_split={"train": 2, "val": 1, "test": 1})
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return path


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_benchmark_default_folder_of_a_task_file_by_absolute_path(task: Path, tmp_path: Path) -> None:
    before = _files(tmp_path / "elsewhere")
    result = cli(
        "benchmark",
        "--task",
        task.resolve(),
        "--methods",
        "zeroshot",
        "--seeds",
        "1",
        "--shots",
        "1",
        "--no-plots",
    )
    assert result.code == 0, result.err
    assert (tmp_path / "work" / "runs" / "benchmark" / "faulty" / "benchmark.json").is_file()
    assert _files(tmp_path / "elsewhere") == before  # nothing written beside the task file


def test_tune_default_folder_of_a_task_file_through_dotdot(task: Path, tmp_path: Path) -> None:
    before = _files(tmp_path / "elsewhere")
    relative = Path("..") / "elsewhere" / "tasks" / task.name
    args = ["--method", "coop", "--grid", "train.lr=0.002", "--epochs", "1", "--shots", "1"]
    result = cli("tune", "--task", relative, *args, "--set", "train.threads=1")
    assert result.code == 0, result.err
    assert (tmp_path / "work" / "runs" / "tune" / "faulty-coop" / "best.yaml").is_file()
    assert _files(tmp_path / "elsewhere") == before
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------- 9. benchmark folders
def test_a_benchmark_folder_is_never_taken_over_by_another_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    grid = ["benchmark", "--task", "phantom", "--methods", "zeroshot", "--seeds", "1", "--no-plots"]
    assert cli(*grid, *SHORT_FLAGS[:4])[0] == 0
    first = tmp_path / "runs/benchmark/phantom"
    report = (first / "report.md").read_bytes()
    code, _, stderr = cli(*grid, "--shots", "4", "--epochs", "1", "--out", first)
    assert code == 2 and "holds another benchmark" in stderr and (first / "report.md").read_bytes() == report
    code, stdout, stderr = cli(*grid, "--shots", "4", "--epochs", "1")
    second = Path("runs/benchmark/phantom-2")
    assert code == 0 and f"writing to {second}" in stderr and f"report: {second / 'report.md'}" in stdout
    assert (first / "report.md").read_bytes() == report
    code, stdout, _ = cli(*grid, *SHORT_FLAGS[:4])  # the first grid again: resumed in place
    assert code == 0 and f"report: {Path('runs/benchmark/phantom/report.md')}" in stdout
