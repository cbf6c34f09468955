"""Paths written in a task file or in its data lists cannot leave the task's folder or data root; symbolic
links inside the data root are followed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from faults import assert_error, cli, custom_task, png, run_folders, status, train_args

pytestmark = pytest.mark.usefixtures("no_progress")


# --------------------------------------------------------------------------------------------- path escapes
ESCAPES = {
    "yaml-data-dotdot": ({"data": {"hi": "../../../../etc", "lo": "lo"}}, "data.hi", "escapes"),
    "yaml-data-absolute": ({"data": {"hi": "/etc", "lo": "lo"}}, "data.hi", "must be relative"),
    "yaml-data-json-abs": ({"data": "/etc/passwd"}, "data", "must be relative"),
    "yaml-descriptions-dotdot": ({"descriptions": "../../etc/passwd"}, "descriptions", "escapes"),
    "yaml-descriptions-abs": ({"descriptions": "/etc/passwd"}, "descriptions", "must be relative"),
    "yaml-config-out": ({"config": {"out": "/tmp/elsewhere"}}, "config.out", "pass --out"),
    "yaml-config-descriptions": ({"config": {"descriptions": "/etc/passwd"}}, "config.descriptions", ""),
    "yaml-config-task": ({"config": {"task": {"name": "chest"}}}, "config.task", ""),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_task_file_paths_cannot_leave_its_folder(tmp_path: Path, case: str) -> None:
    spec, key, needle = ESCAPES[case]
    task = custom_task(tmp_path / "task", per_split={"train": 2}, **spec)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, task, key, needle)
    assert not run_folders(tmp_path / "runs")


LISTED = [
    "../../etc/passwd",
    "/etc/passwd",
    "img/../../secret.png",
    "C:/Windows/win.ini",
    "img\\..\\..\\x.png",
]


@pytest.mark.parametrize("entry", LISTED)
@pytest.mark.parametrize("kind", ["csv", "json", "prepared"])
def test_listed_paths_cannot_leave_the_data_root(tmp_path: Path, kind: str, entry: str) -> None:
    folder = tmp_path / "task"
    png(folder / "img" / "a.png", 1)
    extra: list[str] = []
    if kind == "csv":
        (folder / "hi.csv").write_text(f"path,label,split\nimg/a.png,0,train\n{entry},1,train\n")
        task: Any = custom_task(folder, data={"hi": "hi.csv", "lo": "hi.csv"})
        needles = [folder / "hi.csv", "row 3"]
    else:
        doc = {"train": [["img/a.png", 0], [entry, 1]], "val": [], "test": []}
        if kind == "json":
            (folder / "splits.json").write_text(json.dumps({"hi": doc, "lo": doc}))
            task = custom_task(folder, data="splits.json")
        else:  # a built-in task's prepared data root (kmat data prepare writes splits.json)
            (folder / "splits.json").write_text(
                json.dumps({"format": "kmat.splits/v1", "hi": doc, "lo": doc})
            )
            task, extra = "chest", ["--set", f"task.root={folder}"]
        needles = [folder / "splits.json", "hi.train[1]"]
    result = cli(*train_args(task, tmp_path / "runs", *extra))
    line = assert_error(result, *needles)
    assert "data root" in line and repr(entry)[1:-1].replace("\\\\", "\\") in line.replace("\\\\", "\\")
    assert not run_folders(tmp_path / "runs")


def test_symbolic_links_inside_the_data_root_are_followed(tmp_path: Path) -> None:
    """The choice: links are followed (``kmat data prepare`` itself links images into the root, and the
    owner of a data root decides what it links to); only the paths *written* in task files are confined."""
    outside = tmp_path / "elsewhere"
    png(outside / "x.png", 7)
    png(outside / "class-b" / "0.png", 8)
    png(outside / "class-b" / "1.png", 9)
    task = custom_task(tmp_path / "task", per_split={"train": 2})
    first = tmp_path / "task" / "hi" / "train" / "smooth nodule" / "0.png"
    first.unlink()
    first.symlink_to(outside / "x.png")
    linked = tmp_path / "task" / "hi" / "train" / "spiculated mass"
    shutil.rmtree(linked)
    linked.symlink_to(outside / "class-b", target_is_directory=True)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    [run] = run_folders(tmp_path / "runs")
    assert status(run) == "finished"
