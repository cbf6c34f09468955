"""Draw the picture of the phantom world: ``python -m kmat.tasks.phantom.figure [--out docs/phantom.png]``.

One row per class; on the left the first test images of that class in the high-end modality, on the right
the first ones in the low-end modality (the same pixels as the task's test split files), upscaled 3x.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from kmat.tasks.phantom import world
from PIL import Image, ImageDraw, ImageFont

SCALE = 3
GAP = 4
LABEL_W = 110
HEADER_H = 24


def grid(seed: int = 0, per_modality: int = 6) -> np.ndarray:
    """(H, W, 3) uint8 mosaic: rows = classes, columns = ``per_modality`` high-end then low-end images."""
    k = len(world.CLASSES)
    tile = world.IMAGE_SIZE * SCALE
    rows = []
    for label in range(k):
        row = []
        for modality in ("hi", "lo"):
            for j in range(per_modality):
                img, _ = world.draw(seed, "task", modality, "test", label + k * j, label)
                img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
                row.append(np.kron(img, np.ones((SCALE, SCALE, 1), np.uint8)))
                row.append(np.full((tile, GAP, 3), 255, np.uint8))
            row.append(np.full((tile, 3 * GAP, 3), 255, np.uint8))
        rows.append(np.concatenate(row, axis=1))
        rows.append(np.full((GAP, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows, axis=0)


def figure(seed: int = 0, per_modality: int = 6) -> Image.Image:
    """The mosaic with class names on the left and the modality words above each half."""
    mosaic = grid(seed, per_modality)
    canvas = Image.new("RGB", (mosaic.shape[1] + LABEL_W, mosaic.shape[0] + HEADER_H), "white")
    canvas.paste(Image.fromarray(mosaic), (LABEL_W, HEADER_H))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    tile = world.IMAGE_SIZE * SCALE
    half = per_modality * (tile + GAP)
    for i, (modality, words) in enumerate(world.MODALITY_WORDS.items()):
        draw.text((LABEL_W + i * (half + 3 * GAP), 4), f"{modality}: {words}", fill="black", font=font)
    for label, name in enumerate(world.CLASS_NAMES):
        draw.text((6, HEADER_H + label * (tile + GAP) + tile // 2 - 7), name, fill="black", font=font)
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/phantom.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-modality", type=int, default=6)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure(args.seed, args.per_modality).save(args.out, format="PNG", optimize=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
