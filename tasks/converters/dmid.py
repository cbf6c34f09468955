"""DMID (Digital Mammography Dataset for breast cancer diagnosis research) -> breast, high-end.

Source layout (``DMID.rar`` extracted; each folder may sit inside a same-named folder)::

    TIFF Images/IMG001.tif ...        the mammograms (preferred)
    <DICOM folder>/IMG001.dcm ...     the same images as DICOM (used where a TIFF is missing)
    ROI Masks/, Pixel-level annotation/   masks (ignored: any path with "mask", "roi", "annotation")
    Reports/Img001.txt ...            radiology reports (BI-RADS category)
    Metadata.xlsx (or a CSV export)   a long header block, then rows: image id, view, density,
                                      abnormality class, severity N/B/M, x, y, radius

Rows are found by their first cell (``IMG<number>``), not by skipping a fixed header; the severity
column is the one whose values are (almost) all ``N``/``B``/``M`` (trailing spaces ignored). An image
with several rows takes its most severe (M > B > N). Blank severity: abnormality class ``NORM`` means
normal, else the report's BI-RADS decides (1 normal; 2-3 benign; 5-6 malignant; 4, suspicious but not
proven, is left out and reported). 8-bit TIFFs are linked as they are; 16-bit TIFFs and DICOM files are
converted to 8-bit PNG. No patient id is published: images are split one by one, stratified by class.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from pathlib import Path

from kmat_cli.api import UsageError

from .files import walk_files
from .images import needs_png, png_writer
from .layout import Collected, Item, Request, Skips
from .splitting import split_items
from .tables import read_table

IMAGE_ID = re.compile(r"^\s*img[\s_-]*0*(\d+)\s*$", re.IGNORECASE)
BIRADS = re.compile(r"BI-?\s*RADS[^0-9\n]{0,20}([0-6])", re.IGNORECASE)
MASK_WORDS = ("mask", "roi", "annotation")
SEVERITY = {"N": "normal", "B": "benign", "M": "malignant"}
RANK = {"N": 0, "B": 1, "M": 2}


def image_number(text: str) -> int | None:
    match = IMAGE_ID.match(text)
    return int(match.group(1)) if match else None


def find_metadata(source: Path, exclude: Path | None) -> Path:
    found = [
        p
        for p in walk_files(source, exclude)
        if p.suffix.lower() in (".csv", ".xlsx") and p.stem.strip().lower().startswith("metadata")
    ]
    for suffix in (".csv", ".xlsx"):  # a CSV export, when present, is what the user chose
        hits = sorted((p for p in found if p.suffix.lower() == suffix), key=lambda p: (len(p.parts), str(p)))
        if hits:
            return hits[0]
    raise UsageError(f"--source {source}: no DMID Metadata.xlsx (or a CSV export of it) found")


def severity_rows(table: Path) -> dict[int, list[list[str]]]:
    """Metadata rows per image number (rows whose first non-empty cell is ``IMG<n>``)."""
    out: dict[int, list[list[str]]] = {}
    for row in read_table(table):
        cells = [c.strip() for c in row]
        first = next((c for c in cells if c), "")
        n = image_number(first)
        if n is not None:
            out.setdefault(n, []).append(cells)
    if not out:
        raise UsageError(f"{table}: no rows starting with an image id like IMG001")
    return out


def severity_column(rows: dict[int, list[list[str]]]) -> int | None:
    """The column whose non-empty values are most often N/B/M (at least 60% of them), or None."""
    hits: Counter = Counter()
    filled: Counter = Counter()
    for cells_list in rows.values():
        for cells in cells_list:
            for j, cell in enumerate(cells):
                if cell and image_number(cell) is None:
                    filled[j] += 1
                    hits[j] += cell.upper() in SEVERITY
    best = max(filled, key=lambda j: (hits[j] / filled[j], hits[j]), default=None)
    return best if best is not None and hits[best] and hits[best] / filled[best] >= 0.6 else None


def report_birads(source: Path, exclude: Path | None) -> dict[int, int]:
    """The highest BI-RADS category each report (``Img<n>.txt``) states."""
    out = {}
    for path in walk_files(source, exclude):
        n = image_number(path.stem) if path.suffix.lower() == ".txt" else None
        if n is None:
            continue
        found = [int(m) for m in BIRADS.findall(path.read_text(encoding="utf-8", errors="replace"))]
        if found:
            out[n] = max(found)
    return out


def find_images(source: Path, exclude: Path | None) -> dict[int, Path]:
    """The mammogram of each image number: TIFF first, then DICOM, never a mask."""
    ranked: dict[int, tuple[tuple, Path]] = {}
    for path in walk_files(source, exclude):
        suffix = path.suffix.lower()
        if suffix not in (".tif", ".tiff", ".dcm"):
            continue
        n = image_number(path.stem)
        lowered = path.relative_to(source).as_posix().lower()
        if n is None or any(w in lowered for w in MASK_WORDS):
            continue
        rank = (suffix == ".dcm", len(path.parts), str(path))
        if n not in ranked or rank < ranked[n][0]:
            ranked[n] = (rank, path)
    return {n: path for n, (_, path) in ranked.items()}


def label_of(rows: list[list[str]], column: int | None, birads: int | None) -> tuple[str | None, str]:
    """(severity code or None, how it was decided)."""
    found = {cells[column].upper() for cells in rows if column is not None and column < len(cells)}
    found &= set(SEVERITY)
    if found:
        return max(found, key=RANK.__getitem__), "severity"
    if any(cell.upper() == "NORM" for cells in rows for cell in cells):
        return "N", "abnormality NORM"
    if birads is None:
        return None, "no severity and no BI-RADS in the report"
    if birads == 4:
        return None, "no severity and BI-RADS 4 (suspicious, not proven)"
    code = {0: None, 1: "N", 2: "B", 3: "B", 5: "M", 6: "M"}[birads]
    return code, f"report BI-RADS {birads}" if code else "no severity and BI-RADS 0 (incomplete)"


def collect(request: Request) -> Collected:
    """Mammograms labelled normal/benign/malignant, split in ``request.counts`` (a ratio) stratified by class."""
    source, names, exclude, log = request.source, request.names, request.exclude, request.log
    table = find_metadata(source, exclude)
    log(f"DMID: reading {table}")
    rows = severity_rows(table)
    column = severity_column(rows)
    birads = report_birads(source, exclude)
    images = find_images(source, exclude)
    if not images:
        raise UsageError(f"--source {source}: no IMG<n>.tif or .dcm mammograms found (TIFF Images/ folder)")
    if any(p.suffix.lower() == ".dcm" for p in images.values()):
        try:
            importlib.import_module("pydicom")
        except ImportError as exc:
            raise UsageError("DMID DICOM files need pydicom: pip install 'kmat[dicom]'") from exc
    skips = Skips()
    items = []
    fallbacks: Counter = Counter()
    for n in sorted(set(rows) | set(images)):
        code, how = label_of(rows.get(n, []), column, birads.get(n))
        where = f"IMG{n:03d}"
        if code is None:
            skips.add(how, where)
            continue
        if how != "severity":
            fallbacks[how] += 1
        path = images.get(n)
        if path is None:
            skips.add("image file not found", where)
            continue
        rel = path.relative_to(source).as_posix()
        try:
            convert = needs_png(path)
        except OSError as exc:
            skips.add("image cannot be read", f"{where} ({exc})")
            continue
        if convert:
            item = Item(
                names[code], rel=str(Path(rel).with_suffix(".png").as_posix()), writer=png_writer(path)
            )
        else:
            item = Item(names[code], rel=rel, source=path)
        items.append(item)
    notes = [f"metadata: {table.name}; severity column {column if column is not None else 'not found'}"]
    notes += [f"{count} image(s) labelled by {how}" for how, count in sorted(fallbacks.items())]
    return Collected(
        splits=split_items({"hi": items}, request.counts, request.seed), skips=skips, notes=notes
    )
