"""A prepared layout's own files (``splits.json``, the marker) are written through kmat's atomic writer:
read back whole, shareable permissions (0666 minus the umask), a link planted at ``splits.json`` replaced and
its target untouched."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from kmat.tasks.converters.layout import MARKER, Collected, Item, Skips, write_prepared
from kmat.tasks.splits import SPLITS_FILE, SPLITS_FORMAT


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prepare(root: Path, source: Path) -> dict:
    items = {"train": [Item(classname="benign", rel="a.png", source=source / "a.png")]}
    return write_prepared(
        root,
        task="toy",
        class_names=["benign", "malignant"],
        collected=Collected(splits={"hi": items}, skips=Skips()),
        seed=0,
        copy=True,
        sources={"toy": str(source)},
        datasets={"toy": "toy"},
        log=lambda _msg: None,
    )


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.png").write_bytes(b"png bytes")
    return source


def test_splits_and_marker_read_back_with_shareable_permissions(tmp_path: Path) -> None:
    root = tmp_path / "data"
    report = _prepare(root, _source(tmp_path))
    splits = json.loads((root / SPLITS_FILE).read_text(encoding="utf-8"))
    assert splits["format"] == SPLITS_FORMAT and splits["class_names"] == ["benign", "malignant"]
    assert splits["hi"]["train"] == [["hi/a.png", 0, "benign"]]
    assert splits["counts"] == report["counts"]
    assert (root / "hi" / "a.png").read_bytes() == b"png bytes"
    for name in (SPLITS_FILE, MARKER):
        assert stat.S_IMODE((root / name).stat().st_mode) == 0o666 & ~_umask(), name
    assert [p.name for p in root.glob(".*.tmp")] == []


def test_a_link_planted_at_splits_json_is_replaced_and_its_target_untouched(tmp_path: Path) -> None:
    root = tmp_path / "data"
    source = _source(tmp_path)
    _prepare(root, source)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("theirs\n", encoding="utf-8")
    (root / SPLITS_FILE).unlink()
    (root / SPLITS_FILE).symlink_to(elsewhere)
    _prepare(root, source)
    assert not (root / SPLITS_FILE).is_symlink()
    assert json.loads((root / SPLITS_FILE).read_text(encoding="utf-8"))["format"] == SPLITS_FORMAT
    assert elsewhere.read_text(encoding="utf-8") == "theirs\n"
