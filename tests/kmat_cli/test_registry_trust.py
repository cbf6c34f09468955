"""Files never name code: a ``module:attr`` plugin name read from a file (task file, ``--config`` file, run
folder config, benchmark request) is refused before anything is imported, unless KMAT_TRUST_CODE=1; the
command line's own ``--method pkg.mod:Attr`` stays allowed.

The module named is a real one on ``sys.path`` that writes a marker file when it is imported: the marker
is how a test sees whether kmat ran the file's code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from faults import assert_error, cli, custom_task, run_folders, train_args

pytestmark = pytest.mark.usefixtures("no_progress")

MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from kmat_cli.methods.zeroshot import ZeroShot as Method
"""


@pytest.fixture
def plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> tuple[str, Path]:
    """(``module:Method`` of a fresh module that writes a marker when imported, the marker's path)."""
    name = f"kmat_marker_{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')}"
    folder = tmp_path / "plugins"
    folder.mkdir()
    marker = tmp_path / "imported.txt"
    (folder / f"{name}.py").write_text(MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("KMAT_TRUST_CODE", raising=False)
    yield f"{name}:Method", marker
    sys.modules.pop(name, None)


def _refused(result: Any, source: Path | str, marker: Path) -> None:
    assert_error(result, source, "KMAT_TRUST_CODE=1")
    assert not marker.exists(), "the file's module was imported"


def test_a_task_file_may_not_name_code(tmp_path: Path, plugin: tuple[str, Path], monkeypatch) -> None:
    name, marker = plugin
    task = custom_task(tmp_path / "task", config={"backbone": {"name": "phantom"}, "method": {"name": name}})
    _refused(cli(*train_args(task, tmp_path / "runs")), task, marker)
    assert not (tmp_path / "runs").exists()
    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    assert marker.exists()


def test_a_config_file_may_not_name_code(tmp_path: Path, plugin: tuple[str, Path], monkeypatch) -> None:
    name, marker = plugin
    task = custom_task(tmp_path / "task")
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"method": {"name": name}}))
    _refused(cli(*train_args(task, tmp_path / "runs", "--config", conf)), conf, marker)
    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
    assert cli(*train_args(task, tmp_path / "runs", "--config", conf)).code == 0
    assert marker.exists()


def test_the_command_line_may_name_code(tmp_path: Path, plugin: tuple[str, Path]) -> None:
    name, marker = plugin
    task = custom_task(tmp_path / "task")
    result = cli(*train_args(task, tmp_path / "runs", "--method", name))
    assert result.code == 0, result.err
    assert marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "export", "predict", "resume"])
def test_a_run_folder_may_not_name_code(
    tmp_path: Path, plugin: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A received run folder whose config.yaml names ``module:attr``: every command that rebuilds the run
    refuses it without importing anything; with the opt-in it is imported."""
    name, marker = plugin
    task = custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})
    assert cli(*train_args(task, tmp_path / "runs", "--epochs", "1")).code == 0
    [run] = run_folders(tmp_path / "runs")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["backbone"] = {**saved["backbone"], "name": name.replace(":Method", ":Backbone")}
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    args = {
        "evaluate": ["evaluate", run],
        "export": ["export", run],
        "predict": ["predict", task.parent / "lo" / "test", "--run", run, "--workers", "0"],
        "resume": ["train", "--resume", run],
    }[command]
    if command == "resume":
        (run / "run.json").write_text(json.dumps({"status": "interrupted"}))
    _refused(cli(*args), run / "config.yaml", marker)
    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
    cli(*args)  # the module has no Backbone: the run then fails, but only after importing it
    assert marker.exists()


def test_a_benchmark_request_may_not_name_code(tmp_path: Path, plugin: tuple[str, Path]) -> None:
    name, marker = plugin
    shard = tmp_path / "shard"
    shard.mkdir()
    request = {
        "format": "kmat.benchmark/v1",
        "tasks": ["phantom"],
        "methods": ["zeroshot"],
        "seeds": [1],
        "flags": {"backbone.name": name},
        "sets": [],
    }
    (shard / "benchmark.json").write_text(json.dumps(request))
    _refused(cli("benchmark", "merge", shard, "--out", tmp_path / "merged"), shard / "benchmark.json", marker)
