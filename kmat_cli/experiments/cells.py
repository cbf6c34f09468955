"""The cells of an experiment grid: one training run per folder, resumable and shardable.

A :class:`Cell` is one training run, given as dotted config flags plus ``--set`` overrides (the config is
built with :func:`kmat_cli.config.build`, so every check of ``kmat train`` applies) and how it is scored:

- ``score="test"``: train, then accuracy / macro-F1 on both test splits (what ``kmat train`` does);
- ``score="hi-val"``: train, then accuracy / macro-F1 on the **high-end validation split only**, with the
  parts training built (:func:`kmat_cli.workflow.run_training` with the ``hi-val`` score; a run finished without
  it is scored by :func:`kmat_cli.workflow.validate`); the low-end data are never opened.

Folder protocol, under ``root/cells/<key>/`` (``key`` = :attr:`Cell.key`):

1. ``cell.json``, the spec, written first;
2. the run folder, under ``train/`` (the config's ``out`` points at the cell folder); a cell starts a run
   only when it has none that saved its config, so it has one;
3. ``result.json``, written last and atomically: the finished marker.

On a later invocation a cell with ``result.json`` is read back, never recomputed; a cell whose run folder
exists but is unfinished is resumed from its last checkpoint (``workflow.run_training(cfg, run=...)``).
A cell that raises writes ``error.json`` (the error and traceback), is reported, and the grid goes on; it
is retried on the next invocation. Folders are the only shared state, so cells computed in this process,
by a process pool, by Ray workers (:mod:`kmat_cli.experiments.runner`) or by separate shards are
interchangeable.

Sharding: cell ``i`` of the grid's distinct cells sorted by key belongs to shard ``i % num_shards``; the
other shards' cells come back as ``"other-shard"`` outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kmat_cli import atomic, datafiles, workflow
from kmat_cli.api import MODALITIES
from kmat_cli.errors import KmatError, UsageError, short_repr
from kmat_cli.runs import Run

__all__ = [
    "CELLS_DIR",
    "SCORES",
    "Cell",
    "Outcome",
    "cell_dir",
    "failed",
    "finished",
    "read_cells",
    "run_cell",
    "shard_of",
]

CELLS_DIR = "cells"
CELL_FILE = "cell.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
RESULT_FORMAT = "kmat.cell-result/v1"
SCORES = workflow.SCORES
RUN_COMMAND = "train"  # run folders: <cell>/train/<run>/


@dataclass(frozen=True)
class Cell:
    """One training run of a grid: dotted config ``flags``, extra ``--set`` overrides, and ``score``.

    ``flags`` values that are None are ignored (as in :func:`kmat_cli.config.build`); ``out`` is always
    set by the grid (the cell's folder) and must not be given. Two ``sets`` items may not set the same key
    (their order would matter, and the key is order-free).

    ``identity``: optional fingerprint of the configuration the flags and sets resolve to (see
    :func:`kmat_cli.experiments.plan.config_identity`). When given, the key hashes it instead of the spelling, so
    two spellings of one configuration share a cell, and a changed default makes a new cell instead of
    reading back one trained under the old default.
    """

    flags: Mapping[str, Any]
    sets: tuple[str, ...] = ()
    score: str = "test"
    identity: str = ""

    def __post_init__(self) -> None:
        flags = {str(k): v for k, v in sorted(dict(self.flags).items()) if v is not None}
        if "out" in flags:
            raise UsageError("a grid cell's 'out' is its own folder; do not set it")
        sets = tuple(str(s) for s in self.sets)
        keys = [s.partition("=")[0].strip() for s in sets]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise UsageError(f"a grid cell sets {', '.join(dup)} more than once: {list(sets)}")
        if self.score not in SCORES:
            raise UsageError(f"cell score '{self.score}' is unknown; use {' or '.join(SCORES)}")
        object.__setattr__(self, "flags", MappingProxyType(flags))
        object.__setattr__(self, "sets", sets)

    @property
    def key(self) -> str:
        """A stable short hash of (flags, sorted sets, score), or of (identity, score) when the cell has an
        identity: the cell's folder name."""
        spec = (
            {"identity": self.identity, "score": self.score}
            if self.identity
            else {"flags": dict(self.flags), "sets": sorted(self.sets), "score": self.score}
        )
        blob = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and other.key == self.key

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``cell.json``)."""
        data = {"key": self.key, "flags": dict(self.flags), "sets": list(self.sets), "score": self.score}
        return {**data, "identity": self.identity} if self.identity else data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        return cls(
            flags=dict(data["flags"]),
            sets=tuple(data.get("sets", ())),
            score=data.get("score", "test"),
            identity=str(data.get("identity", "")),
        )

    def describe(self) -> str:
        """A short human label: ``phantom / kmat / seed 1 [method.anchor=false] (hi-val)``."""
        f = self.flags
        parts = [str(f.get("task.name", "?")), str(f.get("method.name", "?"))]
        if "train.seed" in f:
            parts.append(f"seed {f['train.seed']}")
        text = " / ".join(parts)
        if self.sets:
            text += f" [{' '.join(self.sets)}]"
        return text + (f" ({self.score})" if self.score != "test" else "")


@dataclass
class Outcome:
    """What became of a cell: ``status`` is ``done``, ``failed`` or ``other-shard`` (``missing`` only from
    :func:`kmat_cli.experiments.benchmark.merge`, for a cell no shard folder has).

    ``result`` (``done``): ``{"metrics": <metrics.json content, or the hi-val metrics>, "run": <absolute
    run folder>, "timing": {...}}``. ``error`` (``failed``): one line. ``how``: ``computed``, ``resumed`` or
    ``read back`` for a done cell (information only).
    """

    cell: Cell
    status: str
    result: dict | None = None
    error: str | None = None
    how: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell.to_dict(),
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "how": self.how,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(
            Cell.from_dict(data["cell"]),
            data["status"],
            data.get("result"),
            data.get("error"),
            data.get("how"),
        )


def cell_dir(root: str | Path, cell: Cell) -> Path:
    """``root/cells/<key>``."""
    return Path(root) / CELLS_DIR / cell.key


def shard_of(cells: Sequence[Cell], shard_index: int, num_shards: int) -> list[Cell]:
    """The distinct cells of shard ``shard_index``: cell i of the key-sorted list goes to shard i % n."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise UsageError(
            f"--shard-index {shard_index} --num-shards {num_shards}: need 0 <= index < shards, shards >= 1"
        )
    distinct = sorted({c.key: c for c in cells}.values(), key=lambda c: c.key)
    return [c for i, c in enumerate(distinct) if i % num_shards == shard_index]


# ------------------------------------------------------------------------------------------ one cell
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = datafiles.read_json(path)
    except datafiles.DataError:
        return None
    return data if isinstance(data, dict) else None


# field of result.json: the type its value has when present and not null ("metrics" must be present)
RESULT_FIELDS: dict[str, type] = {
    "metrics": dict,
    "run": str,
    "timing": dict,
    "validation": dict,
    "checks": dict,
}


def _malformed(data: Mapping[str, Any]) -> str | None:
    """Why ``data`` is not a result record :func:`run_cell` writes, or None when it is one."""
    if data.get("format") != RESULT_FORMAT:
        return f"not a {RESULT_FORMAT} record"
    for key, kind in RESULT_FIELDS.items():
        value = data.get(key)
        if (value is not None or key == "metrics") and not isinstance(value, kind):
            return f"'{key}' must be {'text' if kind is str else 'an object'}, got {short_repr(value, 60)}"
    bad = [m for m in MODALITIES if m in data["metrics"] and not isinstance(data["metrics"][m], dict)]
    return f"'metrics.{bad[0]}' must be an object" if bad else None


def _result(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)``: the absolute-path form of a cell folder's ``result.json``; ``(None, None)``:
    the cell has not finished; ``(None, problem)``: the file is damaged (one line naming it)."""
    path = folder / RESULT_FILE
    try:
        data = datafiles.read_json(path)
    except datafiles.MissingFile:
        return None, None
    except datafiles.DataError as exc:
        return None, str(exc)
    problem = _malformed(data) if isinstance(data, dict) else "not a JSON object"
    if problem is not None:
        return None, f"{path}: {problem}"
    return {**data, "run": str((folder / data["run"]).resolve()) if data.get("run") else None}, None


def _finished(folder: Path) -> dict[str, Any] | None:
    """The absolute-path form of a cell folder's ``result.json``, or None when it is not finished (a
    damaged file counts as not finished: the cell is computed again)."""
    return _result(folder)[0]


def _cell_run(folder: Path) -> Run | None:
    """The cell's run folder that got as far as saving its config, or None. A cell starts a run only when
    it has none, so there is one; should a copied folder hold more, the most recently active one."""
    found = [
        Run(path)
        for path in sorted((folder / RUN_COMMAND).glob("*"))
        if (path / Run.STATUS).is_file() and (path / Run.CONFIG).is_file()
    ]
    return max(found, key=lambda run: float(run.record.get("time", 0.0)), default=None)


def _scores(cell: Cell) -> tuple[str, ...]:
    """What a cell's run is scored on: its own score, and the high-end validation split always (the
    defaults rule reads it beside test metrics)."""
    return ("test", "hi-val") if cell.score == "test" else ("hi-val",)


def _train(cell: Cell, folder: Path) -> tuple[Run, str]:
    """Train (or resume, or just find) the cell's run; returns (run, how)."""
    from kmat_cli import config

    run = _cell_run(folder)
    if run is not None and run.finished:
        return run, "resumed"
    quiet: dict[str, Any] = {"scores": _scores(cell), "progress": False, "show": False}
    if run is not None:
        cfg = config.load_saved(run.file(Run.CONFIG))
        return workflow.run_training(cfg, run=run, **quiet), "resumed"
    cfg = config.build(flags={**cell.flags, "out": str(folder)}, sets=cell.sets)
    return workflow.run_training(cfg, **quiet), "computed"


def _metrics(cell: Cell, run: Run) -> dict[str, Any]:
    if cell.score == "hi-val":
        found = _read_json(run.file(Run.VAL_METRICS))
        return found if found is not None else workflow.validate(run.path, progress=False)
    found = _read_json(run.file(Run.METRICS))
    return found if found is not None else workflow.evaluate_run(run.path, progress=False, show=False)


def finished(root: str | Path, cell: Cell) -> Outcome | None:
    """The ``done`` outcome of a cell finished under ``root`` (read back), or None."""
    done = _finished(cell_dir(root, cell))
    return None if done is None else Outcome(cell, "done", _public(done), how="read back")


def run_cell(cell: Cell, root: str | Path) -> Outcome:
    """Run one cell in this process under ``root`` following the folder protocol (module docstring).

    Never raises for a failure of the cell itself (it becomes a ``failed`` outcome and ``error.json``);
    KeyboardInterrupt propagates.
    """
    done = finished(root, cell)
    if done is not None:
        return done
    folder = cell_dir(root, cell)
    started = time.perf_counter()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if _read_json(folder / CELL_FILE) != cell.to_dict():
            atomic.write_json(folder / CELL_FILE, cell.to_dict())
        run, how = _train(cell, folder)
        metrics = _metrics(cell, run)
        timing = {**(metrics.get("timing") or {}), "cell_s": time.perf_counter() - started}
        record = {
            "format": RESULT_FORMAT,
            "key": cell.key,
            "metrics": metrics,
            "run": os.path.relpath(run.path.resolve(), folder.resolve()),
            "timing": timing,
            **_label_free(run),
        }
        (folder / ERROR_FILE).unlink(missing_ok=True)
        atomic.write_json(folder / RESULT_FILE, record)  # last: the finished marker
    except Exception as exc:  # a failed cell is reported, the grid goes on
        return failed(cell, folder, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    return Outcome(cell, "done", _public(_finished(folder) or {}), how=how)


def _label_free(run: Run) -> dict[str, Any]:
    """What a cell records beside its metrics for the defaults rule (docs/defaults.md), where the run has
    it: ``validation`` (high-end validation metrics) and ``checks`` (the run's text-only ``checks.json``)."""
    out: dict[str, Any] = {}
    val = _read_json(run.file(Run.VAL_METRICS))
    if val is not None and isinstance(val.get("hi"), dict):
        out["validation"] = {k: val["hi"][k] for k in ("accuracy", "macro_f1", "n") if k in val["hi"]}
    checks = _read_json(run.file(Run.CHECKS))
    if checks is not None:
        out["checks"] = checks
    return out


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {"metrics": record.get("metrics"), "run": record.get("run"), "timing": record.get("timing", {})}
    out.update({k: record[k] for k in ("validation", "checks") if k in record})
    return out


def failed(cell: Cell, folder: Path, error: str, trace: str = "") -> Outcome:
    """A ``failed`` outcome of ``cell`` with ``error`` (one line), recorded in its ``error.json``."""
    error = " ".join(error.split()) or "unknown error"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_json(
            folder / ERROR_FILE, {"key": cell.key, "error": error, "traceback": trace, "time": time.time()}
        )
    except (OSError, KmatError):  # e.g. a linked cell folder (refused): the outcome still says why
        pass
    return Outcome(cell, "failed", None, error)


def cell_entry(cell: Mapping[str, Any], root: str) -> dict[str, Any]:
    """Worker entry point (process pool, Ray task): ``run_cell`` with plain arguments and result."""
    return run_cell(Cell.from_dict(cell), root).to_dict()


# ------------------------------------------------------------------------------------- reading back
def read_cells(roots: Sequence[Path], *, failed: bool = False) -> dict[str, Outcome]:
    """Finished cells found under ``roots`` (``root/cells/*/result.json``), by key.

    With ``failed=True`` cells that failed last time (``error.json``, no ``result.json``) are included as
    ``failed`` outcomes. The first root that has a cell wins.
    """
    found: dict[str, Outcome] = {}
    for root in roots:
        for folder in sorted((Path(root) / CELLS_DIR).glob("*")):
            spec = _read_json(folder / CELL_FILE)
            if spec is None or folder.name in found:
                continue
            try:
                cell = Cell.from_dict(spec)
            except (KeyError, TypeError, UsageError):
                continue
            if cell.key != folder.name:
                continue
            done, damaged = _result(folder)
            if done is not None:
                found[cell.key] = Outcome(cell, "done", _public(done), how="read back")
            elif failed and damaged is not None:
                found[cell.key] = Outcome(
                    cell, "failed", None, f"{damaged}; run the benchmark again to recompute the cell"
                )
            elif failed and (err := _read_json(folder / ERROR_FILE)) is not None:
                found[cell.key] = Outcome(cell, "failed", None, str(err.get("error", "unknown error")))
    return found
