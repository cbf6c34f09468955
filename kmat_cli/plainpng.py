"""Plain PNGs decoded by libpng alone: the fast path of the image-file pipeline for small images.

A PNG is *plain* when the RGB image :func:`kmat_cli.images.load_frames` makes of it is its pixels as they
are: 8-bit greyscale or RGB (colour types 0 and 2), not interlaced, every chunk's CRC right, no chunk but
those that change nothing in Pillow's result (:data:`SAFE_CHUNKS`; so no transparency, no animation, no
EXIF), no text chunk that may carry an orientation (EXIF or XMP), at most Pillow's ``MAX_IMAGE_PIXELS``
pixels, and not a file :mod:`kmat_cli.images` reads as DICOM (by its name or ``DICM`` at byte 128). Such a
file's image data is decoded by Pillow's own PNG (``zip``) decoder straight from its IDAT chunks, so the
pixels are Pillow's, without its per-file work (format sniffing, chunk parsing in Python, EXIF
transposition, mode conversion), and returned as a (3, H, W) uint8 tensor (greyscale repeated into three
channels, as Pillow's ``convert("RGB")`` does). :func:`read_plain_png` returns None for every other file and
on any error, and the caller reads it with :func:`~kmat_cli.images.load_frames` (which names the error).
"""

from __future__ import annotations

import os
import stat
import struct
import zlib

import numpy as np
import torch

from kmat_cli.images import DICOM_SUFFIXES

__all__ = ["SAFE_CHUNKS", "plain_png", "read_plain_png"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# chunks Pillow reads into ``info`` (or skips) without changing the pixels kmat gets; PLTE is only a
# suggested palette in colour types 0 and 2
SAFE_CHUNKS = frozenset(
    {
        b"IHDR",
        b"IDAT",
        b"IEND",
        b"PLTE",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"iCCP",
        b"pHYs",
        b"sBIT",
        b"tIME",
        b"bKGD",
    }
)
TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
ORIENTATION_KEYWORDS = (b"Raw profile type", b"XML:com.adobe.xmp")  # Pillow reads EXIF and XMP from these
_DICOM_AT = slice(128, 132)
MAX_BYTES = 64 << 20  # larger files take the Pillow path, which streams them


def _pixel_limit() -> float:
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS or float("inf")


def plain_png(data: bytes) -> tuple[str, tuple[int, int], bytes] | None:
    """(Pillow mode ``L`` or ``RGB``, (width, height), the joined IDAT data) of a plain PNG (see the module
    docstring), else None."""
    if data[:8] != SIGNATURE or data[_DICOM_AT] == b"DICM" or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in (0, 2) or interlace != 0 or width * height > _pixel_limit():
        return None
    view, idat = memoryview(data), []
    pos, end = 8, len(data)
    while pos + 12 <= end:
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body_end = pos + 8 + length
        if body_end + 4 > end:
            return None
        if zlib.crc32(view[pos + 4 : body_end]) != int.from_bytes(data[body_end : body_end + 4], "big"):
            return None
        if kind in TEXT_CHUNKS:
            if data[pos + 8 : body_end].startswith(ORIENTATION_KEYWORDS):
                return None
        elif kind not in SAFE_CHUNKS:
            return None
        if kind == b"IDAT":
            idat.append(view[pos + 8 : body_end])
        if kind == b"IEND":
            return ("L" if colour == 0 else "RGB"), (width, height), b"".join(idat)
        pos = body_end + 4
    return None  # no IEND: truncated


def _regular_file_bytes(path: str | os.PathLike) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most :data:`MAX_BYTES` starting with the PNG
    signature, else None; opened without blocking, so a FIFO or a device is never waited on, and only the
    signature is read of any other file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        if os.read(fd, len(SIGNATURE)) != SIGNATURE:
            return None
        chunks = [SIGNATURE]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_plain_png(path: str | os.PathLike) -> torch.Tensor | None:
    """The (3, H, W) uint8 RGB pixels of ``path`` when it is a plain PNG, else None (also when it cannot
    be read or decoded: the caller's Pillow path then reports why)."""
    if os.path.splitext(os.fspath(path))[1].lower() in DICOM_SUFFIXES:
        return None
    try:
        data = _regular_file_bytes(path)
        if data is None:
            return None
        found = plain_png(data)
        if found is None:
            return None
        from PIL import Image

        mode, size, idat = found
        pixels = torch.from_numpy(np.array(Image.frombytes(mode, size, idat, "zip", mode)))
    except Exception:  # unreadable, or image data Pillow's decoder rejects: the Pillow path names the error
        return None
    return pixels.expand(3, -1, -1) if mode == "L" else pixels.permute(2, 0, 1)
