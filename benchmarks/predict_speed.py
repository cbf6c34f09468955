"""Predict speed: ``kmat predict``'s throughput against the bare image-tower forward on the same images.

* bare: the images decoded and preprocessed beforehand (untimed), then only ``encode_image`` per batch;
* predict: :func:`kmat_cli.predict.predict` from the files on disk (decoding and preprocessing in
  DataLoader workers, the model, softmax, CSV rows written to /dev/null), model loading excluded.

* bare, other core busy (``--busy-core``): the same bare forward while a second process spins a pure
  Python loop, i.e. what the model gets when anything (a decoding worker) runs beside it on this machine.
  Where it falls well below the bare rate the cores share hardware, and overlapping decoding with the model
  cannot reach the bare rate.

* predict, ideal decoding (``--ideal-decoding``): the same predict runs with each file's decoding cut to
  reading its bytes and one ``torchvision.io.decode_png`` (no checks, no Pillow, no resize: exact only for
  the benchmark's own RGB PNGs already at the model's size, which is checked on the first file). What predict
  would reach if decoding cost next to nothing: the ceiling any faster decoder could approach.

* predict, Pillow decoding (``--pillow-decoding``): the same predict runs with the plain-PNG fast path off
  (:mod:`kmat_cli.plainpng`), every file through Pillow as before it existed: the before/after of that path,
  interleaved.

Ratio = predict images/s / bare images/s (goal: >= 90%). Backbones: ``phantom`` (the shipped weights when
present, else the same architecture with seeded random weights; 32 px), ``vit-b-16`` (open_clip ViT-B-16
image tower, BiomedCLIP's architecture, random weights, 224 px). Images are random PNGs of ``--size`` px.

    .venv/bin/python benchmarks/predict_speed.py --backbone phantom --images 2048 --size 32
    .venv/bin/python benchmarks/predict_speed.py --backbone vit-b-16 --images 128 --size 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import torch
from _common import (
    cores,
    cpu_name,
    interleave,
    per_rep_ratio,
    phantom_weights,
    png_images,
    prompts_file,
    rate,
)


def predict_fns(
    clf: Any, files: list[Path], *, batch_size: int, workers: list[int | None], sink: Any
) -> dict[str, Callable[[], object]]:
    """``{"bare": ..., "predict-<w>": ...}``: the bare image-tower forward on the images decoded and
    preprocessed beforehand (untimed, here), and ``kmat predict``'s library call from the files with ``w``
    decoding workers (None: ``auto``, what ``kmat predict`` does without ``--workers``), rows written to
    ``sink``."""
    from kmat_cli.images import load_image
    from kmat_cli.predict import RowWriter, predict

    b = clf.backbone
    pixels = torch.stack([b.preprocess(load_image(p)) for p in files])
    batches = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]

    def bare() -> None:
        for x in batches:
            b.encode_image(x)

    def run(w: int | None) -> None:
        predict(clf, files, RowWriter(sink, clf.class_names), batch_size=batch_size, workers=w)

    return {"bare": bare, **{f"predict-{worker_name(w)}": (lambda w=w: run(w)) for w in workers}}


def with_busy_core(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run while another process spins a pure Python loop (started before, killed after)."""

    def run() -> None:
        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            fn()
        finally:
            spin.kill()
            spin.wait()

    return run


@contextmanager
def ideal_decoding(files: list[Path], preprocess: Any) -> Iterator[None]:
    """Within the block, predict decodes a file as its bytes through ``decode_png`` (RGB) and nothing else;
    the pixels are checked equal to the real decoding's on the first file. Worker processes fork inside the
    block and inherit it."""
    from torchvision.io import ImageReadMode, decode_png

    from kmat_cli.predict import FrameReader, ImageFiles, SplitPreprocess

    def decode(self: Any, i: int) -> list[tuple[int, None, torch.Tensor, None]]:
        data = bytearray(Path(self.files[i]).read_bytes())
        return [
            (i, None, decode_png(torch.frombuffer(data, dtype=torch.uint8), mode=ImageReadMode.RGB), None)
        ]

    real = ImageFiles._decode
    dataset = ImageFiles(files[:1], FrameReader("all"), SplitPreprocess(preprocess))
    if not torch.equal(decode(dataset, 0)[0][2], real(dataset, 0)[0][2]):
        raise SystemExit(
            "--ideal-decoding: the PNGs are not RGB at the model's size; pick --size accordingly"
        )
    ImageFiles._decode = decode
    try:
        yield
    finally:
        ImageFiles._decode = real


@contextmanager
def pillow_decoding() -> Iterator[None]:
    """Within the block, predict's reader takes no file for a plain PNG: all go through Pillow."""
    from kmat_cli.predict import run as predict_run

    real = predict_run.read_plain_png
    predict_run.read_plain_png = lambda path: None
    try:
        yield
    finally:
        predict_run.read_plain_png = real


def _pillow(run: Callable[[], object]) -> None:
    with pillow_decoding():
        run()


def _ideal(run: Callable[[], object], files: list[Path], clf: Any) -> None:
    with ideal_decoding(files, clf.backbone.preprocess):
        run()


def worker_name(w: int | None) -> str:
    return "auto" if w is None else str(w)


def print_report(
    args: argparse.Namespace,
    what: str,
    n: int,
    worker_list: list[int | None],
    times: dict[str, list[float]],
    load: tuple[float, float, float],
) -> None:
    """The table on stdout: images/s of every path and its ratio to the bare image-tower forward."""
    from kmat_cli.predict import auto_workers

    bare_t = times["bare"]
    bare_rate = n / statistics.median(bare_t)
    print(
        f"Date {date.today()}; {cpu_name()}, {cores()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"Backbone: {what}; {n} PNG images of {args.size}x{args.size} px; batch {args.batch_size}; "
          f"median of {args.reps} after one warm-up\n")  # fmt: skip
    print(
        "| path | workers | images/s (median) | best images/s | vs bare forward (median of per-rep ratios) |"
    )
    print("|---|---|---|---|---|")
    print(f"| bare image-tower forward | - | {rate(bare_rate)} | {rate(n / min(bare_t))} | 100% |")
    if "bare-busy" in times:
        t = times["bare-busy"]
        print(
            f"| bare forward, another core busy | - | {rate(n / statistics.median(t))} | {rate(n / min(t))} "
            f"| {100 * per_rep_ratio(bare_t, t):.0f}% |"
        )
    for w in worker_list:
        t = times[f"predict-{worker_name(w)}"]
        if w is None:
            n_auto, adaptive = auto_workers(n, args.batch_size, "cpu")
            w = f"auto: {n_auto}{' (adaptive)' if adaptive else ''}"
        ratio = per_rep_ratio(bare_t, t)
        print(
            f"| kmat predict | {w} | {rate(n / statistics.median(t))} | {rate(n / min(t))} | {100 * ratio:.0f}% |"
        )
    for w in worker_list if args.pillow_decoding else []:
        t = times[f"pillow-{worker_name(w)}"]
        print(
            f"| kmat predict, Pillow decoding | {worker_name(w)} | {rate(n / statistics.median(t))} "
            f"| {rate(n / min(t))} | {100 * per_rep_ratio(bare_t, t):.0f}% |"
        )
    for w in worker_list if args.ideal_decoding else []:
        t = times[f"ideal-{worker_name(w)}"]
        print(
            f"| kmat predict, ideal decoding | {worker_name(w)} | {rate(n / statistics.median(t))} "
            f"| {rate(n / min(t))} | {100 * per_rep_ratio(bare_t, t):.0f}% |"
        )
    print(f"\nload average after the runs (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", choices=["phantom", "vit-b-16"], default="phantom")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--size", type=int, default=32, help="image side in pixels (files on disk)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="comma list of worker counts and/or auto")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the main process (0: default)")
    ap.add_argument(
        "--busy-core", action="store_true", help="also time the bare forward with another process spinning"
    )
    ap.add_argument(
        "--ideal-decoding",
        action="store_true",
        help="also time predict with decoding cut to bytes + decode_png (the ceiling of a faster decoder)",
    )
    ap.add_argument(
        "--pillow-decoding",
        action="store_true",
        help="also time predict with the plain-PNG fast path off (every file through Pillow)",
    )
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from kmat_cli.predict import load_classifier

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.backbone == "phantom":
            weights, what = phantom_weights(tmp_path)
            name, options = "phantom", {"weights": weights}
        else:
            name, options, what = (
                "open_clip",
                {"model": "ViT-B-16", "pretrained": "none"},
                "open_clip ViT-B-16 (random)",
            )
        prompts = prompts_file(tmp_path, name, options)
        files = png_images(tmp_path / "images", args.images, args.size)
        clf = load_classifier(embeddings=prompts, device="cpu")
        worker_list = [None if w == "auto" else int(w) for w in args.workers.split(",")]
        with open(os.devnull, "wb") as sink:
            fns = predict_fns(clf, files, batch_size=args.batch_size, workers=worker_list, sink=sink)
            if args.busy_core:
                fns["bare-busy"] = with_busy_core(fns["bare"])
            if args.pillow_decoding:
                for w in worker_list:
                    run = fns[f"predict-{worker_name(w)}"]
                    fns[f"pillow-{worker_name(w)}"] = lambda run=run: _pillow(run)
            if args.ideal_decoding:
                for w in worker_list:
                    run = fns[f"predict-{worker_name(w)}"]
                    fns[f"ideal-{worker_name(w)}"] = lambda run=run: _ideal(run, files, clf)
            # interleaved: every repetition times the bare forward and then each predict setting, so both see
            # the same machine load; the ratio is taken per repetition
            times = interleave(fns, args.reps)
        load = os.getloadavg()
    print_report(args, what, len(files), worker_list, times, load)


if __name__ == "__main__":
    main()
