"""MRA-MIDAS (Stanford AIMI) -> skin1: dermoscopy (high-end) and 15 cm clinical photographs (low-end).

Source layout: the release table ``release_midas.xlsx`` (or a CSV export of it) beside the images, a
flat folder or nested ones. Columns used: ``midas_record_id`` (patient), ``midas_file_name``,
``midas_distance`` (``dscope`` -> hi, ``6in`` -> lo; ``1ft`` and ``n/a - virtual`` are not used) and
``midas_path`` (histopathology diagnosis), grouped into six classes:

=====  ==========================================  =================================
code   ``midas_path`` (spaces around "-" ignored)  why
=====  ==========================================  =================================
AK     malignant-ak                                actinic keratosis
BCC    malignant-bcc                               basal cell carcinoma
MEL    malignant-melanoma                          melanoma (invasive and in situ)
NEV    benign-melanocytic nevus                    melanocytic nevus
SCC    malignant-scc, malignant-sccis              SCC incl. in situ (Bowen's disease)
SK     benign-seborrheic keratosis                 seborrheic keratosis
=====  ==========================================  =================================

Rows with an empty ``midas_path`` (controls, no biopsy) or another diagnosis (dermatofibroma,
hemangioma, fibrous papule, "other") are left out and reported. Files are matched by name, then by stem
(``.jpeg`` rows whose file is ``.jpg``, ``_cropped`` variants), case-insensitively; rows without a file
are reported. Splits are by patient (``midas_record_id``), both modalities together.
"""

from __future__ import annotations

import re
from pathlib import Path

from kmat_cli.api import UsageError

from .files import FileIndex, image_files, walk_files
from .layout import Collected, Item, Request, Skips
from .splitting import split_items
from .tables import read_table, records

DIAGNOSES = {
    "malignant-ak": "AK",
    "malignant-bcc": "BCC",
    "malignant-melanoma": "MEL",
    "benign-melanocytic nevus": "NEV",
    "malignant-scc": "SCC",
    "malignant-sccis": "SCC",
    "benign-seborrheic keratosis": "SK",
}
DISTANCES = {"dscope": "hi", "6in": "lo"}
REQUIRED = ("midas_record_id", "midas_file_name", "midas_distance", "midas_path")


def normalise(text: str) -> str:
    """Lower case, single spaces, no spaces around hyphens: ``"malignant- bcc "`` -> ``"malignant-bcc"``."""
    return re.sub(r"\s*-\s*", "-", re.sub(r"\s+", " ", text.strip().lower()))


def find_table(source: Path, exclude: Path | None) -> Path:
    """The release table: a CSV export is preferred over the XLSX when both are there."""
    tables = [p for p in walk_files(source, exclude) if p.suffix.lower() in (".csv", ".xlsx")]
    named = [p for p in tables if "midas" in p.name.lower()]
    for suffix in (".csv", ".xlsx"):
        hits = sorted((p for p in named if p.suffix.lower() == suffix), key=lambda p: (len(p.parts), str(p)))
        if hits:
            return hits[0]
    raise UsageError(
        f"--source {source}: no MRA-MIDAS release table (release_midas.xlsx or a .csv export) found"
    )


def read_rows(table: Path) -> list[dict[str, str]]:
    rows = read_table(table)
    header = next((i for i, r in enumerate(rows) if "midas_file_name" in [c.lower() for c in r]), None)
    if header is None:
        raise UsageError(f"{table}: no 'midas_file_name' column; is this the MRA-MIDAS release table?")
    out = records(rows, header)
    missing = [c for c in REQUIRED if out and c not in out[0]]
    if missing:
        raise UsageError(f"{table}: missing column(s) {', '.join(missing)}")
    return out


def collect(request: Request) -> Collected:
    """Items for ``hi`` and ``lo`` split by patient in ``request.counts`` (a ratio); ``names`` maps codes to class names."""
    source, names, exclude, log = request.source, request.names, request.exclude, request.log
    table = find_table(source, exclude)
    log(f"MRA-MIDAS: reading {table}")
    rows = read_rows(table)
    index = FileIndex(image_files(source, exclude), source, stem_suffixes=("_cropped",))
    skips = Skips()
    items: dict[str, list[Item]] = {"hi": [], "lo": []}
    seen: set[Path] = set()
    for n, row in enumerate(rows, start=2):
        where = f"row {n}: {row.get('midas_file_name', '')}"
        distance = row.get("midas_distance", "").strip().lower()
        modality = DISTANCES.get(distance)
        if modality is None:
            skips.add(f"midas_distance '{distance or 'empty'}' is not used by skin1", where)
            continue
        diagnosis = normalise(row.get("midas_path", ""))
        if not diagnosis:
            skips.add("no histopathology diagnosis (midas_path empty, e.g. controls)", where)
            continue
        code = DIAGNOSES.get(diagnosis)
        if code is None:
            skips.add("diagnosis outside the six classes", f"{where} ({diagnosis})")
            continue
        path = index.lookup(row.get("midas_file_name", ""))
        if path is None:
            skips.add("image file not found (matched by name and stem)", where)
            continue
        if path in seen:
            skips.add("file listed by more than one row", where)
            continue
        seen.add(path)
        patient = row.get("midas_record_id", "").strip()
        group = f"patient:{patient}" if patient else ""
        rel = path.relative_to(source).as_posix()
        items[modality].append(Item(classname=names[code], rel=rel, source=path, group=group))
    if not items["hi"] and not items["lo"]:
        raise UsageError(f"{table}: no usable rows (dermoscopy or 6in photos of the six classes with files)")
    notes = [
        f"metadata: {table.name}; classes from midas_path (see docs/data.md); hi = dscope, lo = 6in",
        "splits by patient (midas_record_id), both modalities together, ratio of Table 1",
    ]
    return Collected(splits=split_items(items, request.counts, request.seed), skips=skips, notes=notes)
