"""Draw the synthetic images of the demo-lesions custom task (task.yaml next to this file).

    python examples/custom-task/make_demo_data.py [--out DIR] [--per-class N] [--seed S]

Writes ``images/hi/<split>/<class>/*.png`` (crisp colour drawings, an ImageFolder tree) and
``images/lo/*.png`` with ``lo.csv`` (grey, blurred, noisy versions listed as path,label,split).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["smooth nodule", "spiculated mass", "cystic lesion"]
SPLIT_SIZES = {"train": 1.0, "val": 0.5, "test": 0.5}
SIZE = 48


def draw(kind: str, rng: np.random.Generator) -> Image.Image:
    """One crisp colour drawing of a lesion of class ``kind`` at a random place and size."""
    image = Image.new("RGB", (SIZE, SIZE), (235, 205, 180))
    pen = ImageDraw.Draw(image)
    cx, cy = rng.integers(16, SIZE - 16, size=2)
    r = int(rng.integers(6, 11))
    colour = (150 + int(rng.integers(0, 60)), 40, 40)
    if kind == "smooth nodule":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "spiculated mass":
        pen.ellipse([cx - r // 2, cy - r // 2, cx + r // 2, cy + r // 2], fill=colour)
        for angle in rng.uniform(0, 2 * np.pi, size=8):
            pen.line([cx, cy, cx + 1.8 * r * np.cos(angle), cy + 1.8 * r * np.sin(angle)], fill=colour)
    else:
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=3)
    return image


def degrade(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The low-end version: grey, blurred, low contrast, noisy."""
    grey = np.asarray(image.convert("L").filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float64)
    grey = 128 + 0.4 * (grey - grey.mean()) + rng.normal(0, 12, size=grey.shape)
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))


def make(out: Path, per_class: int = 6, seed: int = 0) -> None:
    """Write both modalities under ``out`` (the folder holding task.yaml)."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, share in SPLIT_SIZES.items():
        for label, kind in enumerate(CLASSES):
            for i in range(max(1, round(per_class * share))):
                hi = out / "images" / "hi" / split / kind / f"{i:03d}.png"
                hi.parent.mkdir(parents=True, exist_ok=True)
                draw(kind, rng).save(hi)
                lo = out / "images" / "lo" / f"{split}-{label}-{i:03d}.png"
                lo.parent.mkdir(parents=True, exist_ok=True)
                degrade(draw(kind, rng), rng).save(lo)
                rows.append([lo.relative_to(out).as_posix(), kind, split])
    with open(out / "lo.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(args.out, args.per_class, args.seed)
    print(f"wrote demo images under {args.out}")
