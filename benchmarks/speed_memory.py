"""Row 6 of the speed benchmark (``speed.py``): the peak resident set size (VmHWM) of a K-MaT training run
and of a predict run, each measured in a fresh interpreter running this file, which prints its answer as
one JSON line.

    python benchmarks/speed_memory.py train --device cpu --threads 2
    python benchmarks/speed_memory.py predict --device cpu --threads 2 --prompts P --images DIR --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from _common import biomedclip
from speed_parts import build_method, build_parts, shots, train_cfg
from speed_plan import Log, Plan, Results


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_train(device: str) -> dict[str, float]:
    """A K-MaT training run in this (child) process: BiomedCLIP architecture, chest, one epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        from kmat_cli.train import Trainer

        dev = torch.device(device)
        parts = build_parts(biomedclip(Path(tmp) / "model", device=device), dev)
        method = build_method(parts, "kmat")
        feats, labels = shots(parts, dev)
        Trainer(
            method, feats, labels, train_cfg(parts, 1), device=dev, folder=Path(tmp) / "run", progress=False
        ).fit()
    return {"peak_rss_mb": peak_rss_mb()}


def child_predict(device: str, prompts: str, images: str, batch_size: int) -> dict[str, float]:
    """``kmat predict`` (library call, 1 decoding worker) in this (child) process."""
    from kmat_cli.predict import RowWriter, find_inputs, load_classifier, predict

    clf = load_classifier(embeddings=prompts, device=device)
    files, _ = find_inputs([images])
    with open(os.devnull, "wb") as sink:
        predict(clf, files, RowWriter(sink, clf.class_names), batch_size=batch_size, workers=1)
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": worker}


def in_child(args: list[str]) -> dict[str, float]:
    """Run this file with ``args`` in a fresh interpreter; its JSON answer."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_row(res: Results, plan: Plan, tmp: Path, prompts: Path, threads: int, log: Log) -> None:
    """Row 6: peak memory of a training run and of a predict run, each in a child process."""
    log("row 6: peak RSS of a training run and of a predict run (child processes)")
    common = ["--threads", str(threads), "--device", res.device]
    res.rss_mb["train"] = in_child(["train", *common])["peak_rss_mb"]
    pred = in_child(
        ["predict", *common, "--prompts", str(prompts), "--images", str(tmp / "images"),
         "--batch-size", str(plan.image_batch)]
    )  # fmt: skip
    res.rss_mb["predict"] = pred["peak_rss_mb"]
    res.rss_mb["predict_worker"] = pred["worker_peak_rss_mb"]


def main(argv: Sequence[str] | None = None) -> None:
    """The child: one training or predict run, then its peak memory as one JSON line on stdout."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", choices=["train", "predict"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompts", help="predict: the prompts file")
    ap.add_argument("--images", help="predict: the folder of images")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.run == "train":
        out = child_train(args.device)
    else:
        out = child_predict(args.device, args.prompts, args.images, args.batch_size)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
