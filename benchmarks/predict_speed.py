"""Predict speed: ``kmat predict``'s throughput against the bare image-tower forward on the same images.

* bare: the images decoded and preprocessed beforehand (untimed), then only ``encode_image`` per batch;
* predict: :func:`kmat_cli.predict.predict` from the files on disk (decoding and preprocessing in
  DataLoader workers, the model, softmax, CSV rows written to /dev/null), model loading excluded.

Ratio = predict images/s / bare images/s (goal: >= 90%). Backbones: ``phantom`` (the shipped weights when
present, else the same architecture with seeded random weights; 32 px), ``vit-b-16`` (open_clip ViT-B-16
image tower, BiomedCLIP's architecture, random weights, 224 px). Images are random PNGs of ``--size`` px.

    .venv/bin/python benchmarks/predict_speed.py --backbone phantom --images 2048 --size 32
    .venv/bin/python benchmarks/predict_speed.py --backbone vit-b-16 --images 128 --size 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _phantom_weights(folder: Path) -> tuple[str, str]:
    """(weights path, description): the shipped phantom weights, else a seeded stand-in of its architecture."""
    from safetensors.torch import save_file

    from backbones.phantom import model as files

    if files.WEIGHTS.is_file():
        return str(files.WEIGHTS), "phantom (shipped weights)"
    cfg = files.model_config(vocab_size=64)
    (folder / files.CONFIG.name).write_text(
        json.dumps({"model_cfg": cfg, "preprocess": files.PREPROCESS_SPEC})
    )
    (folder / files.VOCAB.name).write_text(
        json.dumps({"context_length": 64, "vocab": [f"w{i}" for i in range(60)]})
    )
    torch.manual_seed(0)
    net = files.build(cfg)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / files.WEIGHTS.name))
    return str(
        folder / files.WEIGHTS.name
    ), "phantom architecture (seeded random weights; shipped weights absent)"


def _prompts(folder: Path, backbone_name: str, options: dict, k: int = 8) -> Path:
    """A prompts.safetensors for the backbone (random class embeddings; speed does not depend on them)."""
    from safetensors.torch import save_file

    from kmat_cli.registry import get

    b = get("backbones", backbone_name)(**options, vision_only=True)
    emb = F.normalize(torch.randn(k, b.embed_dim), dim=-1)
    meta = {
        "kmat.format": "kmat.prompts/v1",
        "kmat.class_names": json.dumps([f"class {i}" for i in range(k)]),
        "kmat.backbone": b.id,
        "kmat.embed_dim": str(b.embed_dim),
        "kmat.logit_scale": repr(float(b.logit_scale)),
        "kmat.preprocess": json.dumps(b.preprocess_spec, sort_keys=True),
        "kmat.task": "benchmark",
        "kmat.modalities": json.dumps({"hi": "hi", "lo": "lo"}),
        "kmat.version": "benchmark",
        "kmat.backbone_config": json.dumps({"name": backbone_name, **options}),
    }
    dest = folder / "prompts.safetensors"
    save_file({"text_embeddings.lo": emb, "text_embeddings.hi": emb.clone()}, str(dest), metadata=meta)
    return dest


def _images(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` distinct smooth random RGB PNGs of ``size`` x ``size`` (low-frequency noise, upsampled)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        small = rng.integers(0, 256, (max(2, size // 8), max(2, size // 8), 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        out.append(folder / f"{i:05d}.png")
        img.save(out[-1])
    return out


def _rate(r: float) -> str:
    return f"{r:.0f}" if r >= 100 else f"{r:.2f}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _seconds(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", choices=["phantom", "vit-b-16"], default="phantom")
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--size", type=int, default=32, help="image side in pixels (files on disk)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="auto", help="comma list of worker counts, or auto")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the main process (0: default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from kmat_cli.images import load_image
    from kmat_cli.predict import RowWriter, auto_workers, load_classifier, predict

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.backbone == "phantom":
            weights, what = _phantom_weights(tmp_path)
            name, options = "phantom", {"weights": weights}
        else:
            name, options, what = (
                "open_clip",
                {"model": "ViT-B-16", "pretrained": None},
                "open_clip ViT-B-16 (random)",
            )
        prompts = _prompts(tmp_path, name, options)
        (tmp_path / "images").mkdir()
        files = _images(tmp_path / "images", args.images, args.size)
        clf = load_classifier(embeddings=prompts, device="cpu")
        b = clf.backbone

        pixels = torch.stack([b.preprocess(load_image(p)) for p in files])  # untimed
        batches = [pixels[i : i + args.batch_size] for i in range(0, len(pixels), args.batch_size)]

        def bare() -> None:
            for x in batches:
                b.encode_image(x)

        worker_list = [None] if args.workers == "auto" else [int(w) for w in args.workers.split(",")]
        worker_list = [auto_workers(len(files), args.batch_size) if w is None else w for w in worker_list]
        with open(os.devnull, "wb") as sink:

            def run(w: int) -> None:
                predict(clf, files, RowWriter(sink, clf.class_names), batch_size=args.batch_size, workers=w)

            bare()  # warm-up
            for w in worker_list:
                run(w)
            # interleaved: every repetition times the bare forward and then each predict setting, so both see
            # the same machine load; the ratio is taken per repetition
            bare_t: list[float] = []
            pred_t: dict[int, list[float]] = {w: [] for w in worker_list}
            for _ in range(args.reps):
                bare_t.append(_seconds(bare))
                for w in worker_list:
                    pred_t[w].append(_seconds(lambda w=w: run(w)))
        load = os.getloadavg()
    n = len(files)
    bare_rate = n / statistics.median(bare_t)
    cpu = _cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"Date {date.today()}; {cpu}, {cores} cores; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"Backbone: {what}; {n} PNG images of {args.size}x{args.size} px; batch {args.batch_size}; "
          f"median of {args.reps} after one warm-up\n")  # fmt: skip
    print(
        "| path | workers | images/s (median) | best images/s | vs bare forward (median of per-rep ratios) |"
    )
    print("|---|---|---|---|---|")
    print(f"| bare image-tower forward | - | {_rate(bare_rate)} | {_rate(n / min(bare_t))} | 100% |")
    for w, t in pred_t.items():
        ratio = statistics.median(bt / pt for bt, pt in zip(bare_t, t, strict=True))
        print(
            f"| kmat predict | {w} | {_rate(n / statistics.median(t))} | {_rate(n / min(t))} | {100 * ratio:.0f}% |"
        )
    print(f"\nload average after the runs (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")


if __name__ == "__main__":
    main()
