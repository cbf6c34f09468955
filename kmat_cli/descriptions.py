"""The descriptions format, ``kmat.descriptions/v1``: its one reader and validator, and document helpers.

A descriptions file is JSON in one of two forms::

    {"format": "kmat.descriptions/v1",
     "provenance": {...},                       # optional: who wrote it, how (kmat describe records it)
     "classes": {class: {modality: [text, ...]}}}

    {class: [text, ...]}                        # bare: the same texts for every modality (hi and lo)

:func:`read_document` reads either form into a ``kmat.descriptions/v1`` document and enforces the rules
below; :func:`load_descriptions` (what training and tasks use) also requires every class of a task in
every modality asked for. Any broken rule is a one-line :class:`~kmat_cli.errors.UsageError` that names
the file and the class:

- the file exists and is UTF-8 JSON holding an object;
- ``format``, when present, is ``kmat.descriptions/v1``; ``classes`` is then an object and ``provenance``,
  when present, an object;
- a class name holds no control character (ESC, BEL, ...: :func:`kmat_cli.errors.unprintable`);
- a class maps modality keys (``hi``, ``lo`` only) to lists (bare form: a class maps to a list);
- a list holds at least one description, and only descriptions: strings that are not blank.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kmat_cli import atomic, datafiles
from kmat_cli.contracts import MODALITIES
from kmat_cli.errors import UsageError, printable, unprintable

__all__ = [
    "DESCRIPTIONS_FORMAT",
    "MODALITIES",
    "load_descriptions",
    "merge_documents",
    "read_document",
    "task_document",
    "write_document",
]

DESCRIPTIONS_FORMAT = "kmat.descriptions/v1"

Classes = dict[str, dict[str, list[str]]]  # class -> modality -> descriptions


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = datafiles.read_json(path, what="descriptions", hint="expected UTF-8 JSON")
    except datafiles.MissingFile as exc:
        raise UsageError(f"{path}: descriptions file not found") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a JSON object of classes")
    return raw


def _texts(where: str, name: str, modality: str, value: Any) -> list[str]:
    """``value`` checked as the descriptions of class ``name`` in ``modality`` (see the module rules)."""
    if (char := unprintable(name)) is not None:
        raise UsageError(
            f"{where}: class name '{printable(name)}' holds the control character {char}; write plain text"
        )
    if not isinstance(value, list):
        raise UsageError(f"{where}: class '{name}' must map modalities to lists of strings ('{modality}')")
    if not any(isinstance(t, str) and t.strip() for t in value):
        raise UsageError(f"{where}: class '{name}' has no descriptions for modality '{modality}'")
    for i, text in enumerate(value, 1):
        if not isinstance(text, str) or not text.strip():
            what = "blank" if isinstance(text, str) else f"{json.dumps(text)}, not a string"
            raise UsageError(f"{where}: class '{name}', modality '{modality}': description {i} is {what}")
    return list(value)


def _v1_classes(where: str, classes: Any) -> Classes:
    if not isinstance(classes, dict):
        raise UsageError(f"{where}: 'classes' must be an object of class -> {{modality: [text, ...]}}")
    out: Classes = {}
    for name, entry in classes.items():
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: class '{name}' must map modalities to lists of strings")
        unknown = [m for m in entry if m not in MODALITIES]
        if unknown:
            raise UsageError(
                f"{where}: class '{name}' has an unknown modality '{unknown[0]}'; use {', '.join(MODALITIES)}"
            )
        out[name] = {m: _texts(where, name, m, texts) for m, texts in entry.items()}
    return out


def read_document(path: str | Path) -> dict[str, Any]:
    """The descriptions file at ``path`` as a ``kmat.descriptions/v1`` document, checked (module rules).

    The bare ``{class: [text]}`` form is expanded to every modality, with a provenance record naming the
    file. Texts are kept as written.
    """
    path = Path(path)
    raw, where = _read_json(path), str(path)
    if "format" not in raw:
        classes = {
            name: {m: _texts(where, name, m, texts) for m in MODALITIES} for name, texts in raw.items()
        }
        return {
            "format": DESCRIPTIONS_FORMAT,
            "provenance": {"source": f"file {path.name}"},
            "classes": classes,
        }
    if raw["format"] != DESCRIPTIONS_FORMAT:
        raise UsageError(f"{path}: unknown format '{raw['format']}' (expected {DESCRIPTIONS_FORMAT})")
    provenance = raw.get("provenance", {})
    if not isinstance(provenance, dict):
        raise UsageError(f"{path}: 'provenance' must be an object")
    return {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": provenance,
        "classes": _v1_classes(where, raw.get("classes")),
    }


def load_descriptions(
    path: str | Path, class_names: Sequence[str], modalities: Sequence[str] = MODALITIES
) -> dict[str, dict[str, list[str]]]:
    """The descriptions of ``class_names`` in ``modalities`` from the file at ``path``:
    ``[modality][class] -> list[str]``, each text stripped of surrounding white space.

    The file is read by :func:`read_document`; every class must be there with every modality, otherwise
    a one-line ``UsageError``. Classes the task does not have are ignored (after being checked).
    """
    classes = read_document(path)["classes"]
    out: dict[str, dict[str, list[str]]] = {m: {} for m in modalities}
    for name in class_names:
        if name not in classes:
            raise UsageError(f"{path}: no descriptions for class '{name}'; add it or pass another file")
        for m in modalities:
            if m not in classes[name]:
                raise UsageError(f"{path}: class '{name}' has no descriptions for modality '{m}'")
            out[m][name] = [t.strip() for t in classes[name][m]]
    return out


def task_document(task: Any) -> dict[str, Any]:
    """The descriptions a task ships (``task.descriptions[modality][class]``) as a document."""
    classes: Classes = {}
    for m, per_class in task.descriptions.items():
        for name, texts in per_class.items():
            classes.setdefault(name, {})[m] = list(texts)
    name = getattr(task, "name", type(task).__name__)
    return {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": {"source": f"descriptions shipped with task '{name}'"},
        "classes": classes,
    }


def merge_documents(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``new``'s (class, modality) lists added or replacing base's; the rest is kept.

    The merged provenance is ``new``'s, with ``merged``: the earlier records, newest first (``base``'s
    own record, then the ones it had merged).
    """
    classes = copy.deepcopy(dict(base.get("classes", {})))
    for name, entry in new["classes"].items():
        classes.setdefault(name, {}).update(copy.deepcopy(entry))
    old = dict(base.get("provenance") or {})
    history = [r for r in old.pop("merged", []) if isinstance(r, dict)]
    provenance = {**copy.deepcopy(dict(new.get("provenance") or {})), "merged": [old, *history]}
    return {"format": DESCRIPTIONS_FORMAT, "provenance": provenance, "classes": classes}


def write_document(path: str | Path, document: Mapping[str, Any], *, user_named: bool = True) -> None:
    """Write a descriptions document as JSON, atomically; ``user_named``: the path is the user's choice
    (a link there is written through, see :mod:`kmat_cli.atomic`)."""
    atomic.write_json(path, dict(document), user_named=user_named)
