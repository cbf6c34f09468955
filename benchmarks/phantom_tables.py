"""Table-2 and Table-3 style results on the phantom world (mean ± std over seeds), and K-MaT's wall time.

Trains every cell through the library (``kmat_cli.workflow.train_command``, the code behind ``kmat train``)
and prints markdown: all six methods (Hi / Lo / H, accuracy and macro-F1), the ablation rows of K-MaT
(CE only; +CSC/MSC; +anchor; +FGW; full; full with transport alpha 0.1 / 0.5 / 0.9) and K-MaT's per-step
and per-run wall time. Finished cells are kept in ``<out>/cells.json`` and not recomputed.

    python benchmarks/phantom_tables.py --seeds 1,2,3 --out runs/phantom-tables --markdown phantom.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# (row label, method, --set overrides)
TABLE2: list[tuple[str, str, list[str]]] = [
    ("Zero-shot", "zeroshot", []),
    ("CoOp", "coop", []),
    ("CoCoOp", "cocoop", []),
    ("KgCoOp", "kgcoop", []),
    ("BiomedCoOp", "biomedcoop", []),
    ("K-MaT", "kmat", []),
]
_OFF = ["method.anchor=false", "method.transport=false"]
TABLE3: list[tuple[str, str, list[str]]] = [
    ("CE only (shared context, modality words)", "kmat", ["method.csc=false", "method.msc=false", *_OFF]),
    ("+ CSC/MSC", "kmat", _OFF),
    ("+ CSC/MSC + anchor", "kmat", ["method.transport=false"]),
    ("+ CSC/MSC + FGW", "kmat", ["method.anchor=false"]),
    ("full K-MaT (default, alpha 0.1)", "kmat", []),
    ("full K-MaT, alpha 0.5", "kmat", ["transport.alpha=0.5"]),
    ("full K-MaT, alpha 0.9", "kmat", ["transport.alpha=0.9"]),
]


def cell_key(method: str, sets: list[str], seed: int, epochs: int) -> str:
    return json.dumps(
        {"method": method, "sets": sorted(sets), "seed": seed, "epochs": epochs}, sort_keys=True
    )


def run_cell(method: str, sets: list[str], seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from kmat_cli import config, workflow

    flags = {
        "task.name": "phantom",
        "method.name": method,
        "transport.name": "fgw",
        "train.seed": seed,
        "train.epochs": args.epochs,
        "train.device": args.device,
        "train.threads": args.threads,
        "out": str(args.out),
    }
    cfg = config.build(flags=flags, sets=sets)
    start = time.perf_counter()
    run = workflow.train_command(cfg, progress=False, show=False)
    wall = time.perf_counter() - start
    metrics = json.loads(run.file("metrics.json").read_text(encoding="utf-8"))
    keep = {m: {k: metrics[m][k] for k in ("accuracy", "macro_f1")} for m in ("hi", "lo", "H")}
    return {**keep, "timing": {**metrics.get("timing", {}), "wall_s": wall}, "run": str(run.path)}


def fmt(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def table(
    rows: list[tuple[str, str, list[str]]], cells: dict[str, Any], seeds: list[int], epochs: int
) -> str:
    head = "| method | Hi acc | Lo acc | H acc | Hi F1 | Lo F1 | H F1 |\n|---|---|---|---|---|---|---|\n"
    lines = []
    for label, method, sets in rows:
        got = [cells[cell_key(method, sets, s, epochs)] for s in seeds]
        values = [fmt([g[m][k] for g in got]) for k in ("accuracy", "macro_f1") for m in ("hi", "lo", "H")]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return head + "\n".join(lines) + "\n"


def timing(cells: dict[str, Any], seeds: list[int], epochs: int) -> str:
    got = [cells[cell_key("kmat", [], s, epochs)]["timing"] for s in seeds]
    step_ms = [1000 * g["step_s"] for g in got]
    train_s = [g["train_s"] for g in got]
    wall_s = [g["wall_s"] for g in got]
    steps = got[0]["steps"]
    return (
        "| K-MaT (fgw, CPU) | mean ± std over seeds |\n|---|---|\n"
        f"| time per training step (ms) | {statistics.fmean(step_ms):.1f} ± "
        f"{statistics.stdev(step_ms) if len(step_ms) > 1 else 0:.1f} |\n"
        f"| training time per run, {steps} steps (s) | {statistics.fmean(train_s):.1f} ± "
        f"{statistics.stdev(train_s) if len(train_s) > 1 else 0:.1f} |\n"
        f"| wall time per run: build, features, train, export, evaluate (s) | {statistics.fmean(wall_s):.1f} ± "
        f"{statistics.stdev(wall_s) if len(wall_s) > 1 else 0:.1f} |\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("runs/phantom-tables"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "cells.json"
    cells: dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}

    from kmat_cli import atomic

    todo = [(m, sets, s) for _, m, sets in TABLE2 + TABLE3 for s in seeds]
    for method, sets, seed in todo:
        key = cell_key(method, sets, seed, args.epochs)
        if key in cells:
            continue
        print(f"[phantom_tables] {method} {' '.join(sets)} seed {seed}", file=sys.stderr, flush=True)
        cells[key] = run_cell(method, sets, seed, args)
        atomic.write_json(store, cells)

    import torch

    out = (
        f"Phantom world, 16 shots per class, {args.epochs} epochs, seeds {args.seeds}, device {args.device} "
        f"({args.threads or torch.get_num_threads()} torch threads); accuracy and macro-F1 in %, mean ± std over seeds.\n\n"
        "### Methods (Table 2 style)\n\n"
        + table(TABLE2, cells, seeds, args.epochs)
        + "\n### K-MaT ablation (Table 3 style)\n\n"
        + table(TABLE3, cells, seeds, args.epochs)
        + "\n### K-MaT wall time\n\n"
        + timing(cells, seeds, args.epochs)
    )
    print(out)
    if args.markdown:
        atomic.write_text(args.markdown, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
