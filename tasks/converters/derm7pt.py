"""Derm7pt (seven-point checklist dataset) -> skin2: dermoscopy (high-end), clinical photo (low-end).

Source layout (``release_v0.zip`` extracted, possibly as ``release_v0/release_v0/``)::

    release_v0/images/<folder>/<file>.jpg
    release_v0/meta/meta.csv                    case_num, diagnosis, ..., clinic, derm, ...
    release_v0/meta/{train,valid,test}_indexes.csv   column ``indexes``: 0-based rows of meta.csv

The official index files are the splits (one case = one dermoscopy + one clinical image, the same split
for both). ``diagnosis`` is grouped into the standard five classes of the dataset's own loader
(``derm7pt`` package, "group infrequent"): BCC; NEV = every nevus variant; MEL = melanoma and its
thickness / in situ / metastasis variants; MISC = dermatofibroma, lentigo, melanosis, miscellaneous,
vascular lesion; SK. Image paths are matched case-insensitively (then by file name, then stem).
"""

from __future__ import annotations

import re
from pathlib import Path

from kmat_cli.api import SPLITS, UsageError

from .files import FileIndex, find_file, image_files
from .layout import Collected, Item, Request, Skips
from .tables import read_table, records

INDEX_FILES = {"train": "train_indexes.csv", "val": "valid_indexes.csv", "test": "test_indexes.csv"}
MISC = {"dermatofibroma", "lentigo", "melanosis", "miscellaneous", "vascular lesion"}
COLUMNS = {"hi": "derm", "lo": "clinic"}


def group(diagnosis: str) -> str | None:
    """The five-class code of a Derm7pt ``diagnosis`` string, or None if it is none of them."""
    d = re.sub(r"\s+", " ", diagnosis.strip().lower())
    if d == "basal cell carcinoma":
        return "BCC"
    if d == "seborrheic keratosis":
        return "SK"
    if d.startswith("melanoma"):  # melanoma, (in situ), (less than 0.76 mm), ..., metastasis
        return "MEL"
    if d.endswith("nevus"):  # nevus, blue, clark, combined, congenital, dermal, recurrent, reed or spitz
        return "NEV"
    if d in MISC:
        return "MISC"
    return None


def _indexes(path: Path) -> list[int]:
    rows = records(read_table(path))
    if rows and "indexes" not in rows[0]:
        raise UsageError(f"{path}: expected a column 'indexes'")
    try:
        return [int(float(r["indexes"])) for r in rows if r.get("indexes", "") != ""]
    except ValueError as exc:
        raise UsageError(f"{path}: 'indexes' must be row numbers ({exc})") from exc


def collect(request: Request) -> Collected:
    """Items for ``hi`` and ``lo`` in the official splits; ``names`` maps codes to class names."""
    source, names, exclude, log = request.source, request.names, request.exclude, request.log
    meta_file = find_file(source, {"meta.csv"}, exclude)
    if meta_file is None:
        raise UsageError(f"--source {source}: no Derm7pt meta/meta.csv found (extract release_v0.zip there)")
    meta_dir = meta_file.parent
    log(f"Derm7pt: reading {meta_file}")
    meta = records(read_table(meta_file))
    for column in ("diagnosis", "derm", "clinic"):
        if meta and column not in meta[0]:
            raise UsageError(f"{meta_file}: missing column '{column}'")
    images_dir = meta_dir.parent / "images"
    if not images_dir.is_dir():
        images_dir = meta_dir.parent
    index = FileIndex(image_files(images_dir, exclude), images_dir)
    skips = Skips()
    splits: dict[str, dict[str, list[Item]]] = {m: {s: [] for s in SPLITS} for m in COLUMNS}
    used: set[int] = set()
    for split, filename in INDEX_FILES.items():
        path = meta_dir / filename
        if not path.is_file():
            raise UsageError(f"{path}: official split file missing (part of release_v0/meta)")
        for row_number in _indexes(path):
            if not 0 <= row_number < len(meta) or row_number in used:
                skips.add("index out of range or repeated in the split files", f"{filename}: {row_number}")
                continue
            used.add(row_number)
            row = meta[row_number]
            code = group(row.get("diagnosis", ""))
            case = f"case {row.get('case_num', row_number)}"
            if code is None:
                skips.add("diagnosis outside the five groups", f"{case} ({row.get('diagnosis', '')})")
                continue
            for modality, column in COLUMNS.items():
                file = index.lookup(row.get(column, ""))
                if file is None:
                    skips.add(f"{column} image not found", f"{case}: {row.get(column, '')}")
                    continue
                rel = file.relative_to(images_dir).as_posix()
                splits[modality][split].append(
                    Item(classname=names[code], rel=rel, source=file, group=f"case:{row_number}")
                )
    notes = [
        "official Derm7pt splits (meta/train_indexes.csv, valid_indexes.csv, test_indexes.csv)",
        "classes: the five-group mapping of the derm7pt loader (see docs/data.md); hi = derm, lo = clinic",
    ]
    return Collected(splits=splits, skips=skips, notes=notes)
