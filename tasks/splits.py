"""kmat's split JSON: which image files form the train/val/test splits of each modality.

Two shapes are read; ``kmat data prepare`` (:mod:`kmat.tasks.converters`) writes the first:

* combined, ``<root>/splits.json``::

    {"format": "kmat.splits/v1", "task": "chest", "class_names": [...], "seed": 0,
     "hi": {"train": [[relpath, label, classname], ...], "val": [...], "test": [...]},
     "lo": {"train": [...], "val": [...], "test": [...]}, ...}

* per modality (``<root>/splits-hi.json``, or any file a custom task names)::

    {"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}

``relpath`` is a POSIX path relative to the folder holding the split file (the data root); absolute
paths, ``..`` components and backslashes are rejected so that a split file can never point outside its
root. ``label`` indexes the task's class list; ``classname``, when given, must equal
``class_names[label]`` (a guard against files written for another class order). ``[relpath, label]``
without the name is accepted too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from kmat_cli.api import MODALITIES, SPLITS, MissingFile, Sample, UsageError
from kmat_cli.api import read_json as read_data

SPLITS_FORMAT = "kmat.splits/v1"
SPLITS_FILE = "splits.json"
# Split names accepted in files and folders, mapped to kmat's three.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def split_name(name: str) -> str | None:
    """kmat's split name for ``name`` (``valid`` -> ``val``), or None if it is not a split."""
    return SPLIT_ALIASES.get(name.strip().lower())


def safe_relpath(rel: Any, where: str) -> str:
    """``rel`` if it is a relative POSIX path that stays inside its root, else a one-line UsageError.

    Rejected: non-strings, empty paths, absolute paths (``/x``, ``C:/x``), backslashes and any ``..``
    component. ``where`` names the file (and entry) for the message.
    """
    if not isinstance(rel, str) or not rel.strip():
        raise UsageError(f"{where}: expected a relative file path, got {rel!r}")
    if "\\" in rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise UsageError(f"{where}: path '{rel}' must be relative to the data root (POSIX, no drive)")
    parts = PurePosixPath(rel).parts
    if ".." in parts:
        raise UsageError(f"{where}: path '{rel}' escapes the data root ('..' is not allowed)")
    return rel


def parse_entries(
    entries: Any, root: Path, class_names: Sequence[str], where: str, *, check_files: bool = True
) -> list[Sample]:
    """``[[relpath, label(, classname)], ...]`` -> samples under ``root``, every entry validated.

    ``check_files``: every listed file must exist (a missing one is a UsageError naming it).
    """
    if not isinstance(entries, list):
        raise UsageError(f"{where}: expected a list of [relpath, label, classname] entries")
    samples = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
            raise UsageError(f"{at}: expected [relpath, label, classname], got {entry!r}")
        rel = safe_relpath(entry[0], at)
        label = entry[1]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(class_names):
            raise UsageError(f"{at}: label {label!r} is not a class index 0..{len(class_names) - 1}")
        if len(entry) == 3 and entry[2] != class_names[label]:
            raise UsageError(
                f"{at}: class name {entry[2]!r} does not match label {label} ({class_names[label]!r})"
            )
        path = root / rel
        if check_files and not path.exists():
            raise UsageError(f"{at}: file {path} is missing; restore it or prepare the data again")
        samples.append(Sample(path=path, label=label))
    return samples


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or malformed file is a one-line UsageError."""
    try:
        raw = read_data(path, what="split file")
    except MissingFile as exc:
        raise UsageError(f"{path}: split file not found") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: a split file must be a JSON object")
    return raw


def modality_section(raw: Mapping[str, Any], modality: str, path: Path) -> Mapping[str, Any] | None:
    """The ``{split: entries}`` mapping of ``modality`` in a combined or per-modality split file.

    A combined file (keys ``hi``/``lo``) gives that modality's section, or None if it lacks it; a
    per-modality file (keys ``train``/``val``/``test``) is returned whole.
    """
    if any(m in raw for m in MODALITIES):
        section = raw.get(modality)
        if section is None:
            return None
        if not isinstance(section, Mapping):
            raise UsageError(f"{path}: '{modality}' must map train/val/test to entry lists")
        return section
    if any(split_name(k) for k in raw):
        return raw
    raise UsageError(f"{path}: no 'hi'/'lo' or 'train'/'val'/'test' keys; see docs/data.md for the format")


def split_entries(section: Mapping[str, Any], split: str, path: Path, modality: str) -> Any:
    """The entry list of ``split`` in a modality section (aliases such as ``valid`` accepted)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
    for key, value in section.items():
        if split_name(key) == split:
            return value
    raise UsageError(f"{path}: modality '{modality}' has no '{split}' split")


def check_class_names(raw: Mapping[str, Any], class_names: Sequence[str], path: Path) -> None:
    """If the file records ``class_names``, they must equal the task's (same names, same order)."""
    recorded = raw.get("class_names")
    if recorded is not None and list(recorded) != list(class_names):
        raise UsageError(
            f"{path}: prepared for classes {recorded}, the task has {list(class_names)}; prepare it again"
        )
