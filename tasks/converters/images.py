"""PNG conversion where a published image cannot be used as it is.

Images an ordinary 8-bit reader handles (8-bit PNG/JPEG/BMP/TIFF, greyscale or colour) are linked
untouched. DICOM files and high-bit-depth images (16-bit or float TIFF/PNG) are converted to 8-bit
greyscale PNG: DICOM pixels go through the file's modality and VOI LUT (rescale slope/intercept,
window) when pydicom offers them, MONOCHROME1 is inverted, then every image is scaled linearly from its
own minimum..maximum to 0..255.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from kmat_cli.api import UsageError

HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def needs_png(path: Path) -> bool:
    """True if ``path`` must be converted (DICOM, or a high-bit-depth image); raises OSError if unreadable."""
    if path.suffix.lower() == ".dcm":
        return True
    from PIL import Image

    with Image.open(path) as im:
        return im.mode in HIGH_DEPTH_MODES


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Linear min..max scaling of any numeric array to uint8 (a constant image becomes all zeros)."""
    a = np.asarray(pixels, dtype=np.float64)
    if a.ndim == 3 and a.shape[-1] not in (3, 4):  # multi-frame: keep the first frame
        a = a[0]
    lo, hi = float(np.min(a)), float(np.max(a))
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.round((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def read_dicom(path: Path) -> np.ndarray:
    """The display pixels of a DICOM file (modality + VOI LUT applied, MONOCHROME1 inverted)."""
    try:
        import pydicom
    except ImportError as exc:
        raise UsageError("reading DICOM needs pydicom: pip install 'kmat[dicom]'") from exc
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    pixels = apply_voi_lut(apply_modality_lut(pixels, ds), ds)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        pixels = np.max(pixels) - pixels
    return np.asarray(pixels)


def png_writer(path: Path) -> Callable[[Path], None]:
    """A writer that converts ``path`` to an 8-bit PNG at the destination it is given."""

    def write(dest: Path) -> None:
        from PIL import Image

        if path.suffix.lower() == ".dcm":
            pixels = read_dicom(path)
        else:
            with Image.open(path) as im:
                pixels = np.asarray(im)
        Image.fromarray(to_uint8(pixels)).save(dest, format="PNG")

    return write
