"""CC-CCII (China Consortium of Chest CT Image Investigation) -> chest, high-end (CT slices).

Source layout: the class zips as downloaded (``COVID19-*.zip`` or ``NCP-*.zip``, ``CP-*.zip``,
``Normal-*.zip``) and/or their extracted trees ``NCP|CP|Normal/<patient_id>/<scan_id>/<slice>.png|jpg``,
plus ``lesions_slices.csv`` (required: one slice path per line, ``NCP/<pid>/<sid>/<slice>``) and
optionally ``unzip_filenames.csv`` (zip_file, label, patient_id, scan_id, n_slice) and an
``exclude_list.txt`` of ``<class> <patient_id>`` lines. Classes: NCP = COVID-19 pneumonia, CP = common
pneumonia, Normal = normal.

Table 1 counts CT *slices*, so slices are sampled: lesion slices (``lesions_slices.csv``) for NCP and CP,
the central 60% of each scan for Normal (the lungs, not the neck or abdomen). Patients are split per
class in Table 1's ratio (no patient in two splits); then each split draws its Table 1 number of slices,
a third per class, round-robin over its scans in seeded random order so that many scans contribute.
Zip members are extracted only for the drawn slices. A zip that cannot be opened (the reported broken
``NCP-13``) is skipped and reported; so are scans whose slice count differs from ``unzip_filenames.csv``
and lesion slices without a file.
"""

from __future__ import annotations

import random
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kmat_cli.api import SPLITS, UsageError

from .files import IMAGE_SUFFIXES, find_file, walk_files
from .layout import Collected, Item, Request, Skips
from .splitting import assign_groups, proportional
from .tables import read_table, records

CLASSES = {"ncp": "NCP", "cp": "CP", "normal": "Normal"}
NORMAL_RANGE = (0.2, 0.8)  # central part of a Normal scan that slices are drawn from


@dataclass(frozen=True)
class Slice:
    """A CT slice: a file on disk or a member of a zip."""

    name: str
    path: Path | None = None
    zip_path: Path | None = None
    member: str = ""


Scan = tuple[str, str, str]  # (class, patient_id, scan_id)


def parse_slice_path(parts: Sequence[str]) -> tuple[Scan, str] | None:
    """``(.../)<class>/<pid>/<sid>/<file>`` -> ((class, pid, sid), file), else None."""
    if len(parts) < 4:
        return None
    cls = CLASSES.get(parts[-4].strip().lower())
    if cls is None:
        return None
    return (cls, parts[-3].strip(), parts[-2].strip()), parts[-1].strip()


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name.lower()))


class _Zips:
    """Open zip files, kept open while slices are extracted."""

    def __init__(self) -> None:
        self.open: dict[Path, zipfile.ZipFile] = {}

    def get(self, path: Path) -> zipfile.ZipFile:
        if path not in self.open:
            self.open[path] = zipfile.ZipFile(path)
        return self.open[path]

    def writer(self, zip_path: Path, member: str) -> Callable[[Path], None]:
        def write(dest: Path) -> None:
            try:
                dest.write_bytes(self.get(zip_path).read(member))
            except zipfile.BadZipFile as exc:
                raise OSError(f"{zip_path.name}: {exc}") from exc

        return write


def find_scans(source: Path, exclude: Path | None, zips: _Zips, skips: Skips) -> dict[Scan, dict[str, Slice]]:
    """Every scan's slices keyed by lower-case stem, from extracted trees first, then from zips."""
    scans: dict[Scan, dict[str, Slice]] = {}
    archives = []
    for path in walk_files(source, exclude):
        if path.suffix.lower() == ".zip":
            archives.append(path)
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        parsed = parse_slice_path(path.relative_to(source).parts)
        if parsed:
            scan, name = parsed
            scans.setdefault(scan, {}).setdefault(Path(name).stem.lower(), Slice(name=name, path=path))
    extracted = set(scans)
    for archive in archives:
        try:
            members = zips.get(archive).namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            skips.add("zip file cannot be opened (broken or incomplete download)", f"{archive.name} ({exc})")
            continue
        for member in members:
            if member.endswith("/") or Path(member).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            parsed = parse_slice_path(member.replace("\\", "/").split("/"))
            if parsed and parsed[0] not in extracted:
                scan, name = parsed
                scans.setdefault(scan, {}).setdefault(
                    Path(name).stem.lower(), Slice(name=name, zip_path=archive, member=member)
                )
    return scans


def lesion_slices(path: Path) -> list[tuple[Scan, str]]:
    """The (scan, slice stem) pairs listed in ``lesions_slices.csv`` (header and blank lines skipped)."""
    out = []
    for row in read_table(path):
        for cell in row:
            parsed = parse_slice_path(cell.replace("\\", "/").strip().split("/"))
            if parsed:
                out.append((parsed[0], Path(parsed[1]).stem.lower()))
    return out


def _check_listing(
    source: Path, exclude: Path | None, scans: dict[Scan, dict[str, Slice]], skips: Skips
) -> None:
    """Drop scans whose slice count differs from ``unzip_filenames.csv``; report listed scans not found."""
    listing = find_file(source, {"unzip_filenames.csv"}, exclude)
    if listing is None:
        return
    for row in records(read_table(listing)):
        cls = CLASSES.get(row.get("label", "").strip().lower())
        if cls is None:
            continue
        scan = (cls, row.get("patient_id", "").strip(), row.get("scan_id", "").strip())
        where = f"{'/'.join(scan)} ({row.get('zip_file', '')})"
        if scan not in scans:
            skips.add("scan in unzip_filenames.csv not found (zip missing or broken?)", where)
            continue
        try:
            expected = int(float(row.get("n_slice", "")))
        except ValueError:
            continue
        if expected != len(scans[scan]):
            skips.add("scan slice count differs from unzip_filenames.csv (erroneous scan)", where)
            del scans[scan]


def _excluded_patients(source: Path, exclude: Path | None) -> set[tuple[str, str]]:
    listed = find_file(source, {"exclude_list.txt"}, exclude)
    out = set()
    if listed is not None:
        for line in listed.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0].strip().lower() in CLASSES:
                out.add((CLASSES[fields[0].strip().lower()], fields[1].strip()))
    return out


def candidates(
    scans: dict[Scan, dict[str, Slice]], lesions: list[tuple[Scan, str]], skips: Skips
) -> dict[Scan, list[Slice]]:
    """Slices eligible for sampling per scan: lesion slices (NCP, CP), central slices (Normal)."""
    out: dict[Scan, list[Slice]] = {}
    for scan, stem in lesions:
        if scan[0] == "Normal":
            continue
        hit = scans.get(scan, {}).get(stem)
        if hit is None:
            skips.add("lesion slice listed but no file found", f"{'/'.join(scan)}/{stem}")
            continue
        if hit not in out.setdefault(scan, []):
            out[scan].append(hit)
    for scan, slices in scans.items():
        if scan[0] == "Normal":
            ordered = sorted(slices.values(), key=lambda s: _natural(s.name))
            a, b = (int(len(ordered) * f) for f in NORMAL_RANGE)
            out[scan] = ordered[a : max(b, a + 1)]
    return {scan: sorted(s, key=lambda x: _natural(x.name)) for scan, s in out.items() if s}


def sample(
    scans: list[Scan], pool: Mapping[Scan, list[Slice]], n: int, rng: random.Random
) -> list[tuple[Scan, Slice]]:
    """Up to ``n`` slices drawn round-robin over ``scans`` (seeded order, shuffled within each scan)."""
    order = list(scans)
    rng.shuffle(order)
    queues = []
    for scan in order:
        slices = list(pool[scan])
        rng.shuffle(slices)
        queues.append((scan, slices))
    picked: list[tuple[Scan, Slice]] = []
    while len(picked) < n and queues:
        remaining = []
        for scan, slices in queues:
            if len(picked) >= n:
                break
            picked.append((scan, slices.pop()))
            if slices:
                remaining.append((scan, slices))
        queues = remaining if len(picked) < n else []
    return picked


def collect(request: Request) -> Collected:
    """Sampled CT slices per split (``request.counts`` = train/val/test slice counts), split by patient."""
    source, names, exclude, log = request.source, request.names, request.exclude, request.log
    lesion_file = find_file(source, {"lesions_slices.csv", "lesion_slices.csv"}, exclude)
    if lesion_file is None:
        raise UsageError(
            f"--source {source}: lesions_slices.csv not found (download it with the CC-CCII zips)"
        )
    skips = Skips()
    zips = _Zips()
    log("CC-CCII: listing scans (folders and zips)")
    scans = find_scans(source, exclude, zips, skips)
    if not scans:
        raise UsageError(f"--source {source}: no CT slices under NCP/, CP/ or Normal/ folders or in zips")
    _check_listing(source, exclude, scans, skips)
    dropped = _excluded_patients(source, exclude)
    for scan in [s for s in scans if (s[0], s[1]) in dropped]:
        skips.add("patient in exclude_list.txt", "/".join(scan))
        del scans[scan]
    pool = candidates(scans, lesion_slices(lesion_file), skips)
    patients: dict[str, Counter] = {}
    for cls, pid, _ in pool:
        patients.setdefault(f"{cls}/{pid}", Counter({cls: 1}))
    where = assign_groups(patients, request.counts, request.seed)
    rng = random.Random(request.seed)
    splits: dict[str, list[Item]] = {s: [] for s in SPLITS}
    notes = [
        "CT slices sampled: lesion slices for NCP/CP, central 60% of each scan for Normal; "
        "a third of each split per class, patients split by patient_id",
    ]
    for split, total in zip(SPLITS, request.counts, strict=True):
        for code, quota in zip(CLASSES.values(), proportional(total, [1, 1, 1]), strict=True):
            in_split = sorted(s for s in pool if s[0] == code and where[f"{code}/{s[1]}"] == split)
            picked = sample(in_split, pool, quota, rng)
            if len(picked) < quota:
                notes.append(f"{split} {names[code]}: {len(picked)} slices available of {quota} wanted")
            for scan, sl in picked:
                rel = f"{'/'.join(scan)}/{sl.name}"
                if sl.path is not None:
                    item = Item(classname=names[code], rel=rel, source=sl.path, group=f"{scan[0]}/{scan[1]}")
                else:
                    item = Item(
                        classname=names[code],
                        rel=rel,
                        writer=zips.writer(sl.zip_path, sl.member),
                        group=f"{scan[0]}/{scan[1]}",
                    )
                splits[split].append(item)
    return Collected(splits={"hi": splits}, skips=skips, notes=notes)
