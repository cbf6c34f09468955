"""Chest X-ray (COVID-19 & Pneumonia), Kaggle -> chest, low-end (X-ray).

Source layout: ``Data/{train,test}/{COVID19,NORMAL,PNEUMONIA}/*.jpg|jpeg|png`` (the ``Data`` folder may
be nested in the download folder; folder names are matched case-insensitively). Classes: COVID19 =
COVID-19 pneumonia, PNEUMONIA = common pneumonia, NORMAL = normal.

Table 1's 4595/923/914 sums to the 6,432 published images, so the publisher's train/test folders are
pooled and re-split in that ratio, stratified by class. File names carrying ``person<N>`` (the pediatric
pneumonia source) are grouped by that id so one child's films stay in one split; other files have no
patient id and are split one by one.
"""

from __future__ import annotations

import re
from pathlib import Path

from kmat_cli.api import UsageError

from .files import child_dirs, image_files
from .layout import Collected, Item, Request, Skips
from .splitting import split_items

CLASSES = {"covid19": "COVID19", "covid-19": "COVID19", "pneumonia": "PNEUMONIA", "normal": "NORMAL"}
PERSON = re.compile(r"person(\d+)", re.IGNORECASE)
NOT_FOUND = "no Data/train|test/COVID19|NORMAL|PNEUMONIA folders found"


def _is_split_root(folder: Path) -> bool:
    """A folder with train/ or test/ sub-folders that hold class folders."""
    subs = child_dirs(folder)
    return any(s in subs and set(child_dirs(subs[s])) & set(CLASSES) for s in ("train", "test"))


def collect(request: Request) -> Collected:
    """X-ray items split in ``request.counts`` (a ratio) by class (and by ``person<N>`` where the file name has one)."""
    data = request.dataset_dir(_is_split_root, "Chest X-ray", missing=NOT_FOUND)
    skips = Skips()
    items = []
    for split_name, split_dir in sorted(child_dirs(data).items()):
        for class_key, class_dir in sorted(child_dirs(split_dir).items()):
            code = CLASSES.get(class_key)
            if code is None:
                skips.add("folder is not a class of the dataset", f"{split_name}/{class_dir.name}")
                continue
            for path in image_files(class_dir, request.exclude):
                person = PERSON.search(path.name)
                group = f"person:{person.group(1)}" if person else ""
                rel = path.relative_to(data).as_posix()
                items.append(Item(classname=request.names[code], rel=rel, source=path, group=group))
    if not items:
        raise UsageError(f"--source-lo {data}: no images in the class folders")
    notes = [
        "X-ray: publisher train/test pooled and re-split in Table 1's ratio, stratified by class; "
        "files named person<N> grouped by N",
    ]
    return Collected(
        splits=split_items({"lo": items}, request.counts, request.seed), skips=skips, notes=notes
    )
