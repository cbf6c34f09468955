"""What every image decoder of kmat shares: the error naming a file, the frames choice, 8-bit scaling.

:func:`scale_to_uint8` is ``round(255 * (v - lo) / (hi - lo))`` clipped to [0, 255] (NaN -> 0, +inf -> 255,
-inf -> 0; zeros where ``hi <= lo``), computed in float64 about :data:`_BLOCK` values at a time, so the only
full-size array made is the uint8 result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kmat_cli.errors import UsageError

if TYPE_CHECKING:  # numpy is imported when an image is decoded
    import numpy as np

__all__ = ["FRAMES", "Frames", "ImageError", "finite_range", "scale_to_uint8"]

_BLOCK = 1 << 20  # values converted at a time when scaling to 8 bits (8 MB of float64 temporaries)

Frames = Literal["all", "first"]
FRAMES = ("all", "first")


class ImageError(UsageError):
    """A file that cannot be turned into pixels; ``str`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def _blocks(arr: np.ndarray) -> Iterator[slice]:
    """Slices of ``arr``'s first axis holding about :data:`_BLOCK` values each (at least one row)."""
    per_row = max(1, math.prod(arr.shape[1:]))
    step = max(1, _BLOCK // per_row)
    return (slice(start, start + step) for start in range(0, arr.shape[0] if arr.ndim else 0, step))


def scale_to_uint8(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``round(255 * (arr - lo) / (hi - lo))`` clipped to uint8; zeros where ``hi <= lo``; NaN -> 0.

    Computed in float64 a block of rows at a time: the only full-size array made is the uint8 result."""
    import numpy as np

    out = np.zeros(arr.shape, dtype=np.uint8)
    if not hi > lo:
        return out
    factor = 255.0 / (hi - lo)
    for rows in _blocks(arr):
        block = np.subtract(arr[rows], lo, dtype=np.float64)
        block *= factor
        np.nan_to_num(block, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(block, 0, 255, out=block)
        out[rows] = np.round(block, out=block)
    return out


def finite_range(arr: np.ndarray) -> tuple[float, float] | None:
    """The least and greatest finite value of ``arr`` (None when it has none), a block of rows at a time."""
    import numpy as np

    lo, hi = math.inf, -math.inf
    for rows in _blocks(arr):
        block = arr[rows]
        if block.dtype.kind == "f":
            block = block[np.isfinite(block)]
        if block.size:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return (lo, hi) if lo <= hi else None
