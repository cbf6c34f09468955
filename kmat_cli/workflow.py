"""What ``kmat train`` does, as library calls; what ``kmat evaluate`` and ``kmat export`` do with the run it
leaves is in :mod:`kmat_cli.trained` (its functions are importable from here too).

:func:`run_training` composes the steps of a training: :func:`prepare`, create (or reopen) the run folder,
:func:`learn`, then the scores asked for (:data:`SCORES`), and only then mark the run finished.
:func:`prepare` is one pass down the layers, so that bad input fails before any output exists: the config
validated once into its typed view (:class:`kmat_cli.runconfig.RunConfig`), the runtime set up once
(threads, device: :func:`kmat_cli.runtime.start`), then the parts assembled (task, few-shot high-end set,
backbone, descriptions, transport, the method at the run's seed) and the training images' features read.
:func:`learn` trains with the shared trainer (a checkpoint every epoch) and writes ``prompts.safetensors``;
:func:`score_test` writes ``metrics.json`` (both test splits), :func:`score_validation` ``metrics-val.json``
(the high-end validation split). Low-end images are read only by the test evaluation, after training.
Methods with description prototypes per modality also get a label-free, text-only check (``checks.json``;
with ``verbose`` one stderr line at the start, :func:`checks_line`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kmat_cli import atomic, datafiles, runs, scoring
from kmat_cli.errors import UsageError
from kmat_cli.progress import say
from kmat_cli.runconfig import RunConfig
from kmat_cli.runs import Run
from kmat_cli.signals import Terminated
from kmat_cli.trained import evaluate_run as evaluate_run  # re-exported: the library's verbs in one place
from kmat_cli.trained import export_run as export_run
from kmat_cli.trained import load_trained as load_trained
from kmat_cli.trained import validate as validate

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
    atomic.write_json(run.file(Run.CHECKS), data)


SCORES = ("test", "hi-val")  # what a trained run is scored on: both test splits, high-end validation only


@dataclass
class Prepared:
    """A configured training with every input read, before any run folder exists (:func:`prepare`)."""

    cfg: dict[str, Any]  # the resolved config, as saved in the run folder
    settings: RunConfig  # its typed view
    parts: Any  # assemble.Parts
    method: Any  # the method, initialised at the run's seed
    device: Any
    feats: Any = None  # training image features (trainable methods)
    labels: Any = None
    init_checks: dict[str, Any] | None = None
    started: float = field(default_factory=time.perf_counter)


def prepare(cfg: Mapping[str, Any], *, progress: bool = True) -> Prepared:
    """Validate the resolved config ``cfg`` (its typed view), set up the runtime (threads, device), build
    the task, sample its few-shot high-end set, build the other parts and the method, and read the training
    images' features, so that bad input fails before any output exists."""
    import torch

    from kmat_cli import assemble, fewshot, runtime

    started = time.perf_counter()
    cfg = dict(cfg)
    settings = RunConfig.from_dict(cfg)
    train = settings.train
    device = runtime.start(train)
    task = assemble.build_task(cfg)
    shots = fewshot.few_shot(task.split("hi", "train"), task.class_names, train.shots, train.seed)
    parts = assemble.build_parts(cfg, device, task=task)
    method = assemble.build_method(parts, seed=train.seed)
    prepared = Prepared(cfg, settings, parts, method, device, started=started)
    if method.trainable and train.epochs < 1:
        raise UsageError(
            f"train.epochs is {train.epochs}: method '{settings.method['name']}' trains, give at least 1 epoch"
        )
    if method.trainable:  # every training image is read before the run folder exists: bad input leaves none
        from kmat_cli.features import image_features

        prepared.init_checks = method.text_checks()
        prepared.feats = image_features(
            parts.backbone,
            [s.path for s in shots],
            batch_size=train.eval_batch_size,
            views=train.augment_views,
            seed=train.seed,
            progress=progress,
        )
        prepared.labels = torch.tensor([s.label for s in shots], dtype=torch.long)
    return prepared


def learn(prepared: Prepared, run: runs.Run, *, resume: bool, progress: bool = True) -> list[dict[str, Any]]:
    """Train: fit the method (resuming from the run's checkpoint), write the checks after training and
    export ``prompts.safetensors``; returns the per-epoch history of this process."""
    from kmat_cli import export, train

    history: list[dict[str, Any]] = []
    method, tcfg = prepared.method, prepared.cfg["train"]
    if method.trainable:
        trainer = train.Trainer(
            method,
            prepared.feats,
            prepared.labels,
            tcfg,
            device=prepared.device,
            folder=run.path,
            progress=progress,
        )
        if resume:
            trainer.resume()
        history = trainer.fit()
    if prepared.init_checks is not None:
        _write_checks(run, prepared.init_checks, method.text_checks())
    export.write_prompts(
        run.file(Run.PROMPTS),
        method,
        prepared.parts.backbone,
        task=prepared.parts.task,
        backbone_config=prepared.cfg["backbone"],
    )
    return history


def score_test(prepared: Prepared, run: runs.Run, timing: Mapping[str, float], *, progress: bool) -> dict:
    """Evaluate test: accuracy / macro-F1 on both test splits, written to ``metrics.json`` with ``timing``
    and ``total_s``, the seconds from :func:`prepare` to the end of this evaluation."""
    cfg, parts = prepared.cfg, prepared.parts
    metrics = scoring.metrics_on_test(parts, prepared.method, cfg, progress=progress)
    metrics["timing"] = {**timing, "total_s": time.perf_counter() - prepared.started}
    atomic.write_json(run.file(Run.METRICS), metrics)
    return metrics


def score_validation(prepared: Prepared, run: runs.Run, *, progress: bool) -> dict[str, Any]:
    """Validate: the high-end validation split only (``metrics-val.json``, see :func:`validate`)."""
    metrics = scoring.metrics_on_validation(prepared.parts, prepared.method, prepared.cfg, progress=progress)
    atomic.write_json(run.file(Run.VAL_METRICS), metrics)
    return metrics


def _timing(history: list[dict[str, Any]], until_export: float) -> dict[str, float]:
    """Training time from the per-epoch ``history``, and the seconds from the start to the export."""
    steps = sum(r["steps"] for r in history)
    train_s = sum(r["time"] for r in history)
    return {
        "train_s": train_s,
        "step_s": train_s / steps if steps else 0.0,
        "steps": steps,
        "until_export_s": until_export,
    }


def run_training(
    cfg: Mapping[str, Any],
    run: runs.Run | None = None,
    *,
    scores: Sequence[str] = ("test",),
    progress: bool = True,
    show: bool = True,
    verbose: bool = False,
) -> runs.Run:
    """Train (or, given ``run``, resume) the configured method and score it; returns the finished run.

    The steps: :func:`prepare` (build, read inputs), create or reopen the run folder, :func:`learn`
    (train, checks, export), then each of ``scores`` (:data:`SCORES`): ``test`` (:func:`score_test`) and
    ``hi-val`` (:func:`score_validation`), and only then the run is marked finished. ``progress``:
    progress bars on stderr (one line per epoch where stderr is not a terminal); ``show``: the metrics
    table on stderr (stdout is left to the caller: ``kmat train`` prints the run folder there); ``verbose``:
    also the label-free check at initialisation on stderr (it is always in ``checks.json``).

    The run is held while it trains (:meth:`runs.Run.in_use`): a second process resuming it is refused,
    and deleting its folder meanwhile fails the run (exit 1) instead of recreating the folder."""
    unknown = [s for s in scores if s not in SCORES]
    if unknown:
        raise UsageError(f"unknown score {unknown[0]!r}; use {' or '.join(SCORES)}")
    if run is not None and run.finished:
        _already_finished(run)
        return run
    with contextlib.ExitStack() as hold:
        if run is not None:
            hold.enter_context(run.in_use())  # a second resume of the same run stops here
        prepared = prepare(cfg, progress=progress)
        resume = run is not None
        if run is None:
            run = runs.start(prepared.cfg, "train", task=_task_name(prepared))
            hold.enter_context(run.in_use())
        else:
            atomic.remove_temporaries(run.path)  # what the killed process was writing
            run.mark("running")
        _started(prepared, run, resume=resume, talk=show or progress, verbose=verbose)
        with _marking(run, talk=show or progress):
            history = learn(prepared, run, resume=resume, progress=progress)
            timing = _timing(history, time.perf_counter() - prepared.started)
            if "hi-val" in scores:
                score_validation(prepared, run, progress=progress)
            if "test" in scores:
                metrics = score_test(prepared, run, timing, progress=progress)
                if show:
                    _show(prepared.cfg, metrics, _task_name(prepared))
    return run


def _task_name(prepared: Prepared) -> str:
    """The name runs and tables show: a task file's ``name:`` for a task file, else the config's task name."""
    given = str(prepared.cfg["task"]["name"])
    name = getattr(prepared.parts.task, "name", None)
    from_file = given.lower().endswith((".yaml", ".yml"))
    return name if from_file and isinstance(name, str) and name else given


def _show(cfg: Mapping[str, Any], metrics: Mapping[str, Any], task: str) -> None:
    from kmat_cli.evaluate import render

    title = f"{task} / {cfg['method']['name']} / seed {cfg['train']['seed']}"
    render(metrics, title=title, stderr=True)


def _already_finished(run: runs.Run) -> None:
    from kmat_cli.evaluate import render

    say(f"{run.path} is already finished; nothing to resume")
    if run.file(Run.METRICS).is_file():
        render(datafiles.read_json(run.file(Run.METRICS)), title=str(run.path), stderr=True)


def _started(prepared: Prepared, run: runs.Run, *, resume: bool, talk: bool, verbose: bool = False) -> None:
    """Say where the run is and write the label-free checks at initialisation (said only when ``verbose``)."""
    if talk:
        say(f"{'resuming' if resume else 'run folder'} {run.path}")
    if prepared.init_checks is not None:
        _write_checks(run, prepared.init_checks)
        if verbose:
            say(checks_line(prepared.init_checks))


@contextlib.contextmanager
def _marking(run: runs.Run, *, talk: bool = False) -> Iterator[None]:
    """Mark the run finished when the body ends, interrupted or failed when it raises. An interrupt
    (Ctrl-C, or SIGTERM as :class:`~kmat_cli.signals.Terminated`) also says, with ``talk``, where the run
    stopped and how to continue it (:func:`kmat_cli.runs.resume_message`)."""
    try:
        yield
    except (KeyboardInterrupt, Terminated):
        with contextlib.suppress(Exception):  # best effort, as below
            run.mark("interrupted")
        if talk:
            say(runs.resume_message(run))
        raise
    except BaseException as exc:
        with contextlib.suppress(Exception):  # best effort (e.g. a full disk): the cause is what to report
            run.mark("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    run.mark("finished")
