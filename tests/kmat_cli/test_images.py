"""load_image: RGB output, EXIF orientation, high bit depth, alpha, unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmat_cli.api import UsageError
from kmat_cli.images import load_image


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.mode == "RGB" and out.size == (20, 40)  # width and height swapped
    top, bottom = np.asarray(out)[:10].mean(), np.asarray(out)[-10:].mean()
    assert top > 200 and bottom < 50  # the white left half is now on top


def test_modes_become_rgb(tmp_path: Path) -> None:
    grey16 = (np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    out = np.asarray(load_image(tmp_path / "g16.png"))
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    rgba = np.zeros((5, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0  # fully transparent red composites to black
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.asarray(load_image(tmp_path / "a.png")).max() == 0
    Image.fromarray(np.full((4, 4), 7, dtype=np.uint8)).save(tmp_path / "l.bmp")
    assert np.asarray(load_image(tmp_path / "l.bmp")).tolist() == [[[7, 7, 7]] * 4] * 4


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UsageError, match=r"x\.png: cannot decode image"):
        load_image(tmp_path / "x.png")
    with pytest.raises(UsageError, match="not found"):
        load_image(tmp_path / "missing.jpg")
