"""Rows 4-5 of the speed benchmark (``speed.py``): image encoding into the features cache and ``kmat
predict`` against the bare image-tower forward, on BiomedCLIP's image tower and on the phantom one."""

from __future__ import annotations

import itertools
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from _common import interleave, per_rep_ratio, phantom_weights, png_images, prompts_file
from speed_plan import Log, Plan, Results, Sync


def features_call(
    backbone: Any, files: Sequence[Path], batch_size: int, cache_root: Path
) -> Callable[[], torch.Tensor]:
    """``kmat_cli.features.image_features`` of the PNG files into a fresh (cold) cache under ``cache_root``
    at each call (hashing, decoding, the tower, shards written); the call returns the features."""
    from kmat_cli.features import image_features

    calls = itertools.count(1)

    def features() -> torch.Tensor:
        cache = cache_root / str(next(calls))
        return image_features(backbone, files, batch_size=batch_size, cache_dir=cache, progress=False)

    return features


def auto_label(n_files: int, batch_size: int, device: str) -> str:
    """What ``kmat predict``'s ``--workers auto`` does for these inputs, in words."""
    from kmat_cli.predict import auto_workers

    n, adaptive = auto_workers(n_files, batch_size, device)
    if adaptive and -(-n_files // batch_size) < 3:
        return "workers auto: decoding in the main process (all cores run the model)"
    return f"workers auto: {n}{' if decoding is >= 10% of the work' if adaptive else ''}"


def encoding_rows(
    res: Results,
    parts: Any,
    plan: Plan,
    tmp: Path,
    model_dir: Path,
    sync: Sync,
    log: Log,
) -> Path:
    """Rows 4-5: image encoding and predict on BiomedCLIP's image tower; returns the prompts file."""
    from predict_speed import predict_fns

    from kmat_cli.predict import load_classifier

    device = res.device
    log(f"rows 4-5: image encoding and predict on {plan.images} PNGs (interleaved)")
    files = png_images(tmp / "images", plan.images, 256)
    prompts = prompts_file(tmp, "biomedclip", {"model": f"local-dir:{model_dir}"}, k=3)
    clf = load_classifier(embeddings=prompts, device=device)
    with open(os.devnull, "wb") as sink:
        # one bare forward (the classifier's image tower; the same architecture as the full model's)
        fns = {
            **predict_fns(clf, files, batch_size=plan.image_batch, workers=[None], sink=sink),
            "features": features_call(parts.backbone, files, plan.image_batch, tmp / "cache"),
        }
        times = interleave(fns, plan.image_reps, sync=sync)
    res.encode_ratio = per_rep_ratio(times["bare"], times["features"])
    res.encode_rate = len(files) / statistics.median(times["features"])
    res.predict["biomedclip"] = per_rep_ratio(times["bare"], times["predict-auto"])
    res.predict_rate["biomedclip"] = len(files) / statistics.median(times["predict-auto"])
    res.predict_workers["biomedclip"] = auto_label(len(files), plan.image_batch, device)
    return prompts


def phantom_row(res: Results, plan: Plan, tmp: Path, threads: int, sync: Sync, log: Log) -> None:
    """Row 5: predict on phantom (small images, one thread)."""
    from predict_speed import predict_fns

    from kmat_cli.predict import load_classifier

    log(f"row 5: predict on phantom, {plan.phantom_images} PNGs of 32 px (interleaved, 1 thread)")
    weights, _ = phantom_weights(tmp)
    (tmp / "phantom").mkdir()
    pfiles = png_images(tmp / "phantom" / "images", plan.phantom_images, 32)
    pclf = load_classifier(
        embeddings=prompts_file(tmp / "phantom", "phantom", {"weights": weights}), device=res.device
    )
    torch.set_num_threads(1)
    try:
        with open(os.devnull, "wb") as sink:
            fns = predict_fns(pclf, pfiles, batch_size=64, workers=[None], sink=sink)
            times = interleave(fns, plan.phantom_reps, sync=sync)
            res.predict_workers["phantom"] = auto_label(len(pfiles), 64, res.device)
    finally:
        torch.set_num_threads(threads)
    res.predict["phantom"] = per_rep_ratio(times["bare"], times["predict-auto"])
    res.predict_rate["phantom"] = len(pfiles) / statistics.median(times["predict-auto"])
