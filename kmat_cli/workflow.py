"""What ``kmat train``, ``kmat evaluate`` and ``kmat export`` do, as library calls.

``train_command``: sample the few-shot high-end set, build the parts, read the training images' features
(so that bad input fails before any output exists), create (or reopen) the run folder,
train with the shared trainer (checkpoint every epoch), write ``prompts.safetensors``, evaluate on both
test splits (``metrics.json``, a table on stdout) and only then mark the run finished. Methods with
description prototypes per modality also get a label-free, text-only check (``checks.json``, one stderr
line at the start: mean cos(p_hi, p_lo) vs mean cos(t_hi, t_lo), the input of docs/defaults.md). Low-end images are
read only by the evaluation, after training.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kmat_cli import atomic, checkpoint, runs
from kmat_cli.api import MODALITIES
from kmat_cli.devices import resolve_device
from kmat_cli.errors import UsageError


def _say(message: str) -> None:
    print(f"kmat: {message}", file=sys.stderr, flush=True)


def _summary(cfg: Mapping[str, Any], backbone: Any) -> dict[str, Any]:
    t = cfg["train"]
    return {
        "task": cfg["task"]["name"],
        "method": cfg["method"]["name"],
        "transport": cfg["transport"]["name"],
        "backbone": str(getattr(backbone, "id", cfg["backbone"]["name"])),
        "seed": t["seed"],
        "shots": t["shots"],
        "epochs": t["epochs"],
    }


def _evaluate(parts: Any, method: Any, cfg: Mapping[str, Any], *, progress: bool = True) -> dict[str, Any]:
    from kmat_cli import evaluate

    task = parts.task
    splits = {m: task.split(m, "test") for m in MODALITIES}
    result = evaluate.evaluate_method(
        method,
        parts.backbone,
        splits,
        task.class_names,
        batch_size=cfg["train"]["eval_batch_size"],
        progress=progress,
    )
    return result.metrics()


CHECKS_FILE = "checks.json"
CHECKS_FORMAT = "kmat.checks/v1"


def checks_line(checks: Mapping[str, Any]) -> str:
    """The one stderr line of the label-free check at the start of training (docs/defaults.md)."""
    return (
        f"label-free check at init: mean cos(p_hi, p_lo) {checks['cos_p_hi_lo']:.3f} (description prototypes, "
        f"template {checks['description_template']!r}) vs mean cos(t_hi, t_lo) {checks['cos_t_hi_lo']:.3f} "
        "(prompts); close values mean the prototypes carry the prompts' modality gap"
    )


def _write_checks(run: runs.Run, init: Mapping[str, Any], trained: Mapping[str, Any] | None = None) -> None:
    """``checks.json``: the text-only checks of the prompts at init and (once trained) after training."""
    data = {"format": CHECKS_FORMAT, "init": dict(init)}
    if trained is not None:
        data["trained"] = dict(trained)
    atomic.write_json(run.file(CHECKS_FILE), data)


def train_command(
    cfg: Mapping[str, Any],
    run: runs.Run | None = None,
    evaluate: bool = True,
    *,
    validate: bool = False,
    progress: bool = True,
    show: bool = True,
) -> runs.Run:
    """Train (or, given ``run``, resume) the configured method; returns the finished run. ``evaluate``:
    both test splits (``metrics.json``); ``validate``: the high-end validation split only
    (``metrics-val.json``, see :func:`validate`), with the parts already built; ``progress``: progress
    bars on stderr; ``show``: the metrics table on stdout."""
    import torch

    from kmat_cli import assemble, data, export, train
    from kmat_cli.evaluate import METRICS_FILE, render

    cfg = dict(cfg)
    tcfg = cfg["train"]
    if run is not None and run.finished:
        _say(f"{run.path} is already finished; nothing to resume")
        if run.file(METRICS_FILE).is_file():
            import json

            render(json.loads(run.file(METRICS_FILE).read_text(encoding="utf-8")), title=str(run.path))
        return run
    started = time.perf_counter()
    train.check_settings(tcfg)
    train.set_threads(int(tcfg.get("threads", 0)))
    device = resolve_device(tcfg["device"])
    task = assemble.build_task(cfg)
    shots = data.few_shot(task.split("hi", "train"), task.class_names, int(tcfg["shots"]), int(tcfg["seed"]))
    parts = assemble.build_parts(cfg, device, task=task)
    train.seed_everything(int(tcfg["seed"]))
    method = assemble.build_method(parts)
    init_checks = method.text_checks() if method.trainable else None
    if method.trainable:  # every training image is read before the run folder exists: bad input leaves none
        from kmat_cli.features import image_features

        feats = image_features(
            parts.backbone,
            [s.path for s in shots],
            batch_size=int(tcfg["eval_batch_size"]),
            views=int(tcfg["augment_views"]),
            seed=int(tcfg["seed"]),
            progress=progress,
        )
        labels = torch.tensor([s.label for s in shots], dtype=torch.long)
    resume = run is not None
    if run is None:
        run = runs.start(cfg, "train")
    else:
        atomic.remove_temporaries(run.path)  # what the killed process was writing
        run.mark("running")
    if show or progress:
        _say(f"{'resuming' if resume else 'run folder'} {run.path}")
    if init_checks is not None:
        _write_checks(run, init_checks)
        if show or progress:
            _say(checks_line(init_checks))
    try:
        history: list[dict[str, Any]] = []
        if method.trainable:
            trainer = train.Trainer(
                method, feats, labels, tcfg, device=device, folder=run.path, progress=progress
            )
            if resume:
                trainer.resume()
            history = trainer.fit()
        if init_checks is not None:
            _write_checks(run, init_checks, method.text_checks())
        export.write_prompts(
            run.file(export.PROMPTS_FILE), method, parts.backbone, task=task, backbone_config=cfg["backbone"]
        )
        train_time = time.perf_counter() - started
        if validate:
            atomic.write_json(run.file(VAL_METRICS_FILE), _validation(parts, method, cfg, progress=progress))
        if evaluate:
            metrics = {
                **_evaluate(parts, method, cfg, progress=progress),
                "run": _summary(cfg, parts.backbone),
            }
            steps = sum(r["steps"] for r in history)
            metrics["timing"] = {
                "train_s": sum(r["time"] for r in history),
                "step_s": sum(r["time"] for r in history) / steps if steps else 0.0,
                "steps": steps,
                "until_export_s": train_time,
                "total_s": time.perf_counter() - started,
            }
            atomic.write_json(run.file(METRICS_FILE), metrics)
            if show:
                render(
                    metrics, title=f"{cfg['task']['name']} / {cfg['method']['name']} / seed {tcfg['seed']}"
                )
        run.mark("finished")
    except KeyboardInterrupt:
        run.mark("interrupted")
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):  # best effort (e.g. a full disk): the cause is what to report
            run.mark("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return run


def load_trained(path: str | Path) -> tuple[runs.Run, dict[str, Any], Any, Any]:
    """Rebuild a run's parts and method with its learned state: (run, cfg, parts, method)."""
    from kmat_cli import assemble, train
    from kmat_cli.config import load_yaml

    run = runs.open_run(path)
    cfg = load_yaml(run.file("config.yaml"))
    train.set_threads(int(cfg["train"].get("threads", 0)))
    device = resolve_device(cfg["train"]["device"])
    parts = assemble.build_parts(cfg, device)
    train.seed_everything(int(cfg["train"]["seed"]))
    method = assemble.build_method(parts)
    if method.trainable:
        if not checkpoint.exists(run.path):
            raise UsageError(
                f"{run.path}: no checkpoint yet; train it first (kmat train --resume {run.path})"
            )
        ckpt = checkpoint.load(run.path)
        method.load_state_dict(ckpt.method)
        if ckpt.epoch < int(cfg["train"]["epochs"]):
            _say(f"{run.path} stopped after epoch {ckpt.epoch} of {cfg['train']['epochs']}; using that state")
    method.eval()
    return run, cfg, parts, method


def evaluate_run(path: str | Path, *, progress: bool = True, show: bool = True) -> dict[str, Any]:
    """``kmat evaluate RUN``: metrics on both test splits, written to the run's ``metrics.json``."""
    from kmat_cli.evaluate import METRICS_FILE, render

    run, cfg, parts, method = load_trained(path)
    metrics = {**_evaluate(parts, method, cfg, progress=progress), "run": _summary(cfg, parts.backbone)}
    old = run.file(METRICS_FILE)
    if old.is_file():  # keep the training timings of the run
        import json

        timing = json.loads(old.read_text(encoding="utf-8")).get("timing")
        if timing:
            metrics["timing"] = timing
    atomic.write_json(run.file(METRICS_FILE), metrics)
    if show:
        render(metrics, title=str(run.path))
    return metrics


VAL_METRICS_FILE = "metrics-val.json"


def _validation(parts: Any, method: Any, cfg: Mapping[str, Any], *, progress: bool) -> dict[str, Any]:
    """The ``metrics-val.json`` content: ``{"format", "class_names", "split": "val", "hi": {accuracy,
    macro_f1, n, confusion}, "run": {...}}`` of ``method`` on the high-end validation split only."""
    from kmat_cli import evaluate

    result = evaluate.evaluate_method(
        method,
        parts.backbone,
        {"hi": parts.task.split("hi", "val")},
        parts.task.class_names,
        batch_size=cfg["train"]["eval_batch_size"],
        progress=progress,
    )
    return {
        "format": evaluate.METRICS_FORMAT,
        "class_names": result.class_names,
        "split": "val",
        "hi": result.modality("hi"),
        "run": _summary(cfg, parts.backbone),
    }


def validate(path: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Accuracy and macro-F1 of a trained run on the **high-end validation split only** (what ``kmat tune``
    and the grid's ``hi-val`` cells score); the low-end data are never opened. Written to the run's
    ``metrics-val.json`` and returned (:func:`_validation`)."""
    run, cfg, parts, method = load_trained(path)
    metrics = _validation(parts, method, cfg, progress=progress)
    atomic.write_json(run.file(VAL_METRICS_FILE), metrics)
    return metrics


def export_run(path: str | Path, out: str | Path | None = None) -> Path:
    """``kmat export RUN``: (re)write ``prompts.safetensors`` (or ``out``) from the run's learned state."""
    from kmat_cli import export

    run, cfg, parts, method = load_trained(path)
    return export.write_prompts(
        out or run.file(export.PROMPTS_FILE),
        method,
        parts.backbone,
        task=parts.task,
        backbone_config=cfg["backbone"],
    )
