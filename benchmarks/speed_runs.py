"""Row 4 of the speed benchmark (``speed.py``): the cost of one run of every method given cached features
(set-up, step, checkpoint, evaluation), projected to 50 epochs or, for K-MaT in full mode, measured."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from _common import interleave
from speed_parts import build_method, shots
from speed_plan import CHEST_TEST, SEEDS, Log, Plan, Results, Sync

METHODS = ("zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop", "kmat")


def run_costs(
    parts: Any,
    names: Sequence[str],
    folder: Path,
    test_feats: Mapping[str, torch.Tensor],
    *,
    reps: int,
    eval_subset: int,
    sync: Sync = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, dict[str, float]]:
    """Per method, one run given cached features: ``setup`` (building the method, which encodes its fixed
    texts), ``step`` (median ``Trainer.step``, the methods' steps interleaved, each after an untimed step of
    its own), ``save`` (median
    ``Trainer.save``: the checkpoint and metrics written after every epoch), ``fit`` = epochs x (steps per
    epoch x step + save) and ``eval`` (``kmat_cli.evaluate.classify`` on the test features; an
    image-conditioned method on ``eval_subset`` of them, scaled)."""
    from kmat_cli import evaluate
    from kmat_cli.train import Trainer

    device = parts.device
    epochs, batch = int(parts.cfg["train"]["epochs"]), int(parts.cfg["train"]["batch_size"])
    feats, labels = shots(parts, device)
    out: dict[str, dict[str, float]] = {}
    methods, trainers = {}, {}
    for name in names:
        log(f"row 4: {name}: set-up")
        start = time.perf_counter()
        methods[name] = build_method(parts, name)
        out[name] = {"setup": time.perf_counter() - start, "step": 0.0, "save": 0.0, "fit": 0.0}
        if methods[name].trainable:
            (folder / name).mkdir(parents=True, exist_ok=True)
            trainers[name] = Trainer(
                methods[name],
                feats,
                labels,
                parts.cfg["train"],
                device=device,
                folder=folder / name,
                progress=False,
            )
    log(f"row 4: steps of {', '.join(trainers)} (interleaved)")
    # each timed step follows an untimed one of the same method: the methods share the backbone, whose
    # layers keep packed weights for two prompt batches only (backbones/prepacked.py), and a training run
    # has one; the untimed step re-packs for this method, as its own run would have them
    step = {n: (lambda t=t: t.step(feats[:batch], labels[:batch])) for n, t in trainers.items()}
    steps = interleave(step, reps, sync=sync, before=step)
    saves = interleave({n: t.save for n, t in trainers.items()}, reps)
    for name, trainer in trainers.items():
        step, save = statistics.median(steps[name]), statistics.median(saves[name])
        out[name].update(step=step, save=save, fit=epochs * (len(trainer.batches(0)) * step + save))
    for name, method in methods.items():
        evaluation = 0.0
        for m, f in test_feats.items():
            part = f[:eval_subset] if method.image_conditioned else f
            start = time.perf_counter()
            evaluate.classify(method, part, m)
            if sync:
                sync()
            evaluation += (time.perf_counter() - start) * f.shape[0] / part.shape[0]
        out[name]["eval"] = evaluation
    return out


def full_fit(parts: Any, folder: Path, sync: Sync = None) -> float:
    """Seconds of a real K-MaT ``Trainer.fit`` over the configured epochs (checkpoints written)."""
    from kmat_cli.train import Trainer

    method = build_method(parts, "kmat")
    feats, labels = shots(parts, parts.device)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(
        method, feats, labels, parts.cfg["train"], device=parts.device, folder=folder, progress=False
    )
    start = time.perf_counter()
    trainer.fit()
    if sync:
        sync()
    return time.perf_counter() - start


def run_rows(res: Results, parts: Any, plan: Plan, tmp: Path, sync: Sync, log: Log) -> None:
    """Row 4: the cost of a run of every method (K-MaT's 50 epochs measured or projected)."""
    g = torch.Generator().manual_seed(1)
    test = {
        m: torch.nn.functional.normalize(torch.randn(n, parts.backbone.embed_dim, generator=g), dim=-1).to(
            parts.device
        )
        for m, n in zip(("hi", "lo"), CHEST_TEST, strict=True)
    }
    res.runs = run_costs(
        parts,
        METHODS,
        tmp / "runs",
        test,
        reps=plan.step_reps,
        eval_subset=plan.eval_subset,
        sync=sync,
        log=log,
    )
    if plan.full_kmat_run:
        log("row 4: K-MaT's real 50-epoch training run")
        res.kmat_projected_fit = res.runs["kmat"]["fit"]
        res.runs["kmat"]["fit"] = full_fit(parts, tmp / "runs" / "kmat-full", sync)
        res.kmat_fit_measured = True
    res.descriptions = sum(len(texts) for per in parts.descriptions.values() for texts in per.values())
    shots_per_seed = len(parts.task.class_names) * int(parts.cfg["train"]["shots"])
    res.unique_images = sum(CHEST_TEST) + SEEDS * shots_per_seed
