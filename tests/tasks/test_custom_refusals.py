"""A custom task whose file, data or folders are wrong (types, unknown keys, class lists that differ, labels
outside the class list, empty folders) is one line naming the file or key, exit 2, and no run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faults import CLASSES, assert_error, assert_no_runs, cli, custom_task, png, run_folders, train_args

from kmat_cli import runs

pytestmark = pytest.mark.usefixtures("no_progress")


WRONG_TYPED_TASK = [
    ({"class_names": "smooth nodule, spiculated mass"}, "'class_names'"),
    ({"class_names": ["only one"]}, "'class_names'"),
    ({"class_names": ["a", 3]}, "'class_names'"),
    ({"class_names": ["a", "a"]}, "duplicates"),
    ({"modalities": ["hi", "lo"]}, "'modalities'"),
    ({"modalities": {"hi": "CT"}}, "'modalities'"),
    ({"name": "has space"}, "'name'"),
    ({"data": 3}, "'data'"),
    ({"data": {"hi": 3, "lo": "lo"}}, "'data.hi'"),
    ({"data": {"hi": "hi"}}, "'data'"),
    ({"config": [1, 2]}, "'config'"),
    ({"config": {"train": {"epochs": "many"}}}, "train.epochs"),
]


@pytest.mark.parametrize(("spec", "needle"), WRONG_TYPED_TASK)
def test_wrong_typed_task_file_names_the_key(tmp_path: Path, spec: dict, needle: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2}, **spec)
    result = cli("train", "--task", task, "--out", tmp_path / "runs", "--no-evaluate")
    line = assert_error(result, needle)
    if needle != "train.epochs":  # the task's config layer is checked with the run config, by key
        assert str(task) in line
    assert_no_runs(tmp_path / "runs")


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("clas_names", "'clas_names' (did you mean 'class_names'?)"),
        ("modality", "'modality'"),
        ("dat", "'dat'"),
    ],
)
def test_unknown_task_file_keys_are_refused(tmp_path: Path, key: str, needle: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2}, **{key: "x"})
    result = cli("train", "--task", task, "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, task, needle)
    assert_no_runs(tmp_path / "runs")


# -------------------------------------------------------------------------------- class lists that differ
def _split_json_task(folder: Path, doc: dict) -> Path:
    png(folder / "img" / "a.png", 1)
    png(folder / "img" / "b.png", 2)
    (folder / "splits.json").parent.mkdir(parents=True, exist_ok=True)
    (folder / "splits.json").write_text(json.dumps(doc), encoding="utf-8")
    return custom_task(folder, data="splits.json")


GOOD_SPLIT = {"train": [["img/a.png", 0, "smooth nodule"], ["img/b.png", 1, "spiculated mass"]]}


@pytest.mark.parametrize(
    "case",
    ["folder-class", "json-class-names", "json-entry-name", "csv-label-name", "prepared-task"],
)
def test_class_list_of_the_data_differs_from_the_task(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "task"
    extra: list[str] = []
    if case == "folder-class":
        task = custom_task(folder, per_split={"train": 2})
        shutil.move(folder / "hi" / "train" / "spiculated mass", folder / "hi" / "train" / "ring lesion")
        needles = [folder / "hi" / "train" / "ring lesion", "not one of the classes"]
    elif case == "json-class-names":
        task = _split_json_task(
            folder, {"class_names": ["nevus", "melanoma"], "hi": GOOD_SPLIT, "lo": GOOD_SPLIT}
        )
        needles = [folder / "splits.json", "['nevus', 'melanoma']"]
    elif case == "json-entry-name":
        bad = {"train": [["img/a.png", 0, "spiculated mass"], ["img/b.png", 1, "smooth nodule"]]}
        task = _split_json_task(folder, {"hi": bad, "lo": GOOD_SPLIT})
        needles = [folder / "splits.json", "hi.train[0]", "does not match label 0"]
    elif case == "csv-label-name":
        png(folder / "img" / "a.png", 1)
        (folder / "hi.csv").write_text("path,label,split\nimg/a.png,melanoma,train\n", encoding="utf-8")
        task = custom_task(folder, data={"hi": "hi.csv", "lo": "hi.csv"})
        needles = [folder / "hi.csv", "row 2", "label 'melanoma'"]
    else:  # a built-in task over a data root prepared for another class list
        root = tmp_path / "chest-root"
        png(root / "a.png", 1)
        entries = {"train": [["a.png", 0, "x"]], "val": [], "test": []}
        doc = {"format": "kmat.splits/v1", "class_names": ["x", "y"], "hi": entries, "lo": entries}
        (root / "splits.json").write_text(json.dumps(doc), encoding="utf-8")
        task = "chest"
        extra = ["--set", f"task.root={root}"]
        needles = [root / "splits.json", "prepared for classes ['x', 'y']"]
    result = cli(*train_args(task, tmp_path / "runs", *extra))
    assert_error(result, *needles)
    assert_no_runs(tmp_path / "runs")


# ------------------------------------------------------------------------------ labels outside the class list
@pytest.mark.parametrize("label", [2, 7, -1, "1", True, 1.5, None])
def test_json_labels_outside_the_class_list(tmp_path: Path, label: object) -> None:
    bad = {"train": [["img/a.png", 0], ["img/b.png", label]]}
    task = _split_json_task(tmp_path / "task", {"hi": bad, "lo": GOOD_SPLIT})
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, tmp_path / "task" / "splits.json", "hi.train[1]", f"label {label!r}")
    assert_no_runs(tmp_path / "runs")


@pytest.mark.parametrize("label", ["2", "-1", "nevus", ""])
def test_csv_labels_outside_the_class_list(tmp_path: Path, label: str) -> None:
    folder = tmp_path / "task"
    png(folder / "img" / "a.png", 1)
    (folder / "hi.csv").write_text(f"path,label,split\nimg/a.png,0,train\nimg/a.png,{label},train\n")
    task = custom_task(folder, data={"hi": "hi.csv", "lo": "hi.csv"})
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, folder / "hi.csv", "row 3", f"label '{label}'")
    assert_no_runs(tmp_path / "runs")


# -------------------------------------------------------------------------------------------- empty folders
@pytest.mark.parametrize("case", ["data-folder", "class-folders", "one-class", "lo-folder"])
def test_empty_folders(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "task"
    task = custom_task(folder, per_split={"train": 2, "test": 1})
    args = train_args(task, tmp_path / "runs")
    if case == "data-folder":
        shutil.rmtree(folder / "hi")
        (folder / "hi").mkdir()
        needles = [folder / "hi", "empty data folder"]
    elif case == "class-folders":
        for name in CLASSES:
            shutil.rmtree(folder / "hi" / "train" / name)
            (folder / "hi" / "train" / name).mkdir()
        needles = ["class 'smooth nodule' has no high-end training images"]
    elif case == "one-class":
        shutil.rmtree(folder / "hi" / "train" / CLASSES[1])
        needles = ["class 'spiculated mass' has no high-end training images"]
    else:  # the low-end folder is read by evaluation only: found before the run starts? no, at evaluation
        shutil.rmtree(folder / "lo")
        (folder / "lo").mkdir()
        args = [a for a in args if a != "--no-evaluate"]
        result = cli(*args)
        assert_error(result, folder / "lo", "empty data folder", notes=True)
        [run] = run_folders(tmp_path / "runs")
        assert runs.open_run(run).status == "failed"
        return
    assert_error(cli(*args), *needles)
    assert_no_runs(tmp_path / "runs")


def test_data_check_on_an_empty_folder(tmp_path: Path) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 1})
    shutil.rmtree(tmp_path / "task" / "lo")
    (tmp_path / "task" / "lo").mkdir()
    assert_error(cli("data", "check", task), tmp_path / "task" / "lo", "empty data folder")
