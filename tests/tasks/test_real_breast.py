"""``kmat data prepare breast`` on fake DMID (TIFF, 16-bit TIFF, DICOM, masks, reports) and BUSI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import task_fakes as fakes
from kmat.tasks.real import Breast
from PIL import Image
from task_cli import entries, name_of, splits_json

from kmat_cli.api import SPLITS

BUSI_RATIO = (389, 155, 236)


def test_breast_labels_conversions_masks_and_table1_sizes(tmp_path: Path, prepare_ok) -> None:
    dmid = fakes.make_dmid(tmp_path / "dmid")
    busi = fakes.make_busi(tmp_path / "busi")
    root = tmp_path / "prepared"
    prepare_ok(
        "breast",
        "--source",
        str(tmp_path / "dmid"),
        "--source-lo",
        str(tmp_path / "busi"),
        "--out",
        str(root),
    )
    hi = entries(root, "hi")
    assert {name_of(e[0]): e[2] for es in hi.values() for e in es} == dmid.labels["hi"]
    for es in hi.values():
        for rel, _, _ in es:
            path = root / rel
            if rel.endswith(".tif"):  # 8-bit TIFF linked to the mammogram, never to its ROI mask
                assert path.is_symlink() and path.resolve().parent.name == "TIFF Images"
            else:  # 16-bit TIFF and DICOM converted to 8-bit PNG spanning 0..255
                with Image.open(path) as im:
                    pixels = np.asarray(im)
                assert not path.is_symlink() and im.mode == "L" and (pixels.min(), pixels.max()) == (0, 255)
    report = {s["reason"]: s["examples"] for s in splits_json(root)["skipped"]}
    assert report["hi: no severity and BI-RADS 4 (suspicious, not proven)"] == ["IMG008"]
    assert report["hi: image file not found"] == ["IMG009"]

    lo = entries(root, "lo")
    assert {name_of(e[0]): e[2] for es in lo.values() for e in es} == busi.labels["lo"]  # no _mask file
    # 78 images in Table 1's 389/155/236 ratio: 38.9, 15.5, 23.6 -> 39, 15, 24 (largest remainder)
    assert [len(lo[s]) for s in SPLITS] == [39, 15, 24]
    for cls, n in fakes.BUSI_COUNTS.items():  # each class divided in the same ratio, within one image
        for split, size in zip(SPLITS, (39, 15, 24), strict=True):
            got = sum(1 for e in lo[split] if e[0].startswith(f"lo/{cls}/"))
            assert abs(got - n * size / 78) < 1
    task = Breast(root=str(root))
    assert [len(task.split("lo", s)) for s in SPLITS] == [39, 15, 24]


def test_copy_mode_and_reprepare_replaces_the_layout(tmp_path: Path, prepare_ok) -> None:
    fakes.make_dmid(tmp_path / "dmid")
    fakes.make_busi(tmp_path / "busi")
    args = ["breast", "--source", str(tmp_path / "dmid"), "--source-lo", str(tmp_path / "busi")]
    root = tmp_path / "prepared"
    prepare_ok(*args, "--out", str(root), "--copy")
    first = entries(root, "lo")["train"][0][0]
    assert (root / first).is_file() and not (root / first).is_symlink()
    prepare_ok(*args, "--out", str(root), "--seed", "7")
    data = splits_json(root)
    assert data["seed"] == 7 and data["mode"] == "symlink"
    files = sorted(p.relative_to(root).as_posix() for p in (root / "lo").rglob("*") if p.is_file())
    assert files == sorted(e[0] for es in data["lo"].values() for e in es)  # nothing left from the copy run
