"""Run folders: ``<out>/<command>/<task>-<method>-s<seed>-<n>/``, created atomically, never overwritten.

A run folder is claimed with ``os.mkdir`` (atomic: two processes starting at once get distinct folders).
It is *finished* only once ``run.json`` says ``"status": "finished"``; that file is written atomically
and last, so a killed run never looks finished.

While a run trains, its process holds an exclusive lock on the folder's ``.lock`` file
(:mod:`kmat_cli.locks`: released by the kernel when the process ends, however it ends), so a second
``kmat train --resume`` of the same run is refused while the first is alive; and the folder is guarded (:func:`kmat_cli.atomic.guard_folder`), so
deleting it mid-run fails the run instead of letting its writes recreate the folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from kmat_cli import atomic, datafiles, locks
from kmat_cli.errors import UsageError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """``text`` as a file-name part: a task file's path becomes its stem; runs of characters other than
    letters, digits and ``._-`` become ``_``."""
    return _SAFE.sub("_", Path(text).stem if "/" in text or text.endswith((".yaml", ".yml")) else text)


@dataclass(frozen=True, init=False)
class Run:
    """A run folder made by ``kmat train`` or :func:`kmat.train`: ``kmat.Run(path)`` opens any of them (``path``
    as text or a Path; a one-line UsageError when it holds no ``run.json``). Every file name in it is one of
    these constants (``run.file(Run.CONFIG)``).

    >>> run = kmat.Run("runs/train/phantom-kmat-s1-1")
    >>> run.status, run.config["train"]["epochs"], len(run.history)
    ('finished', 2, 2)
    """

    STATUS: ClassVar[str] = "run.json"  # {"status": created | running | finished | failed, "time": ...}
    LOCK: ClassVar[str] = ".lock"  # flock'ed while a process trains or resumes the run
    CONFIG: ClassVar[str] = "config.yaml"  # the resolved config
    ENV: ClassVar[str] = "env.json"  # versions and machine
    HISTORY: ClassVar[str] = "metrics.jsonl"  # one record per epoch (training)
    METRICS: ClassVar[str] = "metrics.json"  # test metrics per modality (evaluation)
    VAL_METRICS: ClassVar[str] = "metrics-val.json"  # high-end validation metrics
    CHECKS: ClassVar[str] = "checks.json"  # label-free checks of prompts and prototypes
    PROMPTS: ClassVar[str] = "prompts.safetensors"  # exported class embeddings
    ONNX: ClassVar[str] = (
        "classifier.onnx"  # the low-end classifier as one ONNX model (kmat export --format onnx)
    )
    CHECKPOINT: ClassVar[str] = "checkpoint.json"  # the last checkpoint's state

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        if not (path / self.STATUS).is_file():
            raise UsageError(f"{path}: not a kmat run folder (no {self.STATUS}); pass a folder made by kmat")
        object.__setattr__(self, "path", path)
        atomic.own(path)  # its files are written by replacing them, never through a link

    def __repr__(self) -> str:
        return f"kmat.Run({str(self.path)!r}, status={self.status!r})"

    @property
    def record(self) -> dict[str, Any]:
        """The content of ``run.json`` (``status``, ``time``, ...); ``{"status": "unknown"}`` when unreadable."""
        try:
            data = datafiles.read_json(self.path / self.STATUS)
        except datafiles.DataError:
            return {"status": "unknown"}
        return data if isinstance(data, dict) else {"status": "unknown"}

    @property
    def status(self) -> str:
        """``created``, ``running``, ``finished``, ``failed``, ``interrupted`` (or ``unknown``: ``run.json``
        unreadable)."""
        return str(self.record.get("status", "unknown"))

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def config(self) -> dict[str, Any]:
        """The run's resolved config (``config.yaml``)."""
        from kmat_cli.config import load_yaml

        return load_yaml(self.path / self.CONFIG)

    @property
    def metrics(self) -> dict[str, Any] | None:
        """The last evaluation (``metrics.json``: ``["lo"]["accuracy"]``, ``["hi"]["macro_f1"]``, ``["H"]``,
        ...), or None when the run was not evaluated."""
        file = self.path / self.METRICS
        return datafiles.read_json(file) if file.is_file() else None

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per trained epoch (``metrics.jsonl``: ``epoch``, ``loss``, ``lr``, ...); [] for none."""
        file = self.path / self.HISTORY
        if not file.is_file():
            return []
        lines = file.read_text(encoding="utf-8").splitlines()
        return [datafiles.parse_json(line, str(file)) for line in lines if line.strip()]

    def mark(self, status: str, **extra: Any) -> None:
        """Atomically record the run's status (``running``, ``finished``, ``failed``)."""
        _write_status(self.path, status, **extra)

    def file(self, name: str) -> Path:
        return self.path / name

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the run for this process: an exclusive lock on ``.lock`` (a UsageError, exit 2, when another
        process holds it) and the folder guard (a write after the folder was deleted or replaced is a
        RuntimeFailure saying it vanished, and never recreates it)."""
        with contextlib.ExitStack() as stack:
            try:
                fd = atomic.open_owned(self.path / self.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UsageError(f"{self.path}: cannot lock the run folder ({exc.strerror})") from exc
            stack.callback(os.close, fd)
            locks.lock_exclusive(
                fd, f"{self.path}: this run is in use by another kmat process; wait until it ends"
            )
            stack.enter_context(
                atomic.guard_folder(self.path, f"run folder {self.path} vanished during training")
            )
            yield


def _write_status(folder: Path, status: str, **extra: Any) -> None:
    atomic.write_json(folder / Run.STATUS, {"status": status, "time": time.time(), **extra})


def create(out_root: str | Path, command: str, task: str, method: str, seed: int | None = None) -> Run:
    """Claim the next free ``<out_root>/<command>/<task>-<method>-s<seed>-<n>`` (n = 1, 2, ...; without
    ``seed``: ``<task>-<method>-<n>``) and return it. The last ``-<n>`` is always the counter."""
    parent = Path(out_root) / command
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{parent}: cannot create output folder ({exc.strerror}); pass another --out"
        ) from exc
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{parent}: output folder is not writable; pass another --out")
    prefix = f"{slug(task)}-{slug(method)}-" + (f"s{seed}-" if seed is not None else "")
    taken = [p.name[len(prefix) :] for p in parent.glob(f"{prefix}*")]
    n = max([int(t) for t in taken if t.isdigit()], default=0) + 1
    while True:
        path = parent / f"{prefix}{n}"
        try:
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            raise UsageError(
                f"{path}: cannot create run folder ({exc.strerror}); pass another --out"
            ) from exc
        atomic.own(path)
        try:
            _write_status(path, "created")
        except BaseException:  # e.g. a full disk: leave no empty folder behind
            path.rmdir()
            raise
        return Run(path)


def open_run(path: str | Path) -> Run:
    """An existing run folder (``Run(path)``); a one-line UsageError when it is not one."""
    return Run(Path(path))


def is_run(path: str | Path) -> bool:
    """Whether ``path`` is a run folder (it holds ``run.json``)."""
    return (Path(path) / Run.STATUS).is_file()


def resume_hint(path: str | Path) -> str:
    """The one way kmat steers a user to an unfinished run's end: ``continue it with `kmat train --resume
    PATH```. Every message about an interrupted, failed or unfinished run ends with it."""
    return f"continue it with `kmat train --resume {path}`"


def stopped_at(run: Run) -> str:
    """Where an unfinished run stands, e.g. ``interrupted after epoch 3 of 40`` (from ``run.json``,
    ``checkpoint.json`` and ``config.yaml``; parts that cannot be read are left out)."""
    state = run.status
    try:
        done = int(datafiles.read_json(run.file(Run.CHECKPOINT))["epoch"])
    except (OSError, datafiles.DataError, ValueError, KeyError, TypeError):
        return f"{state} before its first epoch ended"
    try:
        from kmat_cli.config import load_yaml

        total = f" of {int(load_yaml(run.file(Run.CONFIG))['train']['epochs'])}"
    except Exception:  # an unreadable config only shortens the message
        total = ""
    return f"{state} after epoch {done}{total}"


def resume_message(run: Run) -> str:
    """The line said when a training stops before its end (Ctrl-C, SIGTERM): where the run stopped and how to
    continue it, e.g. ``runs/train/x: interrupted after epoch 3 of 40; continue it with `kmat train --resume
    runs/train/x```."""
    return f"{run.path}: {stopped_at(run)}; {resume_hint(run.path)}"


def require_finished(path: str | Path, needs: str) -> Run:
    """The run folder at ``path`` when it finished; otherwise a one-line UsageError saying where it stopped,
    that ``needs`` (e.g. ``export``) wants a finished run, and how to finish it (:func:`resume_hint`)."""
    run = open_run(path)
    if not run.finished:
        raise UsageError(
            f"{run.path}: unfinished run ({stopped_at(run)}); {needs} needs a finished run: "
            f"{resume_hint(run.path)}"
        )
    return run


def latest_finished(root: str | Path) -> Run | None:
    """The finished run under ``root`` (e.g. ``runs/train``) that finished last, by the time in its
    ``run.json``; None when there is none."""
    best: tuple[float, Run] | None = None
    try:
        entries = sorted(Path(root).iterdir())
    except OSError:
        return None
    for folder in filter(is_run, entries):
        run = Run(folder)
        record = run.record
        when = record.get("time")
        if record.get("status") != "finished" or not isinstance(when, (int, float)):
            continue
        if best is None or when > best[0]:
            best = (float(when), run)
    return best[1] if best else None


def prompts_file(path: str | Path) -> Path:
    """The prompts file that ``path`` names: ``path`` itself, or for a finished run folder its
    ``prompts.safetensors``; a one-line UsageError for an unfinished run or another folder."""
    path = Path(path)
    if not path.is_dir():
        return path
    if is_run(path):
        return require_finished(path, "a prompts file").file(Run.PROMPTS)
    raise UsageError(f"{path}: a folder, not a prompts file; give a prompts.safetensors or a run folder")


def start(cfg: dict[str, Any], command: str, task: str | None = None) -> Run:
    """Create the run folder of a resolved config and save ``config.yaml`` and ``env.json`` in it. ``task``:
    the task's own name for the folder (a task file's ``name:``; default: the config's task name)."""
    from kmat_cli import config as config_mod
    from kmat_cli import envinfo

    task = task or cfg["task"]["name"]
    run = create(cfg["out"], command, task, cfg["method"]["name"], seed=cfg["train"]["seed"])
    atomic.write_text(run.file(Run.CONFIG), config_mod.dump(cfg))
    atomic.write_json(run.file(Run.ENV), envinfo.collect())
    run.mark("running")
    return run
