"""The DICOM reader: each frame of a DICOM file as an 8-bit RGB image (needs pydicom, the ``dicom`` extra).

A DICOM file is one whose bytes 128-131 are ``DICM``, or one named ``.dcm`` / ``.dicom`` (read with
``force=True`` when the preamble is missing). Each frame becomes one RGB image:

* greyscale (``MONOCHROME1``/``MONOCHROME2``): the modality LUT (Rescale Slope/Intercept or Modality LUT
  Sequence), then the first VOI transform the file defines: VOI LUT Sequence (output scaled from the
  LUT's own value range), else Window Center/Width with its VOI LUT Function (LINEAR, LINEAR_EXACT,
  SIGMOID; output scaled from the window's output range), else the frame's min-max; ``MONOCHROME1`` is
  then inverted (``255 - v``) so that high values are bright, as in ``MONOCHROME2``;
* ``RGB`` and ``YBR_*`` (converted to RGB by pydicom): scaled from ``[0, 2**BitsStored - 1]``;
* ``PALETTE COLOR``: the palette LUT, scaled from ``[0, 2**bits - 1]`` of its descriptor.

Compressed transfer syntaxes decode where pydicom has a decoder (Pillow gives JPEG baseline and JPEG
2000; JPEG-LS, 12-bit JPEG and JPEG lossless need pylibjpeg or gdcm): otherwise the error names the
missing decoder. A file that cannot be decoded raises :class:`~kmat_cli.decoding.ImageError` naming it.

Size limit, as Pillow's decompression-bomb guard: a DICOM file whose header asks for more than
:func:`dicom_sample_limit` pixel values (frames decoded x rows x columns x samples per pixel; by default
twice Pillow's ``MAX_IMAGE_PIXELS``, 178,956,970; ``$KMAT_MAX_DICOM_SAMPLES`` sets another) is refused from
its header alone, before any pixel data is read or decoded. A deflated file is inflated as it is parsed: its
header first (at most 64 MB), then no more than the pixel data its header declares (plus 1 MB).
"""

from __future__ import annotations

import io
import os
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmat_cli.decoding import Frames, ImageError, finite_range, scale_to_uint8
from kmat_cli.errors import UsageError

if TYPE_CHECKING:  # Pillow, numpy and pydicom are imported when a file is decoded
    import numpy as np
    from PIL.Image import Image

__all__ = [
    "DICOM_LIMIT_ENV",
    "DICOM_MAGIC",
    "DICOM_SUFFIXES",
    "dicom_sample_limit",
    "is_dicom",
    "read_frames",
]

DICOM_SUFFIXES = (".dcm", ".dicom")
DICOM_MAGIC = b"DICM"  # at byte offset 128, after the preamble
DICOM_LIMIT_ENV = "KMAT_MAX_DICOM_SAMPLES"
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # Float, Double Float, Pixel Data
_DEFLATED_HEADER_MAX = 64 << 20  # bytes a deflated file's header (everything before its pixels) may take
_DEFLATED_SLACK = 1 << 20  # bytes allowed after the pixel data the header declares (padding, trailers)
_DEFER_BYTES = 1 << 20  # values larger than this stay in the file until decoded


def is_dicom(path: str | Path) -> bool:
    """True for a DICOM file: ``DICM`` at byte 128, or a ``.dcm``/``.dicom`` name."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == DICOM_MAGIC


def _has_voi_lut(ds: Any) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]


def _grey_to_uint8(arr: np.ndarray, ds: Any) -> np.ndarray:
    """Modality LUT, then VOI LUT / windowing / min-max, then MONOCHROME1 inversion -> uint8 (H, W)."""
    import numpy as np
    from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing

    x = apply_modality_lut(arr, ds)
    out = None
    if _has_voi_lut(ds):
        item = ds.VOILUTSequence[0]
        n, first = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
        table = apply_voi(np.arange(first, first + n, dtype=np.int64), ds)
        out = scale_to_uint8(
            apply_voi(np.rint(x).astype(np.int64), ds), float(table.min()), float(table.max())
        )
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        try:
            lo, hi = apply_windowing(np.array([-np.inf, np.inf]), ds)  # the window's output range
            out = scale_to_uint8(apply_windowing(x, ds), float(lo), float(hi))
        except (ValueError, TypeError, AttributeError):  # an invalid window: fall back to min-max
            out = None
    if out is None:
        found = finite_range(np.asarray(x))
        out = scale_to_uint8(x, *found) if found is not None else scale_to_uint8(x, 0.0, 0.0)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        out = 255 - out
    return out


def _dicom_frame_rgb(arr: np.ndarray, ds: Any) -> np.ndarray:
    """One decoded DICOM frame -> uint8 (H, W, 3)."""
    import numpy as np
    from pydicom.pixels import apply_color_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)[..., :3]
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2]) if rgb.dtype != np.uint8 else 8
        return scale_to_uint8(rgb, 0.0, float(2**bits - 1))
    if arr.ndim == 3:  # RGB, or YBR already converted to RGB by pydicom
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        rgb = arr[..., :3] if arr.shape[-1] >= 3 else np.repeat(arr[..., :1], 3, axis=-1)
        return rgb if rgb.dtype == np.uint8 and bits == 8 else scale_to_uint8(rgb, 0.0, float(2**bits - 1))
    grey = _grey_to_uint8(arr, ds)
    return np.repeat(grey[..., None], 3, axis=-1)


def _decoder_message(exc: Exception) -> str:
    """pydicom's multi-line decoder errors as one line."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return f"cannot decode DICOM pixel data ({text})"


def dicom_sample_limit() -> int | None:
    """The most pixel values (frames x rows x columns x samples per pixel) one DICOM file may ask to decode.

    ``$KMAT_MAX_DICOM_SAMPLES`` when set (a positive whole number), else twice Pillow's
    ``Image.MAX_IMAGE_PIXELS`` (178,956,970 by default: where Pillow refuses an image as a decompression
    bomb); ``None`` (no limit) where a program set ``MAX_IMAGE_PIXELS`` to ``None``.
    """
    from PIL import Image as PILImage

    text = os.environ.get(DICOM_LIMIT_ENV, "").strip()
    if text:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = 0
        if value <= 0:
            raise UsageError(f"{DICOM_LIMIT_ENV}={text!r}: expected a positive whole number of pixel values")
        return value
    pixels = PILImage.MAX_IMAGE_PIXELS
    return None if pixels is None else 2 * int(pixels)


def _header_int(ds: Any, keyword: str, default: int) -> int:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _check_dicom_size(path: Path, ds: Any, frames: Frames) -> int:
    """The number of frames the header of ``ds`` declares; :class:`ImageError` when decoding the frames asked
    for would exceed :func:`dicom_sample_limit` (checked on the header alone, before any pixel data)."""
    n = max(1, _header_int(ds, "NumberOfFrames", 1))
    rows, cols = _header_int(ds, "Rows", 0), _header_int(ds, "Columns", 0)
    spp = max(1, _header_int(ds, "SamplesPerPixel", 1))
    decoded = n if frames == "all" else 1
    total = decoded * rows * cols * spp
    limit = dicom_sample_limit()
    if limit is not None and total > limit:
        raise ImageError(
            path,
            f"DICOM header asks for {decoded} frame(s) x {rows} x {cols} x {spp} sample(s) = {total:,} pixel "
            f"values, over the limit of {limit:,} (a decompression bomb?); set {DICOM_LIMIT_ENV} to allow it",
        )
    return n


class _Inflater:
    """The deflated data set of a DICOM file as a read-only file object, inflated only as far as it is read
    and never beyond ``cap`` bytes (``ImageError`` past it), however small the compressed file is."""

    def __init__(self, source: Any, path: Path, cap: int) -> None:
        self._source, self._path, self.cap = source, path, cap
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buf = bytearray()
        self._pos = 0

    def _fill(self, end: int) -> None:
        while len(self._buf) < end and not self._z.eof:
            data = self._z.unconsumed_tail or self._source.read(1 << 16)
            if not data:
                break
            self._buf += self._z.decompress(data, min(1 << 20, self.cap + 1 - len(self._buf)))
            if len(self._buf) > self.cap:
                raise ImageError(
                    self._path, f"deflated DICOM data inflates to more than {self.cap:,} bytes (a bomb?)"
                )

    def read(self, size: int = -1) -> bytes:
        end = self.cap + 1 if size is None or size < 0 else self._pos + size
        self._fill(end)
        out = bytes(self._buf[self._pos : end])
        self._pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, offset + (0, self._pos, len(self._buf))[whence])
        return self._pos

    def tell(self) -> int:
        return self._pos


def _at_pixels(tag: Any, vr: Any, length: int) -> bool:
    return int(tag) in _PIXEL_TAGS


def _read_deflated(path: Path, frames: Frames) -> Any | None:
    """A Deflated Explicit VR Little Endian file read with bounded inflation (None: not such a file).

    The header is inflated first (at most ``_DEFLATED_HEADER_MAX`` bytes) and checked by
    :func:`_check_dicom_size`; then the rest, at most what the header's pixel data needs plus
    ``_DEFLATED_SLACK``. The data set is returned as the Explicit VR Little Endian file it inflates to."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.filereader import read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    with open(path, "rb") as source:
        preamble = read_preamble(source, True)
        meta = FileMetaDataset(
            read_dataset(source, False, True, stop_when=lambda tag, vr, length: int(tag) >> 16 != 2)
        )
        if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            return None
        stream = _Inflater(source, path, _DEFLATED_HEADER_MAX)
        header = read_dataset(stream, False, True, stop_when=_at_pixels)  # type: ignore[arg-type]  # a read-only binary file (read, seek, tell)
        _check_dicom_size(path, header, frames)
        bits = max(1, _header_int(header, "BitsAllocated", 8))
        values = max(1, _header_int(header, "NumberOfFrames", 1)) * _header_int(header, "Rows", 0)
        values *= _header_int(header, "Columns", 0) * max(1, _header_int(header, "SamplesPerPixel", 1))
        stream.cap = stream.tell() + (values * bits + 7) // 8 + _DEFLATED_SLACK
        stream.seek(0)
        data = stream.read()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # deflate only wraps an explicit VR little endian set
    inner = read_dataset(io.BytesIO(data), False, True)
    ds = FileDataset(str(path), inner, preamble, meta, False, True)
    ds.set_original_encoding(False, True, inner.original_character_set)  # as read: its Specific Character Set
    return ds


def read_frames(path: Path, frames: Frames) -> list[tuple[int | None, Image]]:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
        from pydicom.pixels import iter_pixels
    except ImportError as exc:
        raise ImageError(path, "reading DICOM needs pydicom: pip install 'kmat[dicom]'") from exc
    from PIL import Image as PILImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every small deviation from the standard
        ds = _read_deflated(path, frames)
        if ds is None:  # large values (the pixel data) are read from the file only when decoded
            try:
                ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES)
            except InvalidDicomError:
                ds = pydicom.dcmread(path, defer_size=_DEFER_BYTES, force=True)
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise ImageError(path, "DICOM file has no pixel data (not an image)")
        n = _check_dicom_size(path, ds, frames)
        images = []
        try:
            for array in iter_pixels(ds, indices=None if frames == "all" else [0]):
                images.append(PILImage.fromarray(_dicom_frame_rgb(array, ds)))
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            raise ImageError(path, _decoder_message(exc)) from exc
    if n == 1:
        return [(None, images[0])]
    return list(enumerate(images))
