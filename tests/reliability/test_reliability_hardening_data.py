"""Hardening of image decoding, printed text and the feature cache: DICOM decompression bombs, user text shown
literally by rich, a read-only feature cache, damaged cache shards and hash memos."""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faults import assert_error, cli, custom_task, png, run_folders, train_args

pydicom = pytest.importorskip("pydicom")

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


# ----------------------------------------------------------------------------------------- DICOM bombs
def _meta(transfer_syntax: str) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def _header(rows: int, cols: int, frames: int | None) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.Rows, ds.Columns = rows, cols
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds


def lying_dicom(path: Path, rows: int, cols: int, frames: int | None) -> Path:
    """An explicit VR little endian file whose header claims ``frames x rows x cols`` 8-bit pixels while its
    pixel data holds 64 bytes."""
    from pydicom.dataset import FileDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = FileDataset(str(path), _header(rows, cols, frames), file_meta=_meta(ExplicitVRLittleEndian))
    ds.PixelData = bytes(64)
    ds.save_as(path, enforce_file_format=True)
    return path


def deflated_bomb(path: Path, rows: int, cols: int) -> Path:
    """A Deflated Explicit VR Little Endian file with complete ``rows x cols`` 8-bit pixel data, all zero:
    a few hundred KB on disk however large the image (written as a stream, never held in memory)."""
    from pydicom.filebase import DicomBytesIO, DicomFileLike
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, _header(rows, cols, None))
    pixels = rows * cols
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, pixels)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as handle:
        handle.write(bytes(128) + b"DICM")
        meta = DicomFileLike(handle)
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, _meta(DeflatedExplicitVRLittleEndian))
        handle.write(z.compress(body.getvalue() + element))
        block = bytes(1 << 22)
        for start in range(0, pixels, len(block)):
            handle.write(z.compress(block[: min(len(block), pixels - start)]))
        handle.write(z.flush())
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "frames": lying_dicom(folder / "frames.dcm", 64, 64, 10**7),
        "tiny-frames": lying_dicom(folder / "tiny-frames.dcm", 1, 1, 10**7),  # 10^7 values: under the limit
        "pixels": lying_dicom(folder / "pixels.dcm", 16384, 16384, None),
        "deflated": deflated_bomb(folder / "deflated.dcm", 16384, 16384),
    }


@pytest.mark.parametrize("kind", ["frames", "tiny-frames", "pixels", "deflated"])
def test_dicom_bombs_are_refused_from_the_header_fast_and_small(bombs: dict[str, Path], kind: str) -> None:
    from kmat_cli.images import DICOM_LIMIT_ENV, ImageError, load_frames

    path = bombs[kind]
    assert path.stat().st_size < 1 << 20  # a small file asking for 10^7 frames or 268 megapixels
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ImageError) as info:
            load_frames(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 2.0, f"{seconds:.2f} s"
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"
    message = str(info.value)
    assert "\n" not in message
    if kind == "tiny-frames":  # within the limit: pydicom finds the pixel data short, without a frame list
        assert message.startswith(f"{path}: cannot decode DICOM pixel data (The number of bytes")
    else:
        assert message.startswith(f"{path}: DICOM header asks for ") and DICOM_LIMIT_ENV in message


def test_dicom_limit_is_configurable_and_ordinary_files_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian

    from kmat_cli.errors import UsageError
    from kmat_cli.images import DICOM_LIMIT_ENV, ImageError, dicom_sample_limit, load_frames, load_image

    assert dicom_sample_limit() == 2 * 89_478_485  # where Pillow refuses an image
    two_frames = get_testdata_file("SC_rgb_rle_2frame.dcm")  # 2 frames x 100 x 100 x 3 = 60,000 values
    monkeypatch.setenv(DICOM_LIMIT_ENV, "60000")
    assert len(load_frames(two_frames)) == 2
    monkeypatch.setenv(DICOM_LIMIT_ENV, "59999")
    with pytest.raises(ImageError, match=r"2 frame\(s\) x 100 x 100 x 3 sample\(s\) = 60,000"):
        load_frames(two_frames)
    assert len(load_frames(two_frames, "first")) == 1  # only frame 0 is decoded: 30,000 values
    monkeypatch.setenv(DICOM_LIMIT_ENV, "many")
    with pytest.raises(UsageError, match=DICOM_LIMIT_ENV):
        dicom_sample_limit()
    monkeypatch.delenv(DICOM_LIMIT_ENV)
    # a real deflated file still decodes, to the same pixels as its explicit VR little endian copy
    deflated = get_testdata_file("image_dfl.dcm")
    ds = pydicom.dcmread(deflated)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "plain.dcm", enforce_file_format=True)
    assert np.array_equal(np.asarray(load_image(deflated)), np.asarray(load_image(tmp_path / "plain.dcm")))


def test_dicom_bomb_is_an_error_row_in_predict(tmp_path: Path, bombs: dict[str, Path], trained: Path) -> None:
    images = tmp_path / "in"
    png(images / "ok.png", 1)
    for kind in ("frames", "deflated"):
        (images / f"{kind}.dcm").symlink_to(bombs[kind])
    out = tmp_path / "p.jsonl"
    result = cli("predict", images, "--run", trained, "--output", out, "--format", "jsonl")
    assert result.code == 0, result.err
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["ok.png"]["error"] is None and rows["ok.png"]["label"] is not None
    for kind in ("frames", "deflated"):
        assert "DICOM header asks for" in rows[f"{kind}.dcm"]["error"]
        assert rows[f"{kind}.dcm"]["label"] is None


# ------------------------------------------------------------------------------------------- shared run
BRACKETED = ["nevus [benign]", "[/]"]


@pytest.fixture(scope="module")
def bracket_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom task whose class names are rich markup (``[/]`` cannot be a folder: labels come from CSVs)."""
    folder = tmp_path_factory.mktemp("brackets")
    n = 0
    for modality in ("hi", "lo"):
        lines = ["path,label,split"]
        for split, count in (("train", 2), ("val", 1), ("test", 1)):
            for label in range(len(BRACKETED)):
                for _ in range(count):
                    n += 1
                    png(folder / modality / f"{n}.png", n)
                    lines.append(f"{n}.png,{label},{split}")
        (folder / modality / "labels.csv").write_text("\n".join(lines) + "\n")
    return custom_task(folder, BRACKETED, data={"hi": "hi/labels.csv", "lo": "lo/labels.csv"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, bracket_task: Path) -> Path:
    """A short run of the bracketed task, under an output folder whose path holds rich markup too."""
    out = tmp_path_factory.mktemp("runs") / "x[" / "y]"
    result = cli(*train_args(bracket_task, out))
    assert result.code == 0, result.err
    [folder] = run_folders(out)
    return folder
