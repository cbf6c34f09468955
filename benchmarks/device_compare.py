"""The same short phantom K-MaT training on the CPU and on CUDA (full and mixed precision), compared.

Each run is ``kmat train --task phantom --method kmat --seed 1`` for ``--epochs`` epochs, then evaluated on
both test splits. Every accelerator run is compared to the first (the reference, normally the CPU) by its
test accuracies (Hi, Lo; difference in points) and by its learned low-end class embeddings (lowest cosine
over the classes). Tolerances, stated before running: full precision within ``--tol`` points (default 2)
and cosine >= 0.999 (float round-off only, the transport being solved on the CPU in float64 either way);
mixed precision (bfloat16 or float16 autocast, the trainer's ``train.amp``) within ``--amp-tol`` points
(default 5) and cosine >= 0.99. Prints a markdown table; exit code 1 when a run is out of tolerance.

    .venv/bin/python benchmarks/device_compare.py --runs cpu,cuda,cuda+amp --epochs 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from kmat_cli import session

COSINE = {False: 0.999, True: 0.99}  # lowest cosine to the reference's low-end embeddings, by amp


def train(run: str, epochs: int, out: Path) -> dict[str, object]:
    """Train and evaluate one run (``cpu``, ``cuda`` or ``cuda+amp``); its metrics, embeddings, seconds."""
    device, _, amp = run.partition("+")
    start = time.perf_counter()
    done = session.train(
        "phantom",
        "kmat",
        1,
        sets=[
            f"out={out / run}",
            f"train.epochs={epochs}",
            f"train.device={device}",
            f"train.amp={str(bool(amp)).lower()}",
        ],
    )
    seconds = time.perf_counter() - start
    metrics = json.loads((Path(done.path) / "metrics.json").read_text())
    lo = load_file(str(Path(done.path) / "prompts.safetensors"))["text_embeddings.lo"].float()
    return {"hi": metrics["hi"]["accuracy"], "lo": metrics["lo"]["accuracy"], "emb": lo, "s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="cpu,cuda,cuda+amp", help="the first is the reference")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--tol", type=float, default=2.0, help="accuracy points, full precision")
    parser.add_argument("--amp-tol", type=float, default=5.0, help="accuracy points, mixed precision")
    args = parser.parse_args()
    runs = args.runs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        results = {run: train(run, args.epochs, Path(tmp)) for run in runs}
    ref = results[runs[0]]
    print(f"phantom K-MaT, seed 1, {args.epochs} epochs; reference: {runs[0]}; torch {torch.__version__}\n")
    print("| run | Hi acc % | Lo acc % | max diff (points) | min cos(t_lo) | tolerance | ok | s |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for run, r in results.items():
        amp = "+amp" in run
        diff = 100 * max(abs(r["hi"] - ref["hi"]), abs(r["lo"] - ref["lo"]))  # type: ignore[operator]
        cos = float(torch.nn.functional.cosine_similarity(r["emb"], ref["emb"], dim=-1).min())  # type: ignore[arg-type]
        tol = args.amp_tol if amp else args.tol
        ok = diff <= tol and cos >= COSINE[amp]
        failed |= not ok
        print(
            f"| {run} | {100 * r['hi']:.1f} | {100 * r['lo']:.1f} | {diff:.1f} | {cos:.5f} | "  # type: ignore[operator]
            f"<= {tol:g} points, cos >= {COSINE[amp]} | {'yes' if ok else 'NO'} | {r['s']:.1f} |"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
