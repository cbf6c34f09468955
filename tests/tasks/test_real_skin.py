"""``kmat data prepare skin1|skin2`` on fake MRA-MIDAS and Derm7pt downloads."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import task_fakes as fakes
from kmat.tasks.real import Skin1, Skin2
from task_cli import entries, name_of, splits_json

from kmat_cli.api import MODALITIES, SPLITS


def labels(root: Path, modality: str) -> dict[str, str]:
    return {name_of(e[0]): e[2] for split in entries(root, modality).values() for e in split}


def split_of(root: Path, modality: str) -> dict[str, str]:
    return {name_of(e[0]): s for s, es in entries(root, modality).items() for e in es}


@pytest.mark.parametrize("as_csv", [False, True], ids=["xlsx", "csv-export"])
def test_skin1_labels_pitfalls_and_patient_level_splits(tmp_path: Path, prepare_ok, as_csv: bool) -> None:
    truth = fakes.make_midas(tmp_path / "midas", as_csv=as_csv)
    root = tmp_path / "prepared"
    result = prepare_ok("skin1", "--source", str(tmp_path / "midas"), "--out", str(root))
    assert "skin1: prepared in" in result.output and "squamous cell carcinoma" in result.output
    for modality in MODALITIES:  # every usable row, nothing else: .jpeg rows, _cropped files, nested folder
        assert labels(root, modality) == truth.labels[modality]
    report = {s["reason"]: s["count"] for s in splits_json(root)["skipped"]}
    assert report["image file not found (matched by name and stem)"] == sum(
        1 for why in truth.left_out.values() if why == "missing"
    )
    assert report["midas_distance '1ft' is not used by skin1"] > 0
    where = defaultdict(set)  # patient -> splits, over both modalities
    for modality in MODALITIES:
        for name, split in split_of(root, modality).items():
            where[truth.groups[name]].add(split)
    assert where and all(len(splits) == 1 for splits in where.values())
    sizes = [sum(len(entries(root, m)[s]) for m in MODALITIES) for s in SPLITS]
    assert sizes[0] > sizes[1] > 0 and sizes[2] > 0  # Table 1's shape: most in train


def test_skin1_is_deterministic_by_seed_and_loads(tmp_path: Path, prepare_ok) -> None:
    fakes.make_midas(tmp_path / "midas")
    src = str(tmp_path / "midas")
    for out, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        prepare_ok("skin1", "--source", src, "--out", str(tmp_path / out), "--seed", seed)
    a, b, c = (splits_json(tmp_path / x) for x in "abc")
    assert (a["hi"], a["lo"]) == (b["hi"], b["lo"])
    assert (a["hi"], a["lo"]) != (c["hi"], c["lo"])
    task = Skin1(root=str(tmp_path / "a"))
    for modality in MODALITIES:
        for split in SPLITS:
            samples = task.split(modality, split)
            for sample, entry in zip(samples, a[modality][split], strict=True):
                assert sample.path == tmp_path / "a" / entry[0] and sample.path.is_file()
                assert task.class_names[sample.label] == entry[2]
    link = tmp_path / "a" / a["hi"]["train"][0][0]
    assert link.is_symlink() and link.resolve().is_relative_to((tmp_path / "midas").resolve())


def test_skin2_uses_official_splits_and_groups_diagnoses(tmp_path: Path, prepare_ok) -> None:
    truth = fakes.make_derm7pt(tmp_path / "d7")
    root = tmp_path / "prepared"
    result = prepare_ok("skin2", "--source", str(tmp_path / "d7"), "--out", str(root))
    assert "clinic image not found" in result.output
    for modality in MODALITIES:
        assert labels(root, modality) == truth.labels[modality]
        assert split_of(root, modality) == {n: truth.split_of[n] for n in truth.labels[modality]}
    task = Skin2(root=str(root))
    assert task.class_names == [
        "basal cell carcinoma", "melanocytic nevus", "melanoma", "other benign lesion", "seborrheic keratosis",
    ]  # fmt: skip
    for modality in MODALITIES:
        for split in SPLITS:
            expected = sum(1 for n in truth.labels[modality] if truth.split_of[n] == split)
            assert len(task.split(modality, split)) == expected
