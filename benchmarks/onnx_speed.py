"""ONNX speed: a ``classifier.onnx`` through onnxruntime against the same classifier in torch, on the CPU.

For each backbone, the classifier of ``kmat predict`` (image tower + normalisation + class embeddings + logit
scale + softmax) is exported with :func:`kmat_cli.onnx_export.write_onnx` and timed both ways on the same
preprocessed batches (the model alone: no decoding), interleaved (torch, onnxruntime, torch, ...) with
the same thread count (``--threads``, default torch's; the cold-start processes get it as
``OMP_NUM_THREADS``):

* throughput: images/s over ``--batches`` batches of ``--batch-size``, median of ``--reps``;
* file size of the ONNX model;
* cold start: a fresh Python process that imports what it needs, loads the model and classifies one batch
  (torch: :func:`kmat_cli.predict.load_classifier` from a prompts file, which builds the vision-only tower;
  onnxruntime: ``import onnxruntime, numpy`` and an ``InferenceSession``, what a deployment without kmat
  runs), wall time seen by the parent, median of ``--reps`` (files in the page cache after the first).

Backbones: ``phantom`` (the shipped weights, 32 px) and ``biomedclip`` (BiomedCLIP's architecture: timm
ViT-B/16 image tower, random weights, 224 px). Probabilities agree within 1e-4 (checked here on every
batch).

    .venv/bin/python benchmarks/onnx_speed.py
    .venv/bin/python benchmarks/onnx_speed.py --backbones biomedclip --batch-size 32 --batches 4 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import REPO, biomedclip_dir, interleave, machine, phantom_weights, prompts_file, rate

TORCH_COLD = """
import sys, torch
from kmat_cli.predict import load_classifier
clf = load_classifier(embeddings=sys.argv[1], device="cpu")
clf.probabilities(torch.zeros(int(sys.argv[2]), 3, int(sys.argv[3]), int(sys.argv[3])))
"""
ORT_COLD = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[4])
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
session.run(["probabilities"], {"pixels": np.zeros((int(sys.argv[2]), 3, int(sys.argv[3]), int(sys.argv[3])), np.float32)})
"""


def setup(name: str, folder: Path) -> tuple[str, dict[str, Any]]:
    """(registry name, options) of a benchmark backbone."""
    if name == "phantom":
        weights, _ = phantom_weights(folder)
        return "phantom", {"weights": weights}
    return "biomedclip", {"model": f"local-dir:{biomedclip_dir(folder / 'biomedclip')}"}


def cold_start(code: str, args: list[str], reps: int) -> float:
    """Median wall seconds of a fresh ``python -c code args`` (the repository on its path)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *args], check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from kmat_cli.export import read_prompts
    from kmat_cli.onnx_export import write_onnx
    from kmat_cli.predict import load_classifier, load_onnx_classifier

    reg, options = setup(name, folder)
    prompts = prompts_file(folder, reg, options)
    torch_clf = load_classifier(embeddings=prompts, device="cpu")
    tower = torch_clf.backbone
    start = time.perf_counter()
    model = write_onnx(folder / f"{name}.onnx", tower, torch_clf.embeddings, read_prompts(prompts).metadata)
    export_s = time.perf_counter() - start
    onnx_clf = load_onnx_classifier(model, threads=torch.get_num_threads())
    size = int(tower.preprocess_spec["image_size"])
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(args.batch_size, 3, size, size, generator=gen) for _ in range(args.batches)]
    for x in batches:
        gap = (onnx_clf.probabilities(x) - torch_clf.probabilities(x)).abs().max().item()
        assert gap <= 1e-4, f"{name}: onnxruntime differs from torch by {gap}"
    fns = {
        "torch": lambda: [torch_clf.probabilities(x) for x in batches],
        "onnxruntime": lambda: [onnx_clf.probabilities(x) for x in batches],
    }
    times = interleave(fns, args.reps)
    n = args.batch_size * args.batches
    cold_args = [str(args.batch_size), str(size)]
    return {
        "name": name,
        "tower": tower.id,
        "rates": {k: n / statistics.median(v) for k, v in times.items()},
        "mb": model.stat().st_size / 1e6,
        "export_s": export_s,
        "cold": {
            "torch": cold_start(TORCH_COLD, [str(prompts), *cold_args], args.reps),
            "onnxruntime": cold_start(
                ORT_COLD, [str(model), *cold_args, str(torch.get_num_threads())], args.reps
            ),
        },
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"Date {date.today()}; {machine()}; onnxruntime {_ort_version()}; {torch.get_num_threads()} threads"
    )
    print(f"Batch {args.batch_size}, {args.batches} batches; median of {args.reps} after one warm-up\n")
    print(
        "| backbone | torch images/s | onnxruntime images/s | ratio | ONNX file | export | cold start torch "
        "| cold start onnxruntime | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        t, o = r["rates"]["torch"], r["rates"]["onnxruntime"]
        ct, co = r["cold"]["torch"], r["cold"]["onnxruntime"]
        print(
            f"| {r['name']} | {rate(t)} | {rate(o)} | {o / t:.2f}x | {r['mb']:.1f} MB | {r['export_s']:.1f} s "
            f"| {ct:.2f} s | {co:.2f} s | {ct / co:.1f}x |"
        )
    print(f"\nload average after the runs (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", default="phantom,biomedclip", help="comma list: phantom, biomedclip")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=0, help="torch and onnxruntime threads (0: torch's default)"
    )
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    np.random.seed(0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backbones.split(","):
            folder = Path(tmp) / name
            folder.mkdir()
            results.append(measure(name, args, folder))
    report(results, args)


if __name__ == "__main__":
    main()
