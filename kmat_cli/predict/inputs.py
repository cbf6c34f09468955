"""The inputs of ``kmat predict``: files and folders walked into a deterministic list of image files, and
(for the Python API) images already in memory: Pillow images and tensor batches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmat_cli.errors import UsageError
from kmat_cli.images import IMAGE_SUFFIXES, is_dicom

__all__ = ["InMemoryImage", "find_inputs", "gather"]


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
    stack: list[Path] = [top]
    links: list[Path] = []
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


def find_inputs(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], int]:
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


@dataclass(frozen=True)
class InMemoryImage:
    """An input image that is no file: a Pillow image (RGB as :func:`kmat_cli.images.to_rgb` makes it), shown
    in the output as ``<image N>``, ``N`` its 0-based place among the inputs."""

    image: Any
    index: int

    def __str__(self) -> str:
        return f"<image {self.index}>"


def _tensor_images(batch: Any) -> list[Any]:
    """A tensor of images, (N, C, H, W) or one (C, H, W) with C 1 or 3 and values in [0, 1] (torchvision's
    ``to_tensor`` convention), as Pillow images (values rounded to 8 bits, as a PNG of them would hold)."""
    from torchvision.transforms.functional import to_pil_image

    if batch.dim() == 3:
        batch = batch[None]
    if batch.dim() != 4 or batch.shape[1] not in (1, 3) or batch.is_complex():
        raise UsageError(
            f"a tensor of images must be (N, 3, H, W), (N, 1, H, W) or (C, H, W); got {tuple(batch.shape)}"
        )
    pixels = batch.detach().float().cpu()
    if pixels.numel() and not (float(pixels.min()) >= 0 and float(pixels.max()) <= 1):
        raise UsageError(
            "a tensor of images must hold values in [0, 1] (torchvision's to_tensor); rescale it"
        )
    return [to_pil_image(x) for x in pixels]


def gather(inputs: Any) -> tuple[list[Path | InMemoryImage], int]:
    """What the Python API's ``predict`` classifies, in order, and the entries skipped in folders: a path
    (file or folder, as text or ``Path``), a Pillow image, a tensor of images (:func:`_tensor_images`), or a
    list mixing these. Paths go through :func:`find_inputs`; images become :class:`InMemoryImage`."""
    import torch
    from PIL import Image

    if isinstance(inputs, (str, os.PathLike, Image.Image, torch.Tensor)):
        inputs = [inputs]
    items: list[Any] = []
    for item in inputs:
        if isinstance(item, torch.Tensor):
            items += _tensor_images(item)
        else:
            items.append(item)
    found: list[Path | InMemoryImage] = []
    skipped = 0
    for item in items:
        if isinstance(item, Image.Image):
            from kmat_cli.images import to_rgb

            found.append(InMemoryImage(to_rgb(item), len(found)))
        elif isinstance(item, (str, os.PathLike)):
            files, n = find_inputs([item])
            found += files
            skipped += n
        else:
            raise UsageError(
                f"cannot classify a {type(item).__name__}; give paths, folders, Pillow images or a tensor"
            )
    if not found:
        raise UsageError("give at least one image file, folder or image")
    return found, skipped
