"""Image decoding: one function that turns an image file into an RGB ``PIL.Image``.

PNG, JPEG, BMP, TIFF, GIF, WebP (whatever Pillow reads); EXIF orientation is applied, 16-bit and float
greyscale is rescaled to 8 bits, palette/alpha/CMYK images are converted to RGB (alpha composited on
black). A file that cannot be decoded raises ``UsageError`` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kmat_cli.errors import UsageError

if TYPE_CHECKING:  # Pillow is imported when an image is decoded
    from PIL.Image import Image

__all__ = ["IMAGE_SUFFIXES", "load_image"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def _to_rgb(img: Image) -> Image:
    import numpy as np
    from PIL import Image as PILImage

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # high bit depth greyscale: min-max to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = PILImage.fromarray(np.nan_to_num(scaled).round().astype(np.uint8))
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = PILImage.alpha_composite(background, rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


def load_image(path: str | Path) -> Image:
    """Decode ``path`` into an RGB ``PIL.Image`` with its EXIF orientation applied (fully loaded)."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with PILImage.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UsageError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
