"""The DICOM reader's deflated path reads a file as pydicom's own reader does: the same element values, the
same original encoding (VR, byte order, Specific Character Set), the same pixels. A decompression bomb
(a header asking for more pixels than the limit, a deflated file that inflates past it) is refused from the
header, fast and in little memory, and is an error row in predict."""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from faults import cli, png
from pydicom.data import get_testdata_file

from kmat_cli.dicom import _read_deflated, read_frames


def _deflated_utf8(tmp_path: Path) -> Path:
    """pydicom's deflated test image with a UTF-8 Specific Character Set and a non-ASCII patient name."""
    ds = pydicom.dcmread(get_testdata_file("image_dfl.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jörg"
    path = tmp_path / "utf8_dfl.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_deflated_file_keeps_its_character_set_and_text(tmp_path: Path) -> None:
    path = _deflated_utf8(tmp_path)
    reference = pydicom.dcmread(path)
    assert reference.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    ours = _read_deflated(path, "all")
    assert ours is not None
    assert ours.original_character_set == reference.original_character_set == ["UTF8"]
    assert ours.original_encoding == (False, True)
    assert str(ours.PatientName) == str(reference.PatientName) == "Müller^Jörg"
    assert np.array_equal(ours.pixel_array, reference.pixel_array)


def test_deflated_frames_equal_pydicoms_pixels_scaled(tmp_path: Path) -> None:
    path = _deflated_utf8(tmp_path)
    [(frame, image)] = read_frames(path, "all")
    raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
    expected = np.round((raw - raw.min()) * 255.0 / (raw.max() - raw.min())).astype(np.uint8)
    assert frame is None
    assert np.array_equal(np.asarray(image)[..., 0], expected)


def test_a_file_not_deflated_is_left_to_pydicoms_reader() -> None:
    assert _read_deflated(Path(get_testdata_file("CT_small.dcm")), "all") is None


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


@pytest.mark.usefixtures("no_progress")
@pytest.mark.parametrize("kind", ["frames", "tiny-frames", "pixels", "deflated"])
def test_dicom_bombs_are_refused_from_the_header_fast_and_small(bombs: dict[str, Path], kind: str) -> None:
    from kmat_cli.images import ImageError, load_frames

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
        assert message.startswith(f"{path}: DICOM header asks for ") and "KMAT_MAX_DICOM_SAMPLES" in message


@pytest.mark.usefixtures("no_progress")
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


@pytest.mark.usefixtures("no_progress")
def test_dicom_bomb_is_an_error_row_in_predict(
    tmp_path: Path, bombs: dict[str, Path], bracket_run: Path
) -> None:
    images = tmp_path / "in"
    png(images / "ok.png", 1)
    for kind in ("frames", "deflated"):
        (images / f"{kind}.dcm").symlink_to(bombs[kind])
    out = tmp_path / "p.jsonl"
    result = cli("predict", images, "--run", bracket_run, "--output", out, "--format", "jsonl")
    assert result.code == 0, result.err
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["ok.png"]["error"] is None and rows["ok.png"]["label"] is not None
    for kind in ("frames", "deflated"):
        assert "DICOM header asks for" in rows[f"{kind}.dcm"]["error"]
        assert rows[f"{kind}.dcm"]["label"] is None
