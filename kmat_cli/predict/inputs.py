"""The inputs of ``kmat predict``: files and folders walked into a deterministic list of image files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kmat_cli.errors import UsageError
from kmat_cli.images import IMAGE_SUFFIXES, is_dicom

__all__ = ["find_inputs"]


def _wanted(entry: os.DirEntry[str]) -> bool:
    """Inside a folder: any non-directory named like an image (a broken link or a FIFO gets an error row),
    or an extension-less regular file that starts like DICOM."""
    suffix = Path(entry.name).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    try:
        return not suffix and entry.is_file() and is_dicom(entry.path)
    except OSError:
        return False


def _walk(top: Path) -> tuple[list[Path], int]:
    """Files under ``top``, sorted by their path relative to ``top`` component by component, and the number
    of entries skipped (hidden files and folders, other file types, unreadable folders, link loops).

    Symbolic links to folders are followed, except a link to the folder it is in or to one of that
    folder's ancestors (a loop), and every real folder is walked once: real folders first (in name
    order), then linked ones, so a second link to a walked folder adds nothing and the result does not
    depend on the order the file system lists entries in."""
    found: list[Path] = []
    skipped = 0
    seen: set[tuple[int, int]] = set()
    stack, links = [top], []
    while stack or links:
        folder = stack.pop() if stack else links.pop(0)
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen:  # a second link to a folder already walked
                skipped += 1
                continue
            seen.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            skipped += 1
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                skipped += 1
                continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir and not entry.is_symlink():
                subfolders.append(folder / entry.name)
            elif is_dir:
                target = Path(os.path.realpath(entry.path))
                here = Path(os.path.realpath(folder))
                if target == here or target in here.parents:  # a link loop
                    skipped += 1
                else:
                    links.append(folder / entry.name)
            elif _wanted(entry):
                found.append(folder / entry.name)
            else:
                skipped += 1
        stack.extend(reversed(subfolders))
    found.sort(key=lambda p: p.relative_to(top).parts)
    return found, skipped


def find_inputs(paths: Sequence[str | Path]) -> tuple[list[Path], int]:
    """The input files of ``paths`` in a deterministic order, and the number of entries skipped in folders.

    Arguments keep their order. A folder is walked recursively (:func:`_walk`): hidden entries (names
    starting with ``.``) and files that are neither named like an image (``IMAGE_SUFFIXES``) nor
    extension-less DICOM are skipped. A file given by name is always an input, whatever its name. A path
    that does not exist, or inputs that add up to no file at all, is a ``UsageError``.
    """
    if not paths:
        raise UsageError("give at least one image file or folder")
    files: list[Path] = []
    skipped = 0
    for raw in paths:
        path = Path(raw)
        try:
            is_dir, exists = path.is_dir(), path.exists() or path.is_symlink()
        except OSError:  # e.g. a name too long for the file system: its row says why it cannot be read
            files.append(path)
            continue
        if is_dir:
            found, n = _walk(path)
            files += found
            skipped += n
        elif exists:
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise UsageError(
            f"no image files found in {where} (looked for {', '.join(IMAGE_SUFFIXES)} and DICOM)"
        )
    return files, skipped
