"""Text from files and arguments never reaches the terminal raw: control characters (ESC, BEL, ...) and
bidirectional overrides in messages are shown as escapes (``\\x1b``), wherever the message comes from, and
class names holding them are refused by the task-file and descriptions readers, naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults import assert_error, cli, custom_task, run_folders, train_args

from kmat_cli import progress
from kmat_cli.errors import printable

pytestmark = pytest.mark.usefixtures("no_progress")

# sets the terminal title, rings the bell, clears the screen, reverses the text that follows
HOSTILE = "nevus\x1b]0;pwned\x07\x1b[2J\u202eevil"
RAW = ("\x1b", "\x07", "\u202e")


def _clean(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


def test_printable_escapes_every_control_character() -> None:
    assert printable(HOSTILE) == "nevus\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil"
    assert printable("plain text, é and 中文") == "plain text, é and 中文"


def test_a_task_file_class_name_with_control_characters_is_refused(tmp_path: Path) -> None:
    task = custom_task(tmp_path / "task", classes=["round", "spiky"])
    doc = task.read_text(encoding="utf-8").replace("- spiky", f"- {json.dumps(HOSTILE)}")
    task.write_text(doc, encoding="utf-8")
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, str(task), "control character \\x1b")
    _clean(result.err)
    assert not run_folders(tmp_path / "runs")


@pytest.mark.parametrize("form", ["bare", "v1"])
def test_a_descriptions_class_name_with_control_characters_is_refused(tmp_path: Path, form: str) -> None:
    classes = ["smooth nodule", "spiculated mass"]
    task = custom_task(tmp_path / "task", classes=classes)
    texts = {name: ["a finding seen on the scan"] for name in [*classes, HOSTILE]}
    if form == "v1":
        doc: dict = {
            "format": "kmat.descriptions/v1",
            "classes": {k: {"hi": v, "lo": v} for k, v in texts.items()},
        }
    else:
        doc = texts
    descriptions = tmp_path / "d.json"
    descriptions.write_text(json.dumps(doc), encoding="utf-8")
    result = cli(*train_args(task, tmp_path / "runs", "--descriptions", descriptions))
    assert_error(result, str(descriptions), "control character")
    _clean(result.err)


def test_messages_escape_control_characters_wherever_they_come_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli("train", "--task", HOSTILE, "--out", tmp_path / "runs")  # an unknown task, named back
    assert_error(result, "\\x07")
    _clean(result.err)
    progress.warn(f"class {HOSTILE}")
    err = capsys.readouterr().err
    assert err == f"kmat: warning: class {printable(HOSTILE)}\n"
