"""The prepared layout: items to place under the data root, skipped-file bookkeeping, ``splits.json``.

A data root holds ``splits.json`` (see :mod:`kmat.tasks.splits`), ``hi/`` and ``lo/`` (one folder per
modality; each file at ``<modality>/<path inside the dataset>``) and a marker file ``.kmat-data``. Files
are symlinked to the downloaded originals by default (absolute links), copied with ``copy=True``, or
written by the item's ``writer`` (PNG conversion, extraction from a zip).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmat.tasks.splits import SPLITS_FILE, SPLITS_FORMAT, safe_relpath

from kmat_cli.api import MODALITIES, SPLITS, UsageError, write_text

from .files import find_dirs

MARKER = ".kmat-data"
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class Request:
    """What a dataset converter's ``collect(request) -> Collected`` reads, and how it splits.

    ``source``: the dataset folder; ``names``: dataset label -> class name; ``counts``: train/val/test, a
    ratio (most converters) or slice counts (a converter that samples), empty where the dataset has
    official splits; ``seed``: of the split; ``exclude``: a folder never read (the output); ``log``:
    takes one progress line; ``flag``: the option that named ``source`` (for messages).
    """

    source: Path
    names: Mapping[str, str]
    counts: Sequence[float] = ()
    seed: int = 0
    exclude: Path | None = None
    log: Callable[[str], None] = print
    flag: str = "--source"

    def dataset_dir(self, accept: Callable[[Path], bool], dataset: str, *, missing: str) -> Path:
        """The shallowest folder under ``source`` for which ``accept(folder)`` holds, logged as
        ``<dataset>: reading <folder>``; a ``UsageError`` ``<flag> <source>: <missing>`` when none does."""
        found = find_dirs(self.source, accept, self.exclude)
        if not found:
            raise UsageError(f"{self.flag} {self.source}: {missing}")
        self.log(f"{dataset}: reading {found[0]}")
        return found[0]


@dataclass(frozen=True)
class Item:
    """One image to place in a split: its class, its destination under ``<root>/<modality>/`` and where
    it comes from (``source``: a file to link or copy; ``writer(dest)``: a function that writes it).
    ``group`` is the unit that must not straddle splits (patient, case); empty means the item alone."""

    classname: str
    rel: str
    source: Path | None = None
    writer: Callable[[Path], None] | None = None
    group: str = ""


@dataclass
class Skips:
    """Why files or rows were left out, with a count and a few examples per reason."""

    reasons: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        self.reasons.setdefault(reason, []).append(example)

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {"reason": reason, "count": len(examples), "examples": sorted(examples)[:MAX_EXAMPLES]}
            for reason, examples in self.reasons.items()
        ]


@dataclass
class Collected:
    """What a converter found: ``splits[modality][split]`` items, skips, and notes for the report."""

    splits: dict[str, dict[str, list[Item]]]
    skips: Skips
    notes: list[str] = field(default_factory=list)


def merge(*parts: Collected) -> Collected:
    """One :class:`Collected` from converters of different modalities (chest: CT + X-ray)."""
    skips = Skips()
    splits: dict[str, dict[str, list[Item]]] = {}
    notes: list[str] = []
    for part in parts:
        splits.update(part.splits)
        notes += part.notes
        label = "+".join(part.splits)
        for reason, examples in part.skips.reasons.items():
            skips.reasons.setdefault(f"{label}: {reason}", []).extend(examples)
    return Collected(splits=splits, skips=skips, notes=notes)


def _claim_root(root: Path) -> None:
    """Make ``root`` ready for a fresh layout: create it, or clear what an earlier prepare wrote.

    A non-empty folder without the ``.kmat-data`` marker is refused: it is not ours to overwrite.
    """
    if root.exists() and not root.is_dir():
        raise UsageError(f"--out {root}: exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise UsageError(
            f"--out {root}: folder is not empty and was not made by `kmat data prepare`; choose an empty one"
        )
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / MARKER, "prepared by `kmat data prepare`; hi/, lo/ and splits.json are rewritten\n")
    (root / SPLITS_FILE).unlink(missing_ok=True)
    for modality in MODALITIES:
        target = root / modality
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)  # removes our links and converted files, never a link's target


def _place(item: Item, dest: Path, copy: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if item.writer is not None:
        item.writer(dest)
    elif item.source is None:
        raise ValueError("item has neither a source nor a writer")
    elif copy:
        shutil.copyfile(item.source, dest)
    else:
        try:
            os.symlink(item.source.resolve(), dest)
        except OSError as exc:  # e.g. Windows without the symlink privilege: every file would fail
            raise UsageError(
                f"{dest}: cannot create a symlink ({exc.strerror}); run again with --copy"
            ) from exc


def check_source_outside(root: Path, sources: Sequence[Path]) -> None:
    """Refuse a data root that is a source folder or lies where a source's files would be cleared."""
    r = root.resolve()
    for src in sources:
        s = src.resolve()
        if s == r or any(s == (r / m) or (r / m) in s.parents for m in MODALITIES):
            raise UsageError(f"--out {root}: overlaps the source folder {src}; choose another --out")


def write_prepared(
    root: Path,
    *,
    task: str,
    class_names: Sequence[str],
    collected: Collected,
    seed: int,
    copy: bool,
    sources: Mapping[str, str],
    datasets: Mapping[str, str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Place every item under ``root`` and write ``splits.json``; return the report (also stored there).

    Items whose file cannot be placed (conversion or extraction error, duplicate destination) are
    skipped and reported, never fatal. Entries are sorted by path so equal inputs give equal files.
    """
    check_source_outside(root, [Path(p) for p in set(sources.values())])
    index = {name: i for i, name in enumerate(class_names)}
    skips = collected.skips
    _claim_root(root)
    out: dict[str, dict[str, list[list[Any]]]] = {}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for modality in MODALITIES:
        splits = collected.splits.get(modality)
        if splits is None:
            continue
        out[modality], counts[modality] = {}, {}
        placed = 0
        total = sum(len(items) for items in splits.values())
        for split in SPLITS:
            entries = []
            for item in sorted(splits.get(split, []), key=lambda it: it.rel):
                rel = safe_relpath(f"{modality}/{item.rel}", f"{task} converter")
                dest = root / rel
                if dest.exists() or dest.is_symlink():
                    skips.add("duplicate destination (same file listed twice)", rel)
                    continue
                try:
                    _place(item, dest, copy)
                except (OSError, ValueError, RuntimeError) as exc:
                    skips.add("could not link, copy or convert the file", f"{item.rel} ({exc})")
                    continue
                entries.append([rel, index[item.classname], item.classname])
                placed += 1
                if placed % 2000 == 0:
                    log(f"{modality}: {placed}/{total} files placed")
            out[modality][split] = entries
            counts[modality][split] = {c: sum(1 for e in entries if e[2] == c) for c in class_names}
    report = {
        "task": task,
        "root": str(root),
        "seed": seed,
        "datasets": dict(datasets),
        "sources": dict(sources),
        "mode": "copy" if copy else "symlink",
        "counts": counts,
        "skipped": skips.as_list(),
        "notes": list(collected.notes),
    }
    document = {"format": SPLITS_FORMAT, "class_names": list(class_names), **report, **out}
    write_text(root / SPLITS_FILE, json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return report
