"""A method's scores as a run records them: both test splits (``metrics.json``) and the high-end validation
split (``metrics-val.json``), each with the run's summary (task, method, transport, backbone, seed, shots,
epochs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kmat_cli.api import MODALITIES


def summary(cfg: Mapping[str, Any], backbone: Any) -> dict[str, Any]:
    """The ``run`` entry of a metrics file: what was trained, from the resolved config ``cfg``."""
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


def metrics_on_test(
    parts: Any, method: Any, cfg: Mapping[str, Any], *, progress: bool = True
) -> dict[str, Any]:
    """Accuracy, macro-F1 and H of ``method`` on the test split of every modality
    (:meth:`kmat_cli.evaluate.Evaluation.metrics`), with the ``run`` :func:`summary`."""
    from kmat_cli import evaluate

    task = parts.task
    result = evaluate.evaluate_method(
        method,
        parts.backbone,
        {m: task.split(m, "test") for m in MODALITIES},
        task.class_names,
        batch_size=cfg["train"]["eval_batch_size"],
        progress=progress,
    )
    return {**result.metrics(), "run": summary(cfg, parts.backbone)}


def metrics_on_validation(
    parts: Any, method: Any, cfg: Mapping[str, Any], *, progress: bool
) -> dict[str, Any]:
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
        "run": summary(cfg, parts.backbone),
    }
