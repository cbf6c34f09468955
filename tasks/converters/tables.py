"""Metadata tables: CSV (any common encoding) and XLSX (first worksheet) as rows of stripped strings.

XLSX is read with the standard library alone (an XLSX file is a zip of XML parts: the workbook names
its sheets, ``sharedStrings.xml`` holds the text cells, each sheet lists cells by reference ``B7``), so
no spreadsheet package is needed. A file this reader cannot parse is reported with how to export a CSV
instead, which every converter also accepts beside or in place of the XLSX.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from kmat_cli.api import UsageError

_NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


def read_table(path: Path) -> list[list[str]]:
    """Rows of a ``.csv`` or ``.xlsx`` file, every cell a stripped string (empty for blank cells)."""
    if path.suffix.lower() == ".xlsx":
        return read_xlsx(path)
    return read_csv(path)


def read_csv(path: Path) -> list[list[str]]:
    """Rows of a CSV file: UTF-8 (with or without BOM), else Windows-1252/Latin-1."""
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]


def _column(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _text(node: ElementTree.Element) -> str:
    """All ``<t>`` text under a shared or inline string (rich-text runs joined)."""
    return "".join(t.text or "" for t in node.iter(f"{{{_NS['m']}}}t"))


def read_xlsx(path: Path) -> list[list[str]]:
    """Rows of the first worksheet of an XLSX file (cells placed by their reference, gaps left empty)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            shared = []
            if "xl/sharedStrings.xml" in names:
                root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
                shared = [_text(si) for si in root.findall("m:si", _NS)]
            sheet = _first_sheet(z, names)
            root = ElementTree.fromstring(z.read(sheet))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError) as exc:
        raise UsageError(
            f"{path}: cannot read this XLSX ({exc}); save it as CSV (Excel or LibreOffice: Save As > CSV) "
            f"next to it as {path.with_suffix('.csv').name} and run again"
        ) from exc
    rows: list[list[str]] = []
    for row in root.iter(f"{{{_NS['m']}}}row"):
        r = int(row.get("r", len(rows) + 1)) - 1
        while len(rows) <= r:
            rows.append([])
        cells = rows[r]
        for c in row.findall("m:c", _NS):
            ref = _CELL_REF.match(c.get("r", ""))
            col = _column(ref.group(1)) if ref else len(cells)
            kind = c.get("t", "n")
            if kind == "inlineStr":
                node = c.find("m:is", _NS)
                value = _text(node) if node is not None else ""
            else:
                v = c.find("m:v", _NS)
                raw = v.text if v is not None and v.text is not None else ""
                if kind == "s" and raw:
                    value = shared[int(raw)]
                elif kind == "b":
                    value = "TRUE" if raw == "1" else "FALSE"
                else:
                    value = raw[:-2] if kind == "n" and raw.endswith(".0") else raw
            while len(cells) <= col:
                cells.append("")
            cells[col] = value.strip()
    return rows


def _first_sheet(z: zipfile.ZipFile, names: set[str]) -> str:
    """The part name of the workbook's first sheet (through the workbook's relationships)."""
    try:
        workbook = ElementTree.fromstring(z.read("xl/workbook.xml"))
        first = workbook.find("m:sheets/m:sheet", _NS)
        rid = first.get(f"{{{_NS['r']}}}id") if first is not None else None
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        for rel in rels.findall("rel:Relationship", _NS):
            if rel.get("Id") == rid:
                target = rel.get("Target", "").lstrip("/")
                return target if target.startswith("xl/") else f"xl/{target}"
    except KeyError:
        pass
    sheets = sorted(n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
    if not sheets:
        raise KeyError("no worksheet in the workbook")
    return sheets[0]


def records(rows: list[list[str]], header: int = 0) -> list[dict[str, str]]:
    """Rows after ``rows[header]`` as dicts keyed by the header's lower-case, stripped names."""
    if len(rows) <= header:
        return []
    keys = [k.strip().lower() for k in rows[header]]
    out = []
    for row in rows[header + 1 :]:
        if not any(row):
            continue
        out.append({k: (row[i] if i < len(row) else "") for i, k in enumerate(keys) if k})
    return out
