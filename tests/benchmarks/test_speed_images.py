"""benchmarks/speed_images.py: the encoding row times ``image_features`` into a cold cache at every call,
and what it encodes is the image tower's normalised output for those files."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from _common import png_images
from speed_images import features_call

from kmat_cli.images import load_image


def test_features_call_encodes_into_a_fresh_cache_each_time(speed_toy, tmp_path: Path) -> None:
    backbone = speed_toy[0]
    files = png_images(tmp_path / "images", 3, 32)
    call = features_call(backbone, files, 2, tmp_path / "cache")
    first, second = call(), call()
    with torch.no_grad():
        pixels = torch.stack([backbone.preprocess(load_image(p)) for p in files])
        want = F.normalize(backbone.encode_image(pixels).float(), dim=-1)
    assert torch.allclose(first, want, atol=1e-5) and torch.equal(first, second)
    caches = sorted((tmp_path / "cache").iterdir())
    assert [c.name for c in caches] == ["1", "2"]
    assert all(any(p.is_file() for p in c.rglob("*")) for c in caches)  # each call wrote its own shards
