"""Miniature fake copies of the six public datasets, in their publishers' layouts, with their pitfalls.

Each builder writes tiny images and metadata under a folder and returns what a correct converter must
conclude (labels, groups, what must be left out), computed from how the fake was built.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image


def image(path: Path, value: int = 128, mode: str = "RGB", size: int = 8) -> Path:
    """A tiny image file (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}[
        path.suffix.lower()
    ]
    if mode == "I;16":
        arr = (np.arange(size * size, dtype=np.uint16).reshape(size, size) * 50 + 1000).astype(np.uint16)
        Image.fromarray(arr).save(path, format=fmt)  # uint16 -> mode I;16
    else:
        Image.new(mode, (size, size), (value, value // 2, 255 - value) if mode == "RGB" else value).save(
            path, format=fmt
        )
    return path


def png_bytes(value: int) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    return buf.getvalue()


def write_csv(path: Path, rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _col(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def write_xlsx(path: Path, rows: list[list]) -> Path:
    """A minimal XLSX workbook (one sheet): text in shared strings (one cell inline), numbers as
    numbers, empty cells omitted, as spreadsheet programs write them."""
    shared: list[str] = []
    cells_xml = []
    inline_done = False
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{_col(c)}{r}"
            if value is None or value == "":
                continue
            if isinstance(value, (int, float)):
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif not inline_done and r > 1:
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
                inline_done = True
            else:
                if value not in shared:
                    shared.append(value)
                cells.append(f'<c r="{ref}" t="s"><v>{shared.index(value)}</v></c>')
        cells_xml.append(f'<row r="{r}">{"".join(cells)}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
        f'<sheet name="Sheet1" sheetId="1" r:id="rId7"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId7" Type="x" Target="worksheets/data.xml"/></Relationships>',
        "xl/worksheets/data.xml": f'<?xml version="1.0"?><worksheet xmlns="{main}"><sheetData>{"".join(cells_xml)}</sheetData></worksheet>',
        "xl/sharedStrings.xml": f'<?xml version="1.0"?><sst xmlns="{main}">'
        + "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
        + "</sst>",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return path


@dataclass
class Truth:
    """What a correct conversion yields: per modality, file name -> class name (and group)."""

    labels: dict[str, dict[str, str]] = field(default_factory=lambda: {"hi": {}, "lo": {}})
    groups: dict[str, str] = field(default_factory=dict)  # file name -> patient/case
    split_of: dict[str, str] = field(default_factory=dict)  # file name -> official split
    left_out: dict[str, str] = field(default_factory=dict)  # file or row -> why


# ----------------------------------------------------------------------------------------- MRA-MIDAS
MIDAS_PATHS = [
    ("malignant- ak", "actinic keratosis"),
    ("malignant- bcc ", "basal cell carcinoma"),
    ("malignant- melanoma", "melanoma"),
    ("benign-melanocytic nevus", "melanocytic nevus"),
    ("malignant- scc", "squamous cell carcinoma"),
    ("malignant- sccis", "squamous cell carcinoma"),
    ("benign-seborrheic keratosis", "seborrheic keratosis"),
    ("benign-dermatofibroma", None),
]


def make_midas(root: Path, *, as_csv: bool = False, patients: int = 32) -> Truth:
    """``release_midas.xlsx`` (or .csv) beside a flat image folder (one sub-folder nested)."""
    truth = Truth()
    header = [
        "midas_record_id", "midas_file_name", "midas_iscontrol", "midas_distance", "midas_location",
        "midas_path", "midas_pathreport", "midas_gender", "midas_age", "clinical_impression_1",
        "length_(mm)", "width_(mm)",
    ]  # fmt: skip
    rows: list[list] = [header]
    images = root / "images"
    for p in range(patients):
        record = 1000 + p
        lesions = 2 if p % 4 == 0 else 1
        for lesion in range(lesions):
            path, cls = MIDAS_PATHS[(p + lesion) % len(MIDAS_PATHS)]
            control = "no"
            if p % 10 == 9 and lesion == 0:
                path, cls, control = "", None, "yes"
            for distance in ("dscope", "6in", "1ft"):
                stem = f"{record}-{lesion}-{distance}"
                listed = f"{stem}.jpeg" if p % 7 == 1 else f"{stem}.jpg"
                folder = images / "extra" if p == 5 else images
                actual = folder / (f"{stem}_cropped.jpg" if p == 3 else f"{stem}.jpg")
                missing = p % 11 == 2 and distance == "6in"
                if not missing:
                    image(actual, value=(p * 7) % 255)
                shown_distance = "dscope " if p == 6 and distance == "dscope" else distance
                rows.append([
                    record, listed, control, shown_distance, "back", path, "", "f", 50, "", 4.0, 3,
                ])  # fmt: skip
                modality = {"dscope": "hi", "6in": "lo"}.get(distance)
                if modality is None:
                    truth.left_out[actual.name] = "distance"
                elif cls is None:
                    truth.left_out[actual.name] = "diagnosis"
                elif missing:
                    truth.left_out[listed] = "missing"
                else:
                    truth.labels[modality][actual.name] = cls
                    truth.groups[actual.name] = str(record)
    rows.append(
        [9999, "virtual.jpg", "no", "n/a - virtual", "arm", "malignant- melanoma", "", "m", 60, "", 1, 1]
    )
    if as_csv:
        write_csv(root / "release_midas.csv", rows)
    else:
        write_xlsx(root / "release_midas.xlsx", rows)
    return truth


# ------------------------------------------------------------------------------------------- Derm7pt
DERM7PT = [
    ("basal cell carcinoma", "basal cell carcinoma"),
    ("clark nevus", "melanocytic nevus"),
    ("melanoma (in situ)", "melanoma"),
    ("melanoma (0.76 to 1.5 mm)", "melanoma"),
    ("reed or spitz nevus", "melanocytic nevus"),
    ("dermatofibroma", "other benign lesion"),
    ("vascular lesion", "other benign lesion"),
    ("seborrheic keratosis", "seborrheic keratosis"),
    ("blue nevus", "melanocytic nevus"),
    ("lentigo", "other benign lesion"),
]


def make_derm7pt(root: Path, cases: int = 30) -> Truth:
    """``release_v0/release_v0/{images,meta}`` (a same-name nested folder, as some unzip tools make)."""
    truth = Truth()
    base = root / "release_v0" / "release_v0"
    header = ["case_num", "diagnosis", "seven_point_score", "pigment_network", "streaks", "clinic", "derm",
              "case_id", "notes", "elevation", "location", "sex", "management"]  # fmt: skip
    rows: list[list] = [header]
    splits = {"train": [], "val": [], "test": []}
    for i in range(cases):
        diagnosis, cls = DERM7PT[i % len(DERM7PT)]
        folder = f"F{i % 3}a"
        clinic, derm = f"{folder}/Cl{i:03d}.jpg", f"{folder}/Dl{i:03d}.jpg"
        rows.append(
            [
                i + 1,
                diagnosis,
                1,
                "typical",
                "absent",
                clinic,
                derm,
                f"case_{i}",
                "",
                "flat",
                "back",
                "f",
                "excision",
            ]
        )
        derm_file = base / "images" / (derm.upper() if i == 4 else derm)  # case differs from meta.csv
        image(derm_file, value=i * 5)
        if i != 7:
            image(base / "images" / clinic, value=i * 5 + 1)
        else:
            truth.left_out[Path(clinic).name] = "missing"
        split = "train" if i % 3 == 0 or i % 5 == 1 else ("val" if i % 3 == 1 else "test")
        splits[split].append(i)
        truth.labels["hi"][derm_file.name] = cls
        truth.split_of[derm_file.name] = split
        if i != 7:
            truth.labels["lo"][Path(clinic).name] = cls
            truth.split_of[Path(clinic).name] = split
    write_csv(base / "meta" / "meta.csv", rows)
    for split, name in (("train", "train"), ("val", "valid"), ("test", "test")):
        write_csv(base / "meta" / f"{name}_indexes.csv", [["indexes"]] + [[i] for i in splits[split]])
    return truth


# ------------------------------------------------------------------------------------------- CC-CCII
def make_ccccii(root: Path, patients: int = 6, slices: int = 10) -> Truth:
    """Extracted NCP/ and Normal/ trees, CP and half of NCP inside zips, a broken zip, the CSVs."""
    truth = Truth()
    lesion_lines = [["imgpath"]]
    listing = [["zip_file", "label", "patient_id", "scan_id", "n_slice"]]
    root.mkdir(parents=True, exist_ok=True)
    ncp_zip = zipfile.ZipFile(root / "COVID19-1.zip", "w")
    cp_zip = zipfile.ZipFile(root / "CP-1.zip", "w")
    for cls in ("NCP", "CP", "Normal"):
        for p in range(patients):
            pid = str({"NCP": 100, "CP": 200, "Normal": 300}[cls] + p)
            for s in range(1 + p % 2):
                sid = f"{pid}{s}"
                zipped = cls == "CP" or (cls == "NCP" and p >= patients // 2)
                zip_name = {"NCP": "NCP-1.zip", "CP": "CP-1.zip", "Normal": "Normal-1.zip"}[cls]
                n = slices + 1 if (cls == "Normal" and p == 0) else slices
                listing.append([zip_name, cls, pid, sid, slices])
                for k in range(slices):
                    name = f"{k:04d}.jpg" if (cls == "NCP" and k == 4 and p == 1) else f"{k:04d}.png"
                    member = f"{cls}/{pid}/{sid}/{name}"
                    if zipped:
                        (ncp_zip if cls == "NCP" else cp_zip).writestr(member, png_bytes(k * 20))
                    else:
                        image(root / member, value=k * 20, mode="L")
                    lesion = cls != "Normal" and 3 <= k <= 6
                    if lesion:
                        lesion_lines.append([f"{cls}/{pid}/{sid}/{k:04d}.png"])
                    central = cls == "Normal" and 2 <= k < 8
                    if (lesion or central) and not (cls == "Normal" and p == 0):
                        truth.labels["hi"][member] = cls
                        truth.groups[member] = f"{cls}/{pid}"
                if n != slices:  # listing says 10 slices, the folder has 11: an erroneous scan
                    image(root / f"{cls}/{pid}/{sid}/{slices:04d}.png", mode="L")
    ncp_zip.close()
    cp_zip.close()
    (root / "NCP-13.zip").write_bytes(b"this is not a zip archive")
    listing.append(["NCP-13.zip", "NCP", "999", "9990", 10])
    lesion_lines.append(["NCP/100/1000/0099.png"])  # listed, no such file
    write_csv(root / "unzip_filenames.csv", listing)
    write_csv(root / "lesions_slices.csv", lesion_lines)
    return truth


# ------------------------------------------------------------------------------------- chest X-ray
def make_chestxray(root: Path) -> Truth:
    """``archive/Data/{train,test}/{COVID19,NORMAL,PNEUMONIA}`` with mixed suffixes and .DS_Store."""
    truth = Truth()
    data = root / "archive" / "Data"
    names = {"COVID19": "COVID-19 pneumonia", "NORMAL": "normal lungs", "PNEUMONIA": "common pneumonia"}
    for split, n in (("train", 3), ("test", 1)):
        for folder, cls in names.items():
            for i in range(n * (4 if folder != "PNEUMONIA" else 5)):
                if folder == "PNEUMONIA" and i % 2 == 0:
                    person = f"person{i // 4 + (0 if split == 'train' else 50)}"
                    name = f"{person}_bacteria_{i}.jpeg"
                    truth.groups[name] = person
                else:
                    name = f"{folder}({i}).{'png' if i % 3 == 0 else 'jpg'}"
                    if split == "test":
                        name = f"t-{name}"
                image(data / split / folder / name, value=i * 9)
                truth.labels["lo"][name] = cls
    (data / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0\1")
    return truth


# ---------------------------------------------------------------------------------------------- DMID
def make_dmid(root: Path) -> Truth:
    """TIFF Images (nested in a same-name folder), a DICOM-only image, masks, reports, Metadata.xlsx."""
    truth = Truth()
    base = root / "DMID"
    tiffs = base / "TIFF Images" / "TIFF Images"
    rows: list[list] = [["Digital mammography dataset for breast cancer diagnosis research"], [],
                        ["Column 1: image id; column 2: view; ..."], ["Severity: N normal, B benign, M malignant"], []]  # fmt: skip
    plan = {  # number: (rows of (abnormality, severity), report BI-RADS or None, expected class or None)
        1: ([("CIRC", "B")], None, "benign breast lesion"),
        2: ([("NORM", "N")], None, "normal breast tissue"),
        3: ([("SPIC", "M")], None, "malignant breast lesion"),
        4: ([("CALC", "B ")], None, "benign breast lesion"),
        5: ([("CIRC", "B"), ("SPIC", "M")], None, "malignant breast lesion"),
        6: ([("NORM", "")], None, "normal breast tissue"),
        7: ([("MISC", "")], 5, "malignant breast lesion"),
        8: ([("ASYM", "")], 4, None),
        9: ([("CIRC", "B")], None, None),  # no image file
        10: ([("NORM", "N")], None, "normal breast tissue"),
        11: ([("CIRC", "B")], None, "benign breast lesion"),
        12: ([("CALC", "M")], None, "malignant breast lesion"),
        13: ([("CIRC", "B")], None, "benign breast lesion"),  # 16-bit TIFF -> PNG
        14: ([("SPIC", "M")], None, "malignant breast lesion"),  # DICOM only -> PNG
    }
    for n, (findings, birads, cls) in plan.items():
        name = f"IMG{n:03d}"
        for abnormality, severity in findings:
            rows.append([name, "MLO", "G", abnormality, severity, 120, 80, 25])
        if birads is not None:
            (base / "Reports").mkdir(parents=True, exist_ok=True)
            (base / "Reports" / f"Img{n:03d}.txt").write_text(
                f"Findings: ...\nImpression: BI-RADS: {birads}\n"
            )
        if n == 14:
            write_dicom(base / "DICOM Images" / f"{name}.dcm")
            truth.labels["hi"][f"{name}.png"] = cls
        elif n != 9:
            image(tiffs / f"{name}.tif", mode="I;16" if n == 13 else "RGB", value=n * 10)
            image(base / "ROI Masks" / f"{name}.tif", mode="L", value=255)
            if cls:
                truth.labels["hi"][f"{name}.png" if n == 13 else f"{name}.tif"] = cls
        if cls is None:
            truth.left_out[name] = "no label" if n == 8 else "missing"
    write_xlsx(base / "Metadata.xlsx", rows)
    return truth


def write_dicom(path: Path) -> None:
    """An 8x8 12-bit MONOCHROME2 DICOM image."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 60).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


# ---------------------------------------------------------------------------------------------- BUSI
BUSI_COUNTS = {"benign": 44, "malignant": 21, "normal": 13}  # 1/10 of the published 437/210/133


def make_busi(root: Path) -> Truth:
    """``Dataset_BUSI_with_GT/{benign,malignant,normal}`` with ``_mask``/``_mask_1`` files beside."""
    truth = Truth()
    names = {
        "benign": "benign breast lesion",
        "malignant": "malignant breast lesion",
        "normal": "normal breast tissue",
    }
    for cls, count in BUSI_COUNTS.items():
        folder = root / "Dataset_BUSI_with_GT" / cls
        for i in range(1, count + 1):
            image(folder / f"{cls} ({i}).png", mode="L", value=i)
            image(folder / f"{cls} ({i})_mask.png", mode="L", value=255)
            if i % 5 == 0:
                image(folder / f"{cls} ({i})_mask_1.png", mode="L", value=255)
            truth.labels["lo"][f"{cls} ({i}).png"] = names[cls]
    return truth
