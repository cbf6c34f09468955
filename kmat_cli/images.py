"""Image decoding: image files (and DICOM frames) as RGB ``PIL.Image`` objects.

Pillow formats (PNG, JPEG, BMP, TIFF, GIF, WebP; the first frame of animated ones): EXIF orientation is
applied, 16-bit and float greyscale is min-max rescaled to 8 bits (:func:`kmat_cli.decoding.scale_to_uint8`,
no float64 copy of the whole image), palette/CMYK images are converted to RGB and alpha is composited on
black. DICOM files (a ``.dcm``/``.dicom`` name or ``DICM`` at byte 128) go to the DICOM reader,
:mod:`kmat_cli.dicom`. Every failure is one :class:`ImageError` naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmat_cli.decoding import FRAMES, Frames, ImageError, scale_to_uint8
from kmat_cli.dicom import (
    DICOM_LIMIT_ENV,
    DICOM_MAGIC,
    DICOM_SUFFIXES,
    dicom_sample_limit,
    is_dicom,
    read_frames,
)
from kmat_cli.errors import UsageError

if TYPE_CHECKING:  # Pillow and numpy are imported when an image is decoded
    from PIL.Image import Image

__all__ = [
    "DICOM_LIMIT_ENV",
    "DICOM_SUFFIXES",
    "FRAMES",
    "IMAGE_SUFFIXES",
    "Frames",
    "ImageError",
    "check_frames",
    "dicom_sample_limit",
    "is_dicom",
    "load_frames",
    "load_image",
    "to_rgb",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", *DICOM_SUFFIXES)
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _to_rgb(img: Image) -> Image:
    import numpy as np
    from PIL import Image as PILImage

    if img.mode in _HIGH_DEPTH:  # high bit depth greyscale: min-max to 8 bits
        arr = np.asarray(img)  # its own dtype (uint16, int32, float32): no float64 copy of the image
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        grey = scale_to_uint8(arr, lo, hi)
        del arr
        img = PILImage.fromarray(grey)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = PILImage.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def to_rgb(img: Image) -> Image:
    """A Pillow image as kmat decodes every file: 8-bit RGB (high-depth grey min-max scaled, alpha on black)."""
    return _to_rgb(img)


def _pillow_image(source: Any) -> Image:
    from PIL import Image as PILImage
    from PIL import ImageOps

    with PILImage.open(source) as img:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
        return _to_rgb(img)


def check_frames(frames: str) -> Frames:
    """``frames`` when it is ``all`` or ``first`` (which frames of a multi-frame DICOM to decode), else a
    one-line ``UsageError``."""
    if frames not in FRAMES:
        raise UsageError(f"--frames '{frames}' is not known; use all or first")
    return frames  # type: ignore[return-value]  # one of FRAMES, checked above


def load_frames(path: str | Path, frames: Frames = "all") -> list[tuple[int | None, Image]]:
    """Decode ``path`` into ``[(frame, RGB image)]``: ``frame`` is None for a single image, the 0-based frame
    index for each frame of a multi-frame DICOM (all of them, or only the first with ``frames="first"``).

    Raises :class:`ImageError` with a one-line reason: missing, empty, not a regular file, not an image,
    truncated, too large for Pillow's decompression-bomb limit, or a missing DICOM decoder.
    """
    check_frames(frames)
    from PIL import UnidentifiedImageError

    path = Path(path)
    try:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ImageError(
                path, "broken symbolic link" if path.is_symlink() else "image file not found"
            ) from None
        except OSError as exc:  # e.g. a link pointing to itself, a permission denied on a folder
            raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from exc
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(path, "not a regular file")
        if st.st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from exc
        with handle:
            head = handle.read(132)
            if path.suffix.lower() in DICOM_SUFFIXES or head[128:132] == DICOM_MAGIC:
                return read_frames(path, frames)
            handle.seek(0)
            return [(None, _pillow_image(handle))]
    except UsageError:  # ImageError, or a bad setting such as KMAT_MAX_DICOM_SAMPLES
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(path, "cannot decode image (not an image format Pillow knows)") from exc
    except Exception as exc:  # Pillow and pydicom raise many types (OSError, SyntaxError, bomb errors, ...)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ImageError(path, f"cannot decode image ({type(exc).__name__}: {detail})") from exc


def load_image(path: str | Path) -> Image:
    """Decode ``path`` into an RGB ``PIL.Image`` (EXIF orientation applied; a DICOM's first frame)."""
    return load_frames(path, "first")[0][1]
