"""Speed benchmark: kmat's training step against the naive step and the lower bound, the chest-sized protocol,
predict and peak memory, measured side by side in one run on BiomedCLIP's architecture and on phantom.

BiomedCLIP's architecture (ViT-B/16 image tower, PubMedBERT-size BERT text tower, context 256) is built
offline with random weights (speed does not depend on weight values); the task is ``chest`` (3 classes, its
modality words and descriptions), the transport ``fgw``, the training settings kmat's defaults (16 shots,
50 epochs, batch 4: 12 steps per epoch, 600 per run).

1. naive step: the batch's images re-encoded by the image tower (no grad) and the text tower run at the full
   256-token context (what the public prompt-learning repos do), then kmat's own loss and optimizer step;
   kmat's step: ``Trainer.step`` (the trainer's per-step call) on cached image features, prompts at their
   real length (packed without padding), the text tower's frozen linear layers on MKL-packed weights
   (``backbones/prepacked.py``), description prototypes encoded once. Ratio naive / kmat. What the packed
   weights gain: whole K-MaT epochs (12 steps) with and without them, alternated.
2. lower bound: the text tower forward + backward of the 2K prompts at their real length (one
   ``encode_prompts`` call on a leaf context) plus K-MaT's loss terms; ratio kmat / bound, timed interleaved
   with kmat's step (and FGW) apart from the naive step, whose pass over the unpacked weights would leave
   kmat's packed ones out of the caches for the next call.
3. FGW share: the transport's forward + backward on the step's (K, D) embeddings / kmat's step.
4. chest-sized protocol: one K-MaT training run given cached features (method set-up, which encodes the
   descriptions, plus 50 epochs: measured through ``Trainer.fit`` with its checkpoints in full mode, and
   projected as 50 x (12 x step + checkpoint) from the interleaved step times); the one-time encoding of the
   images (``kmat_cli.features``, from PNG files into a cold cache) against the bare image tower; the
   projected total of 6 methods x 3 seeds with the image features encoded once and shared by all 18 runs
   (per method: set-up + 50 x (12 x its step + checkpoint) + evaluation of the 1678 + 914 test features).
5. ``kmat predict`` (from PNG files, ``--workers`` left to auto) against the bare image-tower forward on the
   same images decoded beforehand, for BiomedCLIP's image tower and for the phantom one (the latter on one
   torch thread, its recommended setting, so a decoding worker has the second core).
6. peak RSS (VmHWM) of a training run and of a predict run, each in a child process of its own.

Repetitions are interleaved (A B A B ...) after one warm-up round, so machine load hits all alike; times are
medians and ratios the median of per-repetition ratios. On a CUDA machine the same table follows for the GPU.

    .venv/bin/python benchmarks/speed.py --quick      # what `make bench` runs (< 3 minutes on 2 cores)
    .venv/bin/python benchmarks/speed.py              # full: more repetitions, the real 50-epoch run

The rows are measured by ``speed_steps`` (1-3), ``speed_runs`` (4), ``speed_images`` (4-5) and
``speed_memory`` (6) on the chest parts of ``speed_parts``, into a ``speed_plan.Results`` that
``speed_report`` writes out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from _common import biomedclip, biomedclip_dir, cores
from speed_images import encoding_rows, phantom_row
from speed_memory import memory_row
from speed_parts import build_parts
from speed_plan import FULL, QUICK, Log, Plan, Results
from speed_report import header, last_line, table
from speed_runs import run_rows
from speed_steps import step_rows


def measure(device: str, plan: Plan, threads: int, log: Log) -> Results:
    """All rows for one device."""
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else None
    res = Results(device=device)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = biomedclip_dir(tmp / "model")
        log("building BiomedCLIP's architecture (random weights)")
        parts = build_parts(biomedclip(model_dir, device=device), dev)
        step_rows(res, parts, plan, sync, log)
        run_rows(res, parts, plan, tmp, sync, log)
        prompts = encoding_rows(res, parts, plan, tmp, model_dir, sync, log)
        del parts  # BiomedCLIP leaves memory before the phantom rows
        phantom_row(res, plan, tmp, threads, sync, log)
        memory_row(res, plan, tmp, prompts, threads, log)
    return res


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every device asked for, then print a header and a table per device and the last line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="few repetitions, K-MaT's 50 epochs projected (< 3 min)"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto: the CPU, then CUDA when present")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else FULL
    devices = (
        ["cpu", *(["cuda"] if torch.cuda.is_available() else [])] if args.device == "auto" else [args.device]
    )
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    log(f"{cores()} cores; {args.threads} torch threads; mode {plan.name}; devices {', '.join(devices)}")
    results = []
    for device in devices:
        load_start = os.getloadavg()
        res = measure(device, plan, args.threads, log)
        results.append((res, load_start, os.getloadavg()))
    for res, load_start, load_end in results:
        print(header(res, plan, args.threads, load_start, load_end))
        print()
        print(table(res))
        print()
    log("done")
    print(last_line(results[0][0]))


if __name__ == "__main__":
    main()
