"""Where ``kmat predict``'s time goes, stage by stage, on the phantom tower (one thread, no worker processes).

Each stage of predict's pipeline is timed on its own over the same PNG files (microseconds per image, best
of ``--reps``): reading the bytes, decoding through Pillow (:func:`kmat_cli.images.load_frames`), the
preprocessing steps before ``ToTensor`` (resize, crop, mode), the PIL image to a uint8 tensor, the whole
per-file decode of the pipeline as it runs (``ImageFiles.__getitems__``: the plain-PNG fast path where it
applies, :mod:`kmat_cli.plainpng`) and the same with the fast path off, the collate, normalising a batch, the forward, softmax and ``tolist``, and the CSV rows.

    .venv/bin/python benchmarks/predict_stages.py --images 1024 --size 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import phantom_weights, png_images, prompts_file
from predict_speed import pillow_decoding


def best_us(fn: Callable[[], object], n: int, reps: int) -> float:
    """Microseconds per image of ``fn`` (which handles ``n`` images), best of ``reps``."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e6 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from kmat_cli.imagefiles import Collate
    from kmat_cli.images import load_frames
    from kmat_cli.predict import FrameReader, ImageFiles, Row, RowWriter, SplitPreprocess, load_classifier

    tmp = Path(tempfile.mkdtemp())
    weights, what = phantom_weights(tmp)
    clf = load_classifier(embeddings=prompts_file(tmp, "phantom", {"weights": weights}), device="cpu")
    files = png_images(tmp / "images", args.images, args.size)
    n, bs = len(files), args.batch_size
    split = SplitPreprocess(clf.backbone.preprocess)
    dataset = ImageFiles(files, FrameReader("all"), split)
    chunks = [range(i, min(i + bs, n)) for i in range(0, n, bs)]
    images = [load_frames(f)[0][1] for f in files]
    heads = [split.head(img) for img in images]

    def decode() -> list:
        return [dataset.__getitems__(c) for c in chunks]

    def decode_pillow() -> None:
        with pillow_decoding():
            decode()

    items = decode()
    collate = Collate(split.finish, as_numpy=True)
    batches = [collate(i) for i in items]
    pixels = [split.finish(torch.from_numpy(b[1])) for b in batches]
    feats = [clf.backbone.encode_image(p) for p in pixels]
    probs = [clf.classify(f).tolist() for f in feats]
    with open(os.devnull, "wb") as sink:
        writer = RowWriter(sink, clf.class_names)

        def rows() -> None:
            for (meta, _), batch_probs in zip(batches, probs, strict=True):
                it = iter(batch_probs)
                writer.write([Row(files[i], frame, next(it), None) for i, frame, _ in meta])

        stages = {
            "read the bytes": lambda: [Path(f).read_bytes() for f in files],
            "Pillow decode (load_frames)": lambda: [load_frames(f) for f in files],
            "steps before ToTensor (resize, crop, mode)": lambda: [split.head(img) for img in images],
            "PIL image -> uint8 tensor": lambda: [
                torch.from_numpy(np.array(x)).permute(2, 0, 1) for x in heads
            ],
            "pipeline decode, fast path on": decode,
            "pipeline decode, fast path off (Pillow)": decode_pillow,
            "collate (stack a batch)": lambda: [collate(i) for i in items],
            "normalise the batch": lambda: [split.finish(torch.from_numpy(b[1])) for b in batches],
            "image-tower forward": lambda: [clf.backbone.encode_image(p) for p in pixels],
            "softmax + tolist": lambda: [clf.classify(f).tolist() for f in feats],
            "CSV rows": rows,
        }
        print(f"{what}; {n} PNGs of {args.size} px; batch {bs}; 1 thread; best of {args.reps}\n")
        print("| stage | us per image |\n|---|---|")
        for name, fn in stages.items():
            print(f"| {name} | {best_us(fn, n, args.reps):.1f} |")
    print(f"\nload average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
