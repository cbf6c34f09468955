"""BUSI (Breast Ultrasound Images, Cairo University) -> breast, low-end (ultrasound).

Source layout: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/`` with ``benign (1).png`` and its
masks ``benign (1)_mask.png``, ``benign (1)_mask_1.png``...; every file whose name contains ``_mask``
is dropped. The folder holding the three class folders is found wherever it is nested. No
image-to-patient map is published: images are split one by one in Table 1's ratio, stratified by class.
"""

from __future__ import annotations

from pathlib import Path

from kmat_cli.api import UsageError

from .files import child_dirs, image_files
from .layout import Collected, Item, Request, Skips
from .splitting import split_items

CLASSES = {"benign": "benign", "malignant": "malignant", "normal": "normal"}
NOT_FOUND = "no folder with benign/, malignant/ and normal/ found"


def _has_class_folders(folder: Path) -> bool:
    return set(CLASSES) <= set(child_dirs(folder))


def collect(request: Request) -> Collected:
    """Ultrasound items (masks dropped) split in ``request.counts`` (a ratio) stratified by class."""
    data = request.dataset_dir(_has_class_folders, "BUSI", missing=NOT_FOUND)
    skips = Skips()
    items = []
    for key, folder in sorted(child_dirs(data).items()):
        code = CLASSES.get(key)
        if code is None:
            continue
        for path in image_files(folder, request.exclude):
            if "_mask" in path.name.lower():
                skips.add("segmentation mask (name contains _mask)", path.name)
                continue
            rel = path.relative_to(data).as_posix()
            items.append(Item(classname=request.names[code], rel=rel, source=path))
    if not items:
        raise UsageError(f"--source-lo {data}: no ultrasound images in the class folders")
    notes = ["ultrasound: masks dropped; split image by image in Table 1's ratio, stratified by class"]
    return Collected(
        splits=split_items({"lo": items}, request.counts, request.seed), skips=skips, notes=notes
    )
