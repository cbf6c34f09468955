"""High bit depth greyscale images (16-bit, 32-bit integer, float) are scaled to 8 bits without a float64
copy of the whole image: the peak memory of decoding one stays within a small multiple of its 8-bit RGB
size, and the pixels are those of the min-max formula ``round(255 * (v - min) / (max - min))``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmat_cli import decoding, images

pytestmark = pytest.mark.usefixtures("no_progress")

PEAK = """
import resource, sys
from kmat_cli.images import load_image
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = load_image(sys.argv[1])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024, image.size[0] * image.size[1] * 3)
"""


def _reference(values: np.ndarray) -> np.ndarray:
    """The min-max formula over the whole image in float64, NaN -> 0, +inf -> 255, -inf -> 0."""
    v = values.astype(np.float64)
    lo, hi = np.nanmin(v), np.nanmax(v)
    if not hi > lo:
        return np.zeros(v.shape, dtype=np.uint8)
    scaled = np.nan_to_num((v - lo) * (255.0 / (hi - lo)), nan=0.0, posinf=255.0, neginf=0.0)
    return scaled.clip(0, 255).round().astype(np.uint8)


def _values(kind: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if kind == "uint16":
        return rng.integers(0, 2**16, (37, 23), dtype=np.uint16)
    if kind == "int32":
        return rng.integers(-(2**31), 2**31 - 1, (37, 23), dtype=np.int64).astype(np.int32)
    if kind == "constant":
        return np.full((9, 5), 1234, dtype=np.uint16)
    values = rng.normal(0, 1e3, (37, 23)).astype(np.float32)
    values[3, 4], values[10, 2] = np.nan, -7e3
    return values


@pytest.mark.parametrize("kind", ["uint16", "int32", "float32", "constant"])
def test_values_equal_the_min_max_formula_across_block_edges(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoding, "_BLOCK", 50)  # two-row blocks: every edge crossed
    values = _values(kind)
    path = tmp_path / f"{kind}.tiff"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode in ("I;16", "I", "F")
    rgb = np.asarray(images.load_image(path))
    expected = _reference(values)
    assert rgb.dtype == np.uint8 and rgb.shape == (*values.shape, 3)
    assert np.array_equal(rgb, np.repeat(expected[..., None], 3, axis=-1))


def test_scale_maps_non_finite_values_as_the_formula_does() -> None:
    values = np.array([[0.0, np.inf, -np.inf, np.nan, 10.0]])
    assert decoding.scale_to_uint8(values, 0.0, 10.0).tolist() == [[0, 255, 0, 0, 255]]
    assert decoding.finite_range(values) == (0.0, 10.0)
    assert decoding.finite_range(np.array([[np.nan, np.inf]])) is None


def test_a_large_16_bit_png_decodes_within_a_small_multiple_of_its_rgb_size(tmp_path: Path) -> None:
    n = 3000
    ramp = np.add.outer(np.arange(n, dtype=np.uint32), np.arange(n, dtype=np.uint32)).astype(np.uint16)
    path = tmp_path / "large16.png"
    Image.fromarray(ramp).save(path, compress_level=1)
    del ramp
    out = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, check=True)
    peak, rgb_bytes = map(int, out.stdout.split())
    assert rgb_bytes == n * n * 3
    assert peak < 3.5 * rgb_bytes, (
        f"decoding took {peak / 2**20:.0f} MiB for a {rgb_bytes / 2**20:.0f} MiB image"
    )
