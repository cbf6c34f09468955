"""``kmat data prepare chest`` on fake CC-CCII (folders, zips, a broken zip) and Kaggle X-ray downloads."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import task_fakes as fakes
from kmat.tasks.converters.splitting import proportional
from kmat.tasks.real import Chest
from task_cli import entries, name_of, run_kmat, splits_json

from kmat_cli.api import MODALITIES, SPLITS

CODES = {"NCP": "COVID-19 pneumonia", "CP": "common pneumonia", "Normal": "normal lungs"}


def test_chest_ct_slices_xray_and_patient_level_splits(tmp_path: Path, prepare_ok) -> None:
    ct = fakes.make_ccccii(tmp_path / "ccccii")
    xray = fakes.make_chestxray(tmp_path / "xray")
    root = tmp_path / "prepared"
    result = prepare_ok(
        "chest",
        "--source",
        str(tmp_path / "ccccii"),
        "--source-lo",
        str(tmp_path / "xray"),
        "--out",
        str(root),
    )
    assert "chest: prepared in" in result.output
    hi = entries(root, "hi")
    got = {e[0].removeprefix("hi/"): e[2] for es in hi.values() for e in es}
    # Table 1 asks for far more slices than the fake has, so every eligible slice is drawn: lesion slices
    # of NCP/CP (a .jpg slice listed as .png included), central slices of Normal, from folders and zips.
    assert got == {member: CODES[cls] for member, cls in ct.labels["hi"].items()}
    for es in hi.values():
        for rel, _, _ in es:
            path = root / rel
            zipped = rel.startswith("hi/CP/") or (rel.startswith("hi/NCP/") and int(rel.split("/")[2]) >= 103)
            assert path.is_file() and path.is_symlink() != zipped  # zip members extracted, others linked
    where = defaultdict(set)
    for split, es in hi.items():
        for rel, _, _ in es:
            where[ct.groups[rel.removeprefix("hi/")]].add(split)
    assert all(len(s) == 1 for s in where.values()) and {s for v in where.values() for s in v} >= {
        "train",
        "val",
    }
    report = {s["reason"]: s for s in splits_json(root)["skipped"]}
    assert (
        "NCP-13.zip" in report["hi: zip file cannot be opened (broken or incomplete download)"]["examples"][0]
    )
    assert report["hi: scan slice count differs from unzip_filenames.csv (erroneous scan)"]["count"] == 1
    assert report["hi: lesion slice listed but no file found"]["count"] == 1

    lo = entries(root, "lo")
    assert {name_of(e[0]): e[2] for es in lo.values() for e in es} == xray.labels["lo"]  # .DS_Store ignored
    n = len(xray.labels["lo"])
    assert [len(lo[s]) for s in SPLITS] == proportional(n, (4595, 923, 914))  # one image per group here
    persons = defaultdict(set)
    for split, es in lo.items():
        for rel, _, _ in es:
            if name_of(rel) in xray.groups:
                persons[xray.groups[name_of(rel)]].add(split)
    assert persons and all(len(s) == 1 for s in persons.values())

    task = Chest(root=str(root))
    for modality in MODALITIES:
        assert sum(len(task.split(modality, s)) for s in SPLITS) == sum(
            len(v) for v in entries(root, modality).values()
        )


def test_chest_needs_both_sources_exit_2(tmp_path: Path) -> None:
    fakes.make_ccccii(tmp_path / "ccccii")
    result = run_kmat(
        "data", "prepare", "chest", "--source", str(tmp_path / "ccccii"), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--source-lo" in lines[0] and "Chest X-ray" in lines[0]
    assert not (tmp_path / "o").exists()
