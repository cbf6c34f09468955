"""The DICOM reader's deflated path reads a file as pydicom's own reader does: the same element values, the
same original encoding (VR, byte order, Specific Character Set), the same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
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
