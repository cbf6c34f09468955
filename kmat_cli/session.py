"""kmat as a Python library (``import kmat``): train, evaluate, export and predict without building configs.

The ``kmat`` commands call these same functions, so a notebook and the command line produce the same run
folders::

    import kmat

    run = kmat.train(task="phantom", method="kmat", seed=1, epochs=2)  # a Run (its folder under runs/)
    run.metrics["lo"]["accuracy"]                     # the metrics.json written after training
    run.export("phantom-prompts.safetensors")         # the class embeddings for deployment
    prompts = kmat.load_prompts("phantom-prompts.safetensors")
    rows = kmat.predict(["scans/"], embeddings="phantom-prompts.safetensors")  # one dict per image

Options of :func:`train` are the ``kmat train`` flags by their long names (``shots``, ``epochs``,
``transport``, ``backbone``, ``device``, ``threads``, ``descriptions``, ``out``) and config sections as
mappings (``method={"lambda1": 2}``, ``train={"lr": 0.01}``: the default method with that option;
``method={"name": "coop", ...}`` names it too); ``config`` is a YAML file and ``sets`` a list
of ``key=value`` strings, exactly as on the command line. Bad options raise :class:`kmat_cli.errors.UsageError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmat_cli import runs
from kmat_cli.errors import UsageError

__all__ = ["FLAGS", "Run", "evaluate", "export", "load_prompts", "predict", "train", "train_config"]

# `kmat train` flag (long name) -> the config key it sets
FLAGS = {
    "task": "task.name",
    "method": "method.name",
    "transport": "transport.name",
    "backbone": "backbone.name",
    "shots": "train.shots",
    "seed": "train.seed",
    "epochs": "train.epochs",
    "device": "train.device",
    "threads": "train.threads",
    "descriptions": "descriptions",
    "out": "out",
}
_SECTIONS = ("task", "backbone", "method", "transport", "train")
RESUME_OPTIONS = ("device", "threads")  # how a resumed run continues, never what it computes


def _flag(option: str) -> str:
    """The ``kmat train`` flag of a :func:`train` argument (``config`` -> ``--config``)."""
    return f"--{option}"


@dataclass(frozen=True)
class Run:
    """A run folder made by :func:`train` (or ``kmat train``)."""

    path: Path

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed``, ``interrupted`` (from ``run.json``)."""
        return str(runs.open_run(self.path).status.get("status", "unknown"))

    @property
    def config(self) -> dict[str, Any]:
        """The run's resolved config (``config.yaml``)."""
        from kmat_cli.config import load_yaml

        return load_yaml(self.path / runs.Run.CONFIG)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The last evaluation (``metrics.json``), or None when the run was not evaluated."""
        file = self.path / runs.Run.METRICS
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None

    def evaluate(self, *, progress: bool = False) -> dict[str, Any]:
        """Evaluate on both test splits; returns (and writes) ``metrics.json``."""
        return evaluate(self.path, progress=progress)

    def export(self, path: str | Path | None = None, *, fmt: str = "safetensors") -> Path:
        """Write the class embeddings to ``path`` (default: the run's ``prompts.safetensors``); ``fmt="onnx"``:
        the low-end classifier as one ONNX model (default: the run's ``classifier.onnx``)."""
        return export(self.path, path, fmt=fmt)

    def predict(self, paths: Sequence[str | Path], **options: Any) -> list[dict[str, Any]]:
        """Classify image files and folders with this run's prompts (see :func:`predict`)."""
        return predict(paths, run=self.path, **options)


def train_config(
    *, config: str | Path | None = None, sets: Iterable[str] = (), **options: Any
) -> dict[str, Any]:
    """The resolved run config of :func:`train`'s arguments (defaults < task < ``config`` < options <
    ``sets``), validated like ``kmat train``'s."""
    from kmat_cli import config as config_mod

    flags: dict[str, Any] = {}
    for key, value in options.items():
        if key in _SECTIONS and isinstance(value, Mapping):  # method={"name": "coop", "lambda1": 2}
            flags.update({f"{key}.{k}": v for k, v in value.items()})
        elif key in FLAGS:
            flags[FLAGS[key]] = str(value) if isinstance(value, Path) else value
        else:
            known = ", ".join([*FLAGS, *(f"{s}={{...}}" for s in _SECTIONS)])
            raise UsageError(f"unknown train option '{key}'; known: {known}")
    return config_mod.build(config_file=config, flags=flags, sets=list(sets))


def train(
    task: str | Mapping[str, Any] | None = None,
    method: str | Mapping[str, Any] | None = None,
    seed: int | None = None,
    *,
    config: str | Path | None = None,
    sets: Iterable[str] = (),
    resume: str | Path | None = None,
    evaluate: bool = True,
    progress: bool = False,
    show: bool = False,
    **options: Any,
) -> Run:
    """Train prompts (``kmat train``) and return the finished :class:`Run`.

    ``resume``: a run folder to continue with its saved config (no other options then). ``progress``:
    progress on stderr (bars on a terminal, one line per epoch otherwise); ``show``: the metrics table
    on stderr."""
    from kmat_cli import config as config_mod
    from kmat_cli import workflow

    sets = list(sets)
    if resume is not None:
        named = {"task": task, "method": method, "seed": seed, "config": config, **options}
        refused = [_flag(k) for k, v in named.items() if v is not None and k not in RESUME_OPTIONS]
        if sets:
            refused.append("--set")
        if refused:
            raise UsageError(
                f"--resume continues {resume} with its saved {runs.Run.CONFIG}; drop {', '.join(refused)} (only "
                "--device, --threads and --evaluate/--no-evaluate go with --resume; start a new run to change it)"
            )
        run = runs.open_run(resume)
        if not run.file(runs.Run.CONFIG).is_file():
            raise UsageError(
                f"{run.path}: stopped before its {runs.Run.CONFIG} was saved; nothing to resume, start anew"
            )
        cfg = config_mod.load_yaml(run.file(runs.Run.CONFIG))
        # where and how fast to continue; config.yaml keeps what the run started with
        cfg["train"] = {**cfg["train"], **{k: v for k, v in options.items() if v is not None}}
    else:
        named = {"task": task, "method": method, "seed": seed}
        options = {**{k: v for k, v in named.items() if v is not None}, **options}
        cfg = train_config(config=config, sets=sets, **options)
        run = None
    scores = ("test",) if evaluate else ()
    done = workflow.run_training(cfg, run=run, scores=scores, progress=progress, show=show)
    return Run(done.path)


def evaluate(run: str | Path | Run, *, progress: bool = False, show: bool = False) -> dict[str, Any]:
    """``kmat evaluate``: metrics on both test splits of a trained run, written to its ``metrics.json``."""
    from kmat_cli import workflow

    return workflow.evaluate_run(_path(run), progress=progress, show=show)


def export(run: str | Path | Run, path: str | Path | None = None, *, fmt: str = "safetensors") -> Path:
    """``kmat export``: a run's class embeddings to ``path`` (default ``RUN/prompts.safetensors``);
    ``fmt="onnx"``: its low-end classifier as one ONNX model (default ``RUN/classifier.onnx``)."""
    from kmat_cli import workflow

    return workflow.export_run(_path(run), path, fmt=fmt)


def load_prompts(path: str | Path) -> Any:
    """Read a ``prompts.safetensors``: a :class:`kmat_cli.export.Prompts` (``embeddings["lo"]`` (K, D),
    ``class_names``, ``logit_scale``, ``backbone``, ``preprocess``, ``metadata``; ``logits(features)``)."""
    from kmat_cli.export import read_prompts

    return read_prompts(path)


def _row_sink(class_names: Sequence[str]) -> Any:
    """A :class:`kmat_cli.predict.RowWriter` that keeps the rows as dicts (the JSONL form) in ``.rows``."""
    from kmat_cli.predict import RowWriter

    class Rows(RowWriter):
        def __init__(self) -> None:
            super().__init__(None, class_names, "jsonl")  # type: ignore[arg-type]
            self.rows: list[dict[str, Any]] = []

        def write(self, rows: Sequence[Any]) -> None:
            self.rows += [self._json_row(r) for r in rows]

    return Rows()


def predict(
    paths: Sequence[str | Path],
    *,
    run: str | Path | Run | None = None,
    embeddings: str | Path | None = None,
    onnx: str | Path | None = None,
    modality: str = "lo",
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = 0,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """``kmat predict`` as rows: one dict per image (per frame of a multi-frame DICOM) with ``path``,
    ``frame``, ``label``, ``probabilities`` ({class: p}) and ``error`` (a file that cannot be read gets
    its error on its row, the others go on). Give exactly one of ``run``, ``embeddings`` and ``onnx`` (a
    ``classifier.onnx``, run by onnxruntime)."""
    from kmat_cli.predict import find_inputs, open_classifier
    from kmat_cli.predict import predict as classify

    files, _ = find_inputs(paths)
    classifier = open_classifier(
        run=_path(run) if run is not None else None,
        embeddings=embeddings,
        onnx=onnx,
        modality=modality,
        device=device,
        threads=threads,
    )
    sink = _row_sink(classifier.class_names)
    classify(classifier, files, sink, batch_size=batch_size, workers=workers, threads=threads)
    return sink.rows


def _path(run: str | Path | Run) -> Path:
    return run.path if isinstance(run, Run) else Path(run)
