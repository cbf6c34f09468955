"""The one reader of descriptions files: both of its users (training's ``load_descriptions`` and describe's
``read_document``) accept the same files and refuse the same faults with a one-line error naming the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults import CLASSES as TASK_CLASSES
from faults import assert_error, assert_no_finished_runs, assert_no_runs, cli, custom_task, train_args

from kmat_cli import describe as lib
from kmat_cli.api import DESCRIPTIONS_FORMAT, load_descriptions
from kmat_cli.app import main
from kmat_cli.descriptions import read_document
from kmat_cli.errors import UsageError

pytestmark = pytest.mark.usefixtures("no_progress")

CLASSES = ["mass", "cyst"]
V1 = {"format": DESCRIPTIONS_FORMAT, "provenance": {"source": "hand"}}
GOOD = {c: {"hi": [f"{c} hi"], "lo": [f"{c} lo"]} for c in CLASSES}

READERS: dict[str, Callable[[Path], Any]] = {
    "load_descriptions": lambda path: load_descriptions(path, CLASSES),
    "read_document": read_document,
}

FAULTS = {
    "unknown format": (
        {"format": "kmat.descriptions/v2", "classes": GOOD},
        "unknown format 'kmat.descriptions/v2'",
    ),
    "v1 without classes": ({**V1, **GOOD}, "'classes' must be an object"),
    "provenance not an object": (
        {**V1, "provenance": "me", "classes": GOOD},
        "'provenance' must be an object",
    ),
    "a number among texts": (
        {**V1, "classes": {**GOOD, "cyst": {"hi": ["round", 3], "lo": ["c lo"]}}},
        "class 'cyst', modality 'hi': description 2 is 3, not a string",
    ),
    "a blank text": (
        {**V1, "classes": {**GOOD, "mass": {"hi": ["m hi"], "lo": ["m lo", "  "]}}},
        "class 'mass', modality 'lo': description 2 is blank",
    ),
    "a bare null among texts": (
        {"mass": ["a", None], "cyst": ["b"]},
        "class 'mass', modality 'hi': description 2",
    ),
    "an unknown modality": (
        {**V1, "classes": {**GOOD, "mass": {"hi": ["a"], "lo": ["b"], "mid": ["c"]}}},
        "class 'mass' has an unknown modality 'mid'; use hi, lo",
    ),
    "an empty list": (
        {**V1, "classes": {**GOOD, "cyst": {"hi": [], "lo": ["b"]}}},
        "class 'cyst' has no descriptions",
    ),
    "a class that is a string": (
        {**V1, "classes": {**GOOD, "cyst": "round"}},
        "class 'cyst' must map modalities",
    ),
    "not an object": (["mass", "cyst"], "expected a JSON object"),
}


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fault", FAULTS)
def test_both_readers_refuse_the_same_faults(tmp_path: Path, reader: str, fault: str) -> None:
    doc, needle = FAULTS[fault]
    path = _write(tmp_path / "d.json", doc)
    with pytest.raises(UsageError) as info:
        READERS[reader](path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and needle in message and "\n" not in message


@pytest.mark.parametrize("reader", READERS)
def test_a_folder_in_place_of_the_file_is_a_usage_error(tmp_path: Path, reader: str) -> None:
    with pytest.raises(UsageError, match=r"cannot read descriptions"):
        READERS[reader](tmp_path)


def test_both_forms_read_the_same(tmp_path: Path) -> None:
    """The bare form counts for both modalities; texts are stripped for training, kept as written in the
    document (so that a merge writes back what it read); classes the task lacks are ignored."""
    bare = _write(tmp_path / "bare.json", {"mass": [" m "], "cyst": ["c"], "other": ["o"]})
    v1 = _write(
        tmp_path / "v1.json",
        {**V1, "classes": {"mass": {"hi": [" m "], "lo": [" m "]}, "cyst": {"hi": ["c"], "lo": ["c"]}}},
    )
    want = {"hi": {"mass": ["m"], "cyst": ["c"]}, "lo": {"mass": ["m"], "cyst": ["c"]}}
    assert load_descriptions(bare, CLASSES) == load_descriptions(v1, CLASSES) == want
    assert (
        read_document(bare)["classes"]["mass"]
        == read_document(v1)["classes"]["mass"]
        == {"hi": [" m "], "lo": [" m "]}
    )
    assert read_document(v1)["provenance"] == {"source": "hand"}


def test_describe_merge_refuses_a_faulty_file_before_any_request(
    tmp_path: Path, fake_task: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the entry point: one line, exit code 2; a folder given as --merge no longer crashes."""
    monkeypatch.chdir(tmp_path)
    bad = _write(tmp_path / "bad.json", FAULTS["a number among texts"][0])
    for target, needle in ((bad, "description 2 is 3, not a string"), (tmp_path, "cannot read descriptions")):
        args = [
            "describe",
            "--task",
            fake_task,
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--merge",
            str(target),
        ]
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("how", ["flag", "task-file"])
def test_descriptions_written_for_another_class_list(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "task"
    other = {"format": "kmat.descriptions/v1", "classes": {"nevus": {"hi": ["a"], "lo": ["b"]}}}
    (folder / "d.json").parent.mkdir(parents=True)
    (folder / "d.json").write_text(json.dumps(other), encoding="utf-8")
    if how == "flag":
        task = custom_task(folder, per_split={"train": 2})
        result = cli(*train_args(task, tmp_path / "runs", "--descriptions", folder / "d.json"))
    else:
        task = custom_task(folder, per_split={"train": 2}, descriptions="d.json")
        result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, folder / "d.json", "no descriptions for class 'smooth nodule'")
    assert_no_runs(tmp_path / "runs")


# ----------------------------------------------------------------------- descriptions with missing classes
DESCRIPTION_FAULTS = [
    ({"smooth nodule": ["a round thing"]}, "no descriptions for class 'spiculated mass'"),
    (
        {"format": "kmat.descriptions/v1", "classes": {"smooth nodule": {"hi": ["a"], "lo": ["b"]}}},
        "no descriptions for class 'spiculated mass'",
    ),
    (
        {"format": "kmat.descriptions/v1", "classes": {c: {"hi": ["a"]} for c in TASK_CLASSES}},
        "class 'smooth nodule' has no descriptions for modality 'lo'",
    ),
    ({c: [] for c in TASK_CLASSES}, "class 'smooth nodule' has no descriptions"),
    ({c: ["  ", ""] for c in TASK_CLASSES}, "class 'smooth nodule' has no descriptions"),
    ({c: [3, None] for c in TASK_CLASSES}, "class 'smooth nodule' has no descriptions"),
    (["smooth nodule", "spiculated mass"], "expected a JSON object"),
    ("{not json", "not valid JSON"),
    (None, "descriptions file not found"),
]


@pytest.mark.parametrize(("doc", "needle"), DESCRIPTION_FAULTS)
def test_descriptions_file_faults(tmp_path: Path, doc: object, needle: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2})
    path = tmp_path / "d.json"
    if isinstance(doc, str):
        path.write_text(doc)
    elif doc is not None:
        path.write_text(json.dumps(doc))
    result = cli(*train_args(task, tmp_path / "runs", "--descriptions", path))
    assert_error(result, path, needle)
    assert_no_runs(tmp_path / "runs")
    assert_no_finished_runs(tmp_path / "runs")


# ---------------------------------------------------------------------------------------------- documents
def test_read_document_expands_the_bare_form(tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"mass": ["a"], "cyst": ["b"]}))
    doc = lib.read_document(bare)
    assert doc["format"] == DESCRIPTIONS_FORMAT
    assert doc["classes"]["cyst"] == {"hi": ["b"], "lo": ["b"]}
    assert doc["provenance"] == {"source": "file bare.json"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": DESCRIPTIONS_FORMAT, "classes": {"mass": {"hi": "not a list"}}}))
    with pytest.raises(UsageError, match=r"bad\.json: class 'mass' must map modalities to lists"):
        lib.read_document(bad)


def test_merge_documents() -> None:
    base = {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": {"tool": "kmat describe", "model": "old", "merged": [{"source": "hand"}]},
        "classes": {"mass": {"hi": ["m hi"], "lo": ["m lo"]}, "cyst": {"hi": ["c hi"], "lo": ["c lo"]}},
    }
    new = {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": {"model": "new"},
        "classes": {"mass": {"lo": ["new"]}},
    }
    merged = lib.merge_documents(base, new)
    assert merged["classes"] == {
        "mass": {"hi": ["m hi"], "lo": ["new"]},
        "cyst": {"hi": ["c hi"], "lo": ["c lo"]},
    }
    assert merged["provenance"] == {
        "model": "new",
        "merged": [{"tool": "kmat describe", "model": "old"}, {"source": "hand"}],
    }
    assert base["classes"]["mass"]["lo"] == ["m lo"]  # inputs untouched
