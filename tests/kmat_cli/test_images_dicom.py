"""DICOM decoding against the standard's formulas computed here with numpy from pydicom's raw pixels."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from kmat_cli.images import ImageError, is_dicom, load_frames, load_image


def _u8(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(np.round((x - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def _grey(img) -> np.ndarray:
    arr = np.asarray(img)
    assert arr.ndim == 3 and arr.shape[-1] == 3 and (arr[..., 0] == arr[..., 2]).all()
    return arr[..., 0]


def test_ct_rescale_then_min_max() -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds and float(ds.RescaleIntercept) != 0  # rescale only, no window
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(_grey(load_image(path)), _u8(hu, hu.min(), hu.max()))


def test_mr_linear_window_and_monochrome1_inversion(tmp_path: Path) -> None:
    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    x = ds.pixel_array.astype(np.float64)
    # PS3.3 C.11.2.1.2.1 (LINEAR) onto the signed 16-bit output range of the file, then to 8 bits
    y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min
    y = np.where(x <= c - 0.5 - (w - 1) / 2, y_min, np.where(x > c - 0.5 + (w - 1) / 2, y_max, y))
    want = _u8(y, y_min, y_max)
    assert np.array_equal(_grey(load_image(path)), want)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mono1.dcm")
    assert np.array_equal(_grey(load_image(tmp_path / "mono1.dcm")), 255 - want)


def test_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    raw = ds.pixel_array.astype(np.int64)
    lut = (np.arange(4096) // 16).astype(np.uint16)  # a staircase LUT with 256 steps over 0..4095
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])  # LUT Descriptor: entries, first mapped value, bits
    item.add_new(0x00283006, "US", lut.tolist())  # LUT Data
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(tmp_path / "voi.dcm")
    want = _u8(lut[np.clip(raw, 0, 4095)].astype(np.float64), 0.0, float(lut.max()))
    assert np.array_equal(_grey(load_image(tmp_path / "voi.dcm")), want)


def test_multi_frame_gives_every_frame_or_the_first(tmp_path: Path) -> None:
    path = get_testdata_file("SC_rgb_rle_2frame.dcm")
    arr = pydicom.dcmread(path).pixel_array  # (2, H, W, 3) uint8
    frames = load_frames(path)
    assert [f for f, _ in frames] == [0, 1]
    for (_, img), want in zip(frames, arr, strict=True):
        assert np.array_equal(np.asarray(img), want)
    first = load_frames(path, "first")
    assert len(first) == 1 and first[0][0] == 0
    single = load_frames(get_testdata_file("CT_small.dcm"))
    assert len(single) == 1 and single[0][0] is None


def test_16_bit_rgb_and_palette_scale_from_their_bit_depth() -> None:
    path = get_testdata_file("SC_rgb_rle_16bit.dcm")
    ds = pydicom.dcmread(path)
    want = _u8(ds.pixel_array.astype(np.float64), 0.0, 2.0**ds.BitsStored - 1)
    assert np.array_equal(np.asarray(load_image(path)), want)
    from pydicom.pixels import apply_color_lut

    path = get_testdata_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds)[..., :3].astype(np.float64)
    bits = ds.RedPaletteColorLookupTableDescriptor[2]
    assert np.array_equal(np.asarray(load_image(path)), _u8(rgb, 0.0, 2.0**bits - 1))


def test_jpeg_compressed_decodes_or_names_the_missing_decoder(tmp_path: Path) -> None:
    baseline = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline: Pillow decodes it
    ds = pydicom.dcmread(baseline)
    assert np.array_equal(np.asarray(load_image(baseline)), ds.pixel_array)
    lossy12 = get_testdata_file("JPEG-lossy.dcm")  # 12-bit JPEG extended: needs pylibjpeg or gdcm
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _ = pydicom.dcmread(lossy12).pixel_array
    except RuntimeError:
        with pytest.raises(ImageError, match=r"cannot decode DICOM pixel data .*JPEG Extended"):
            load_image(lossy12)
    else:
        assert load_image(lossy12).mode == "RGB"


def test_dicom_is_recognised_by_content_and_non_images_fail_clearly(tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "IM0001")
    assert is_dicom(tmp_path / "IM0001") and not is_dicom(Path(__file__))
    assert np.array_equal(
        np.asarray(load_image(tmp_path / "IM0001")), np.asarray(load_image(get_testdata_file("CT_small.dcm")))
    )
    with pytest.raises(ImageError, match="no pixel data"):
        load_image(get_testdata_file("rtplan.dcm"))
    with pytest.raises(ImageError, match="cannot decode DICOM pixel data"):
        load_image(get_testdata_file("MR_truncated.dcm"))
