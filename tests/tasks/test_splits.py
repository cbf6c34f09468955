"""The split JSON contract: safe paths, labels checked against class names, missing data -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import task_fakes as fakes
from kmat.tasks.real import Breast, Chest
from kmat.tasks.splits import safe_relpath
from kmat_runner import cli
from task_cli import run_kmat

from kmat_cli.api import UsageError

NAMES = Breast.class_names


@pytest.mark.parametrize(
    "bad", ["../x.png", "/etc/passwd", "a/../../b.png", "C:/x.png", "a\\b.png", "", 3, "hi/../../x"]
)
def test_unsafe_relpaths_are_rejected(bad) -> None:
    with pytest.raises(UsageError):
        safe_relpath(bad, "splits.json")


def test_safe_relpaths_pass() -> None:
    assert safe_relpath("hi/TIFF Images/IMG001.tif", "x") == "hi/TIFF Images/IMG001.tif"
    assert safe_relpath("lo/benign/benign (1).png", "x") == "lo/benign/benign (1).png"


def _root(tmp_path: Path, hi_train: list, **extra) -> Path:
    root = tmp_path / "root"
    fakes.image(root / "hi" / "a.png")
    split = {"train": hi_train, "val": [], "test": []}
    (root / "splits.json").write_text(json.dumps({"class_names": NAMES, "hi": split, "lo": split, **extra}))
    return root


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (["../outside.png", 0, NAMES[0]], "escapes the data root"),
        (["/tmp/abs.png", 0, NAMES[0]], "must be relative"),
        (["hi/a.png", 1, NAMES[0]], "does not match label 1"),
        (["hi/a.png", 3, NAMES[0]], "not a class index"),
        (["hi/missing.png", 0, NAMES[0]], "missing"),
        (["hi/a.png"], "expected [relpath, label, classname]"),
    ],
)
def test_bad_entries_are_one_line_usage_errors(tmp_path: Path, entry: list, message: str) -> None:
    task = Breast(root=str(_root(tmp_path, [entry])))
    with pytest.raises(UsageError) as info:
        task.split("hi", "train")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_good_entries_and_per_modality_files(tmp_path: Path) -> None:
    root = _root(tmp_path, [["hi/a.png", 2, NAMES[2]], ["hi/a.png", 1]])
    samples = Breast(root=str(root)).split("hi", "train")
    assert [(s.path, s.label) for s in samples] == [(root / "hi/a.png", 2), (root / "hi/a.png", 1)]
    (root / "splits.json").unlink()
    (root / "splits-lo.json").write_text(
        json.dumps({"train": [["hi/a.png", 0, NAMES[0]]], "valid": [], "test": []})
    )
    task = Breast(root=str(root))
    assert [s.label for s in task.split("lo", "train")] == [0] and task.split("lo", "val") == []
    with pytest.raises(UsageError, match=r"no splits\.json with 'hi' splits"):
        task.split("hi", "train")


def test_split_file_for_other_classes_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path, [])
    data = json.loads((root / "splits.json").read_text())
    data["class_names"] = list(reversed(NAMES))
    (root / "splits.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match="prepared for classes"):
        Breast(root=str(root)).split("hi", "train")


def test_default_root_follows_kmat_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMAT_DATA", str(tmp_path / "data"))
    assert Chest().root == tmp_path / "data" / "chest"
    assert Chest(root=str(tmp_path / "elsewhere")).root == tmp_path / "elsewhere"
    monkeypatch.delenv("KMAT_DATA")
    assert Chest().root.parts[-2:] == ("kmat", "chest")


def test_missing_data_exits_2_with_one_line_naming_folder_and_command(tmp_path: Path) -> None:
    result = run_kmat("data", "check", "chest", env={"KMAT_DATA": str(tmp_path / "data")})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(tmp_path / "data" / "chest") in lines[0]
    assert "kmat data prepare chest --source DIR --source-lo DIR" in lines[0]


def test_prepare_refuses_a_foreign_out_folder_and_a_missing_source(tmp_path: Path) -> None:
    fakes.make_derm7pt(tmp_path / "d7")
    out = tmp_path / "mine"
    fakes.image(out / "precious.png")
    result = run_kmat("data", "prepare", "skin2", "--source", str(tmp_path / "d7"), "--out", str(out))
    assert result.returncode == 2 and "not made by `kmat data prepare`" in result.stderr
    assert (out / "precious.png").is_file() and not (out / "splits.json").exists()
    result = cli("data", "prepare", "skin2", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.code == 2 and "no such folder" in result.err


def test_check_command_counts_a_prepared_root(tmp_path: Path, prepare_ok) -> None:
    fakes.make_derm7pt(tmp_path / "d7")
    prepare_ok("skin2", "--source", str(tmp_path / "d7"), "--out", str(tmp_path / "p"))
    result = cli("data", "check", "skin2", "--root", str(tmp_path / "p"))
    assert result.code == 0 and "all splits load" in result.output and "melanoma" in result.output
