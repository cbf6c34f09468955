"""kmat as a Python library (``import kmat``): train, evaluate, export and predict without building configs.

The ``kmat`` commands call these same functions, so a notebook and the command line produce the same run
folders::

    import kmat

    run = kmat.train(task="phantom", method="kmat", seed=1, epochs=2)  # a Run (its folder under runs/)
    run.metrics["lo"]["accuracy"]                     # the metrics.json written after training
    run = kmat.Run("runs/train/phantom-kmat-s1-1")    # reopen any run: .status .config .metrics .history
    rows = kmat.predict("scans/", run=run)            # one dict per image; pandas.DataFrame(rows)
    prompts = kmat.load_prompts(run.path)             # the run's prompts.safetensors

Options of :func:`train` are the ``kmat train`` flags by their long names (``shots``, ``epochs``,
``transport``, ``backbone``, ``device``, ``threads``, ``descriptions``, ``out``) and config sections as
mappings (``method={"lambda1": 2}``, ``train={"lr": 0.01}``: the default method with that option;
``method={"name": "coop", ...}`` names it too); ``config`` is a YAML file and ``sets`` a list
of ``key=value`` strings, exactly as on the command line. Bad options raise :class:`kmat_cli.errors.UsageError`.
Progress is on by default (bars on a terminal, one line per epoch in a notebook or log); ``progress=False``
turns it off.

The examples in the docstrings run in order in a fresh folder (``tests/kmat_cli/test_session.py`` runs them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from kmat_cli import runs
from kmat_cli.errors import UsageError
from kmat_cli.runs import Run

if TYPE_CHECKING:  # torch-free at import: these modules import torch
    from typing import Unpack

    import torch
    from PIL.Image import Image

    from kmat_cli.export import Prompts
    from kmat_cli.predict.output import Prediction

    # what kmat.predict classifies: a path, a Pillow image, a tensor of images, or a list mixing them
    Images = str | Path | Image | torch.Tensor | Sequence[str | Path | Image | torch.Tensor]

__all__ = [
    "Run",
    "TrainOptions",
    "evaluate",
    "export",
    "load_prompts",
    "predict",
    "sample_images",
    "train",
    "train_config",
]

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


class TrainOptions(TypedDict, total=False):
    """The options of :func:`train` and :func:`train_config` besides task, method and seed: the ``kmat train``
    flags by their long names (:data:`FLAGS`); a config section as a mapping sets options of it
    (``train={"lr": 0.01}``)."""

    transport: str | Mapping[str, Any]
    backbone: str | Mapping[str, Any]
    shots: int
    epochs: int
    device: str
    threads: int
    descriptions: str | Path
    out: str | Path
    train: Mapping[str, Any]


RESUME_OPTIONS = ("device", "threads")  # how a resumed run continues, never what it computes


def _flag(option: str) -> str:
    """The ``kmat train`` flag of a :func:`train` argument (``config`` -> ``--config``)."""
    return f"--{option}"


def train_config(
    *,
    task: str | Mapping[str, Any] | None = None,
    method: str | Mapping[str, Any] | None = None,
    seed: int | None = None,
    config: str | Path | None = None,
    sets: Iterable[str] = (),
    **options: Unpack[TrainOptions],
) -> dict[str, Any]:
    """The resolved run config of :func:`train`'s arguments (defaults < task < ``config`` < options <
    ``sets``), validated like ``kmat train``'s.

    >>> cfg = kmat.train_config(task="phantom", epochs=2, method={"lambda1": 2.0}, sets=["train.lr=0.01"])
    >>> cfg["train"]["epochs"], cfg["method"]["lambda1"], cfg["train"]["lr"]
    (2, 2.0, 0.01)
    """
    from kmat_cli import config as config_mod

    for key, name in (("task", task), ("method", method)):
        if isinstance(name, str) and "," in name:
            raise UsageError(
                f"kmat train takes one {key}, got '{name}'; to compare several, run "
                f"`kmat benchmark --{key}{'s' if key == 'method' else ''} {name}`"
            )
    named = {k: v for k, v in (("task", task), ("method", method), ("seed", seed)) if v is not None}
    flags: dict[str, Any] = {}
    for key, value in {**named, **options}.items():
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
    progress: bool = True,
    show: bool = False,
    verbose: bool = False,
    **options: Unpack[TrainOptions],
) -> Run:
    """Train prompts (``kmat train``) and return the finished :class:`Run`.

    ``resume``: a run folder to continue with its saved config (no other options then). ``progress``:
    progress on stderr (bars on a terminal, one line per epoch in a notebook or log; ``False``: silent);
    ``show``: the metrics table on stderr; ``verbose``: also the label-free check at initialisation.

    >>> run = kmat.train(task="phantom", method="kmat", seed=1, epochs=2, shots=2, progress=False)
    >>> run.path.as_posix(), 0 <= run.metrics["lo"]["accuracy"] <= 1
    ('runs/train/phantom-kmat-s1-1', True)
    """
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
        cfg = config_mod.load_saved(run.file(runs.Run.CONFIG))
        # where and how fast to continue; config.yaml keeps what the run started with
        cfg["train"] = {**cfg["train"], **{k: v for k, v in options.items() if v is not None}}
    else:
        cfg = train_config(task=task, method=method, seed=seed, config=config, sets=sets, **options)
        run = None
    scores = ("test",) if evaluate else ()
    done = workflow.run_training(cfg, run=run, scores=scores, progress=progress, show=show, verbose=verbose)
    return done


def evaluate(run: str | Path | Run, *, progress: bool = True, show: bool = False) -> dict[str, Any]:
    """``kmat evaluate``: metrics on both test splits of a trained run, written to its ``metrics.json``.

    >>> metrics = kmat.evaluate("runs/train/phantom-kmat-s1-1", progress=False)
    >>> sorted(k for k in metrics if k in ("hi", "lo", "H"))
    ['H', 'hi', 'lo']
    """
    from kmat_cli import workflow

    return workflow.evaluate_run(_path(run), progress=progress, show=show)


def export(run: str | Path | Run, path: str | Path | None = None, *, fmt: str = "safetensors") -> Path:
    """``kmat export``: a finished run's class embeddings to ``path`` (default ``RUN/prompts.safetensors``);
    ``fmt="onnx"``: its low-end classifier as one ONNX model (default ``RUN/classifier.onnx``).

    >>> kmat.export("runs/train/phantom-kmat-s1-1", "phantom-prompts.safetensors").name
    'phantom-prompts.safetensors'
    """
    from kmat_cli import workflow

    return workflow.export_run(_path(run), path, fmt=fmt)


def load_prompts(path: str | Path | Run) -> Prompts:
    """Read a ``prompts.safetensors`` (or a finished run folder's): a :class:`kmat_cli.export.Prompts`
    (``embeddings["lo"]`` (K, D), ``class_names``, ``logit_scale``, ``backbone``, ``preprocess``,
    ``metadata``; ``logits(features)``).

    >>> prompts = kmat.load_prompts("runs/train/phantom-kmat-s1-1")
    >>> len(prompts.class_names), tuple(prompts.embeddings["lo"].shape)
    (8, (8, 128))
    """
    from kmat_cli.export import read_prompts

    return read_prompts(runs.prompts_file(_path(path)))


def sample_images(
    out: str | Path, *, task: str = "phantom", modality: str = "lo", per_class: int = 1
) -> list[Path]:
    """``kmat data sample``: copy ``per_class`` test images of each class of ``task`` (``lo``: the low end)
    into the new folder ``out`` as ``<nn>-<class>.<ext>``; returns the files. Nothing is overwritten.

    >>> [p.name for p in kmat.sample_images("scans")][:2]
    ['00-adenoma.png', '01-hamartoma.png']
    """
    from kmat_cli import registry
    from kmat_cli.api import MODALITIES
    from kmat_cli.fewshot import write_samples

    if modality not in MODALITIES:
        raise UsageError(f"--modality '{modality}' is not known; use one of: {', '.join(MODALITIES)}")
    instance = registry.get("tasks", task)()
    return write_samples(instance.split(modality, "test"), instance.class_names, out, per_class)


def predict(
    inputs: Images,
    *,
    run: str | Path | Run | None = None,
    embeddings: str | Path | None = None,
    onnx: str | Path | None = None,
    modality: str = "lo",
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = 0,
    threads: int | None = None,
    progress: bool = True,
) -> list[Prediction]:
    """``kmat predict`` as rows: one dict per image (per frame of a multi-frame DICOM) with ``path``,
    ``frame``, ``label``, ``probabilities`` ({class: p}) and ``error``, in input order; ``pandas.DataFrame(rows)``
    takes them as they are (``pandas.json_normalize(rows)`` spreads the probabilities into columns).

    ``inputs``: a path (image file or folder, walked recursively), a Pillow image, a tensor of images
    ((N, 3, H, W) or (N, 1, H, W) with values in [0, 1], as torchvision's ``to_tensor`` makes them) or a
    list of these; an image in memory gets ``<image N>`` as its path. A file that cannot be read gets its
    error on its row, the others go on. Prompts: ``run`` (a finished run) or ``embeddings`` (a
    ``prompts.safetensors``); neither: the run that finished last under ``./runs/train``, else
    ``./prompts.safetensors``; ``onnx``: a ``classifier.onnx`` run by onnxruntime.

    >>> rows = kmat.predict("scans/", run="runs/train/phantom-kmat-s1-1", progress=False)
    >>> len(rows), sorted(rows[0])
    (8, ['error', 'frame', 'label', 'path', 'probabilities'])
    >>> from PIL import Image
    >>> [r["path"] for r in kmat.predict([Image.open(rows[0]["path"])], progress=False)]
    ['<image 0>']
    """
    from kmat_cli.predict import RowList, gather, open_classifier
    from kmat_cli.predict import predict as classify

    files, _ = gather(inputs)
    classifier = open_classifier(
        run=_path(run) if run is not None else None,
        embeddings=embeddings,
        onnx=onnx,
        modality=modality,
        device=device,
        threads=threads,
    )
    sink = RowList(classifier.class_names)
    classify(
        classifier, files, sink, batch_size=batch_size, workers=workers, threads=threads, progress=progress
    )
    return sink.rows


def _path(run: str | Path | Run) -> Path:
    return run.path if isinstance(run, Run) else Path(run)
