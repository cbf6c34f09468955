"""Finding files in a downloaded dataset: recursive walks that skip the data root being written, hidden
files (``.DS_Store``, ``__MACOSX``) and symlinked folders, plus lookups by name or stem tolerant of case,
``.jpg``/``.jpeg``/``.png`` swaps and same-name nested folders."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"})


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def walk_files(top: Path, exclude: Path | None = None) -> Iterator[Path]:
    """Every regular file under ``top`` in sorted order, skipping hidden entries and ``exclude``."""
    skip = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not _hidden(d) and (skip is None or (here / d).resolve() != skip)
        )
        for name in sorted(filenames):
            if not _hidden(name):
                yield here / name


def image_files(top: Path, exclude: Path | None = None) -> list[Path]:
    """Image files (by suffix, any case) under ``top``."""
    return [p for p in walk_files(top, exclude) if p.suffix.lower() in IMAGE_SUFFIXES]


def find_dirs(top: Path, accept: Callable[[Path], bool], exclude: Path | None = None) -> list[Path]:
    """Folders under ``top`` (``top`` included) for which ``accept(folder)`` holds, shallowest first."""
    skip = exclude.resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not _hidden(d) and (skip is None or (here / d).resolve() != skip)
        )
        if accept(here):
            found.append(here)
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def child_dirs(folder: Path) -> dict[str, Path]:
    """Sub-folders of ``folder`` keyed by lower-case, stripped name."""
    return {p.name.strip().lower(): p for p in sorted(folder.iterdir()) if p.is_dir() and not _hidden(p.name)}


def find_file(top: Path, names: set[str], exclude: Path | None = None) -> Path | None:
    """The shallowest file under ``top`` whose lower-case name is in ``names``, or None."""
    hits = [p for p in walk_files(top, exclude) if p.name.strip().lower() in names]
    return min(hits, key=lambda p: (len(p.parts), str(p))) if hits else None


class FileIndex:
    """Look files up by relative path, name or stem, case-insensitively.

    ``stem_suffixes`` are extra endings a published file may carry beyond the listed name (MRA-MIDAS has
    ``_cropped`` variants). When several files share a key, the shallowest (then alphabetical) wins.
    """

    def __init__(self, files: list[Path], root: Path, stem_suffixes: tuple[str, ...] = ()) -> None:
        self.root = root
        self.by_rel: dict[str, Path] = {}
        self.by_name: dict[str, Path] = {}
        self.by_stem: dict[str, Path] = {}
        for p in sorted(files, key=lambda p: (len(p.parts), str(p))):
            rel = p.relative_to(root).as_posix().lower()
            self.by_rel.setdefault(rel, p)
            self.by_name.setdefault(p.name.lower(), p)
            stem = p.stem.lower()
            self.by_stem.setdefault(stem, p)
            for suffix in stem_suffixes:
                if stem.endswith(suffix):
                    self.by_stem.setdefault(stem[: -len(suffix)], p)

    def lookup(self, listed: str) -> Path | None:
        """The file a metadata row names: exact relative path, then name, then stem (any suffix)."""
        key = listed.strip().replace("\\", "/").lower()
        if not key:
            return None
        hit = self.by_rel.get(key) or self.by_name.get(key.rsplit("/", 1)[-1])
        if hit is None:
            stem = Path(key.rsplit("/", 1)[-1]).stem
            hit = self.by_stem.get(stem)
        return hit
