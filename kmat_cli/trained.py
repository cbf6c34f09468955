"""What ``kmat evaluate``, ``kmat export`` and ``kmat tune`` do with a trained run folder.

:func:`load_trained` rebuilds a run from its saved config (validated as a new one is) and its checkpoint;
:func:`evaluate_run` rewrites ``metrics.json`` (keeping the training timings), :func:`validate` writes
``metrics-val.json`` from the high-end validation split only, and :func:`export_run` writes
``prompts.safetensors`` or ``classifier.onnx`` of a finished run. While one of them writes into the run's
folder, a folder deleted meanwhile makes it fail instead of recreating the folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kmat_cli import atomic, checkpoint, datafiles, runs, scoring
from kmat_cli.errors import UsageError
from kmat_cli.progress import warn
from kmat_cli.runconfig import RunConfig
from kmat_cli.runs import Run


def load_trained(path: str | Path, device: str | None = None) -> tuple[runs.Run, dict[str, Any], Any, Any]:
    """Rebuild a run's parts and method with its learned state: (run, cfg, parts, method), on ``device``
    (None: the run config's ``train.device``)."""
    from kmat_cli import assemble, runtime
    from kmat_cli.config import load_saved

    run = runs.open_run(path)
    if not run.file(Run.CONFIG).is_file():
        raise UsageError(
            f"{run.path}: stopped before its {Run.CONFIG} was saved; nothing to load, start anew"
        )
    cfg = load_saved(run.file(Run.CONFIG))
    settings = RunConfig.from_dict(cfg)
    parts = assemble.build_parts(cfg, runtime.start(settings.train, device))
    method = assemble.build_method(parts, seed=settings.train.seed)
    if method.trainable:
        if not checkpoint.exists(run.path):
            raise UsageError(f"{run.path}: no checkpoint yet; {runs.resume_hint(run.path)}")
        checkpoint.restore(run.path, method)
    method.eval()
    return run, cfg, parts, method


def evaluate_run(path: str | Path, *, progress: bool = True, show: bool = True) -> dict[str, Any]:
    """``kmat evaluate RUN``: metrics on both test splits, written to the run's ``metrics.json``."""
    from kmat_cli.evaluate import render

    run, cfg, parts, method = load_trained(path)
    if not run.finished:  # evaluating a partly trained model is a diagnosis: say so where it cannot be missed
        warn(
            f"{run.path}: unfinished run ({runs.stopped_at(run)}); these are the metrics of that state; "
            f"{runs.resume_hint(run.path)}"
        )
    with _kept(run, "evaluation"):
        metrics = scoring.metrics_on_test(parts, method, cfg, progress=progress)
        timing = _training_timing(run)
        if timing:  # keep the training timings of the run
            metrics["timing"] = timing
        atomic.write_json(run.file(Run.METRICS), metrics)
    if show:
        render(metrics, title=str(run.path))
    return metrics


def _training_timing(run: runs.Run) -> Any:
    """The ``timing`` of the run's current ``metrics.json`` (None where it is missing, damaged or not the
    run's own file: a planted link is never read, :func:`kmat_cli.atomic.read_owned`)."""
    try:
        old = datafiles.read_owned_json(run.file(Run.METRICS))
    except (OSError, datafiles.DataError):
        return None
    return old.get("timing") if isinstance(old, dict) else None


def validate(path: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Accuracy and macro-F1 of a trained run on the **high-end validation split only** (what ``kmat tune``
    and the grid's ``hi-val`` cells score); the low-end data are never opened. Written to the run's
    ``metrics-val.json`` and returned (:func:`kmat_cli.scoring.metrics_on_validation`)."""
    run, cfg, parts, method = load_trained(path)
    with _kept(run, "validation"):
        metrics = scoring.metrics_on_validation(parts, method, cfg, progress=progress)
        atomic.write_json(run.file(Run.VAL_METRICS), metrics)
    return metrics


EXPORT_FORMATS = ("safetensors", "onnx")


def export_run(path: str | Path, out: str | Path | None = None, fmt: str = "safetensors") -> Path:
    """``kmat export RUN``: (re)write ``prompts.safetensors`` (or ``out``, never another file of the run)
    from a finished run's learned state; ``fmt="onnx"``: ``classifier.onnx``, the low-end classifier as one
    ONNX model (:mod:`kmat_cli.onnx_export`)."""
    from kmat_cli import export, onnx_export, outputs

    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format '{fmt}' is not known; use one of: {', '.join(EXPORT_FORMATS)}")
    if fmt == "onnx":  # before the run is loaded: a missing extra is the first thing said
        onnx_export.require("onnx")
        onnx_export.require("onnxruntime")
    finished = runs.require_finished(path, "export")  # a partly trained model is resumed, not deployed
    own_file = finished.file(Run.ONNX if fmt == "onnx" else Run.PROMPTS)
    if out is not None:
        outputs.check_run_files(out, finished.path, "--output", allowed=[own_file])
    if fmt == "onnx":
        loaded = load_trained(path, device="cpu")
        with _kept(loaded[0], "export"):
            return _export_onnx(*loaded, out)
    run, cfg, parts, method = load_trained(path)
    with _kept(run, "export"):
        return export.write_prompts(
            out or own_file,
            method,
            parts.backbone,
            task=parts.task,
            backbone_config=cfg["backbone"],
            user_named=out is not None,
        )


def _kept(run: runs.Run, doing: str) -> contextlib.AbstractContextManager[None]:
    """While a command reads and writes a finished run: a write into its folder after the folder was
    deleted or replaced fails (RuntimeFailure) instead of recreating it (:func:`kmat_cli.atomic.guard_folder`)."""
    return atomic.guard_folder(run.path, f"run folder {run.path} vanished during {doing}")


def _export_onnx(
    run: runs.Run, cfg: Mapping[str, Any], parts: Any, method: Any, out: str | Path | None
) -> Path:
    """``classifier.onnx`` (or ``out``) of a loaded run: its low-end embeddings and the prompts file's
    metadata, with the run's folder name, seed and config hash as provenance."""
    import hashlib

    from kmat_cli import export, onnx_export

    tensors, metadata = export.prompt_file_content(
        method,
        parts.backbone,
        task=parts.task.name,
        class_names=list(parts.task.class_names),
        modalities=parts.task.modalities,
        backbone_config=cfg["backbone"],
    )
    provenance = {
        "run": run.path.name,
        "seed": int(cfg["train"]["seed"]),
        "config_sha256": hashlib.sha256(run.file(Run.CONFIG).read_bytes()).hexdigest(),
    }
    return onnx_export.write_onnx(
        out or run.file(Run.ONNX),
        parts.backbone,
        tensors["text_embeddings.lo"],
        metadata,
        provenance=provenance,
        user_named=out is not None,
    )
