"""The one reader of descriptions files: both of its users (training's ``load_descriptions`` and describe's
``read_document``) accept the same files and refuse the same faults with a one-line error naming the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kmat_cli.api import DESCRIPTIONS_FORMAT, load_descriptions
from kmat_cli.app import main
from kmat_cli.descriptions import read_document
from kmat_cli.errors import UsageError

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
