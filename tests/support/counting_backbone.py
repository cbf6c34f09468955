"""A small deterministic image tower that counts what it encodes, and images to feed it (feature-cache tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kmat_cli.api import Backbone
from kmat_cli.images import load_image


class CountingBackbone(Backbone):
    """A small deterministic image tower (8x8 pixels -> 6-d) that counts the images it encodes."""

    def __init__(self, ident: str = "counting-v1", size: int = 8, seed: int = 0) -> None:
        import torchvision.transforms as T

        self.id = ident
        self.embed_dim = 6
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(3 * size * size, 6, generator=g)
        self.preprocess_spec = {
            "image_size": size,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "resize": "squash",
            "interpolation": "bilinear",
        }
        self.preprocess = T.Compose(
            [T.Resize((size, size)), T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)]
        )
        self.calls = 0
        self.device = torch.device("cpu")

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += len(pixels)
        return F.normalize(pixels.flatten(1) @ self.weight, dim=-1)


def write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def direct(b: CountingBackbone, paths: list[Path]) -> torch.Tensor:
    return F.normalize(
        torch.stack([b.preprocess(load_image(p)) for p in paths]).flatten(1) @ b.weight, dim=-1
    )
