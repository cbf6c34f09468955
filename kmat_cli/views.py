"""Augmented views of an image for few-shot training: a random resized crop and a horizontal flip (CoOp's
recipe), each view deterministic in (seed, file content hash, view index), so every run sees the same views
and the feature cache can keep them."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["AUGMENT", "augmented"]

AUGMENT: dict[str, Any] = {
    "kind": "random_resized_crop+hflip",
    "scale": [0.08, 1.0],
    "ratio": [0.75, 4 / 3],
    "flip": 0.5,
}


def _rrc_params(
    width: int, height: int, g: torch.Generator, scale: Sequence[float], ratio: Sequence[float]
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box sampling with an explicit generator: (top, left, h, w)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * float(torch.rand(1, generator=g)))
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * float(torch.rand(1, generator=g)))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def augmented(img: Any, spec: dict[str, Any], seed: int, h: str, v: int) -> torch.Tensor:
    """View ``v`` of an image: random resized crop + flip, then resize/normalise as ``spec`` says."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    g = torch.Generator().manual_seed(int(hashlib.sha256(f"{seed}:{h}:{v}".encode()).hexdigest()[:15], 16))
    size = spec.get("image_size", 224)
    size = [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size]
    top, left, hh, ww = _rrc_params(img.width, img.height, g, AUGMENT["scale"], AUGMENT["ratio"])
    mode = getattr(
        InterpolationMode, str(spec.get("interpolation", "bicubic")).upper(), InterpolationMode.BICUBIC
    )
    out = TF.resized_crop(img, top, left, hh, ww, size, interpolation=mode)
    if float(torch.rand(1, generator=g)) < AUGMENT["flip"]:
        out = TF.hflip(out)
    x = TF.to_tensor(out)
    return TF.normalize(x, spec.get("mean", [0.0, 0.0, 0.0]), spec.get("std", [1.0, 1.0, 1.0]))
