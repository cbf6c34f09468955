"""Running the cells of a grid: in this process, in a local process pool, or as Ray tasks (the
``distributed`` extra); :func:`run_cells` is the entry point.

Pool and Ray follow the same two steps, with the same worker entry points as plain functions of JSON-like
arguments (:func:`kmat_cli.experiments.cells.cell_entry`, :func:`features_entry`):

1. image features: the frozen image features every cell needs are extracted first, one job per
   (backbone, task, split) — the high-end and low-end test splits (``test`` cells), the high-end
   validation split (``hi-val`` cells) and the union of the few-shot draws of all seeds — into the feature
   cache (:mod:`kmat_cli.features`, keyed by content, safe for concurrent writers), so no two cells
   compute the same features and the cells themselves never run the image tower;
2. cells: one job per cell, each writing only its own folder (:mod:`kmat_cli.experiments.cells`).

Ray: ``ray.init(address="local", num_cpus=jobs)`` (a private local Ray) or ``ray.init(address=...)``
for a running cluster (``ray://head:10001``); one CPU per job. On a cluster the grid root and the kmat
cache (``KMAT_CACHE``) must be on a filesystem every node sees, and kmat installed on every node.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kmat_cli import atomic
from kmat_cli.errors import UsageError
from kmat_cli.experiments.cells import (
    Cell,
    Outcome,
    cell_dir,
    cell_entry,
    failed,
    finished,
    run_cell,
    shard_of,
)
from kmat_cli.progress import say

RAY_HINT = "--executor ray needs Ray: pip install 'kmat[distributed]'"

Report = Callable[[Outcome], None]


def require_ray() -> Any:
    """The ``ray`` module, or a one-line UsageError naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(RAY_HINT) from exc
    return ray


# --------------------------------------------------------------------------------------- feature jobs
def feature_jobs(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """The feature-extraction jobs of ``cells``: one per (backbone, task, split), few-shot draws merged.

    A job: ``{"cell": <a cell dict naming the backbone and task>, "kind": "split", "modality", "split"}``
    or ``{"cell", "kind": "shots", "draws": [[shots, seed], ...], "views": V}``. Cells whose config does
    not build are skipped here (they fail on their own, with their own message).
    """
    from kmat_cli import config

    groups: dict[str, dict[str, Any]] = {}
    for cell in cells:
        try:
            cfg = config.build(flags={**cell.flags, "out": "."}, sets=cell.sets)
        except Exception:  # reported by the cell itself
            continue
        t = cfg["train"]
        gkey = json.dumps([cfg["backbone"], cfg["task"], t["device"], t["eval_batch_size"]], sort_keys=True)
        group = groups.setdefault(gkey, {"cell": cell.to_dict(), "splits": set(), "draws": {}})
        wanted = [("hi", "val")]  # every cell records its high-end validation accuracy
        if cell.score == "test":
            wanted += [("hi", "test"), ("lo", "test")]
        group["splits"].update(wanted)
        views = int(t["augment_views"])
        group["draws"].setdefault(views, set()).add((int(t["shots"]), int(t["seed"])))
    jobs: list[dict[str, Any]] = []
    for group in groups.values():
        for modality, split in sorted(group["splits"]):
            jobs.append({"cell": group["cell"], "kind": "split", "modality": modality, "split": split})
        for views, draws in sorted(group["draws"].items()):
            jobs.append({"cell": group["cell"], "kind": "shots", "draws": sorted(draws), "views": views})
    return jobs


def features_entry(job: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point: extract one job's image features into the cache; returns a summary."""
    from kmat_cli import assemble, config, fewshot, runtime
    from kmat_cli.features import image_features
    from kmat_cli.runconfig import RunConfig

    start = time.perf_counter()
    cell = Cell.from_dict(job["cell"])
    cfg = config.build(flags={**cell.flags, "out": "."}, sets=cell.sets)
    device = runtime.start(RunConfig.from_dict(cfg).train)
    task = assemble.build_task(cfg)
    backbone = assemble.build_parts(cfg, device, task=task).backbone
    batch = int(cfg["train"]["eval_batch_size"])
    rows = 0
    if job["kind"] == "split":
        paths = [s.path for s in task.split(job["modality"], job["split"])]
        rows = image_features(backbone, paths, batch_size=batch, progress=False).shape[0]
        what = f"{job['modality']}/{job['split']}"
    else:
        pool = task.split("hi", "train")
        views = int(job["views"])
        by_seed: dict[int, dict[str, None]] = {}
        for shots, seed in job["draws"]:  # views > 0 are keyed by seed; plain features are not
            drawn = fewshot.few_shot(pool, task.class_names, int(shots), int(seed))
            by_seed.setdefault(int(seed) if views else 0, {}).update({str(s.path): None for s in drawn})
        for seed, drawn_paths in by_seed.items():
            rows += image_features(
                backbone, list(drawn_paths), batch_size=batch, views=views, seed=seed, progress=False
            ).shape[0]
        what = f"hi/train few-shot draws {job['draws']}" + (f", {views} views" if views else "")
    return {"task": cfg["task"]["name"], "what": what, "rows": rows, "seconds": time.perf_counter() - start}


def _feature_line(summary: dict[str, Any]) -> str:
    return f"features {summary['task']} {summary['what']}: {summary['rows']} images in {summary['seconds']:.1f} s"


# --------------------------------------------------------------------------------------------- pool
def run_pool(cells: Sequence[Cell], root: Path, *, jobs: int, report: Report, progress: bool) -> None:
    """Run ``cells`` in ``jobs`` worker processes (spawned), features first; ``report`` each outcome.

    A worker that dies (a crash, not an exception) breaks the pool: the cells still pending then fail
    with "worker died" and are retried by the next invocation."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        extracting = {pool.submit(features_entry, job): job for job in feature_jobs(cells)}
        for future in as_completed(extracting):
            _feature_done(future.result, extracting[future], progress)
        if any(isinstance(f.exception(), BrokenProcessPool) for f in extracting):
            pool.shutdown(cancel_futures=True)  # a worker died extracting features: the cells get a new pool
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
        futures = {pool.submit(cell_entry, cell.to_dict(), str(root.resolve())): cell for cell in cells}
        for future in as_completed(futures):
            report(_outcome(future.result, futures[future], root))
    finally:
        pool.shutdown(cancel_futures=True)


def _feature_done(get: Callable[[], dict[str, Any]], job: dict[str, Any], progress: bool) -> None:
    try:
        summary = get()
    except Exception as exc:  # the cells will compute (or fail on) their features themselves
        say(f"feature extraction {job['kind']} failed ({type(exc).__name__}: {exc}); cells will retry it")
        return
    if progress:
        say(_feature_line(summary))


def _outcome(get: Callable[[], dict[str, Any]], cell: Cell, root: Path) -> Outcome:
    """The outcome a worker returned, or a failed one (with ``error.json``) when the worker died."""
    try:
        return Outcome.from_dict(get())
    except Exception as exc:  # a crashed worker fails its cell, the grid goes on
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        return failed(cell, cell_dir(root, cell), f"worker died: {type(exc).__name__}: {message}")


# ---------------------------------------------------------------------------------------------- Ray
def run_ray(
    cells: Sequence[Cell],
    root: Path,
    *,
    address: str | None,
    jobs: int,
    report: Report,
    progress: bool,
) -> None:
    """Run ``cells`` as Ray tasks (features first), on a private local Ray with ``jobs`` CPUs or on
    the cluster at ``address``; ``report`` each outcome as it arrives."""
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    pending: list[Any] = []
    try:
        remote_features = ray.remote(num_cpus=1, max_retries=0)(features_entry)
        remote_cell = ray.remote(num_cpus=1, max_retries=0)(cell_entry)
        extracting = {remote_features.remote(job): job for job in feature_jobs(cells)}
        pending = list(extracting)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            _feature_done(functools.partial(ray.get, ready[0]), extracting[ready[0]], progress)
        refs = {remote_cell.remote(cell.to_dict(), str(root.resolve())): cell for cell in cells}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            report(_outcome(functools.partial(ray.get, ready[0]), refs[ready[0]], root))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


# ------------------------------------------------------------------------------------------ the grid
def run_cells(
    cells: Sequence[Cell],
    root: Path,
    *,
    executor: str = "local",
    address: str | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    jobs: int = 1,
    progress: bool = True,
) -> list[Outcome]:
    """Run the cells of shard ``shard_index`` of ``num_shards`` under ``root``; one outcome per input cell.

    ``executor``: ``local`` (in this process when ``jobs`` is 1, else a pool of ``jobs`` worker
    processes) or ``ray`` (one Ray task per cell on a local Ray with ``jobs`` CPUs, or the cluster at
    ``address``, e.g. ``ray://head:10001``). With more than one worker, the image features every cell needs
    are extracted first, once per (backbone, task, split), by the same workers (:func:`feature_jobs`).
    ``progress``: one line per cell on stderr. Identical cells run once and share their outcome.
    """
    root = Path(root)
    atomic.own(root)  # cells and their runs: written by replacing files, never through a link
    _check(executor, jobs)
    mine = shard_of(cells, shard_index, num_shards)
    outcomes: dict[str, Outcome] = {}
    total = len(mine)

    def report(outcome: Outcome) -> None:
        outcomes[outcome.cell.key] = outcome
        if progress:
            say(_progress_line(outcome, len(outcomes), total))

    todo = []
    for cell in mine:
        done = finished(root, cell)
        if done is not None:
            report(done)
        else:
            todo.append(cell)
    if todo:
        if progress:
            say(f"{len(todo)} of {total} cells to run under {root} ({executor})")
        root.mkdir(parents=True, exist_ok=True)
        if executor == "ray":
            run_ray(todo, root, address=address, jobs=jobs, report=report, progress=progress)
        elif jobs > 1:
            run_pool(todo, root, jobs=jobs, report=report, progress=progress)
        else:
            for cell in todo:
                report(run_cell(cell, root))
    return [outcomes.get(cell.key) or Outcome(cell, "other-shard") for cell in cells]


def _check(executor: str, jobs: int) -> None:
    """A UsageError for an unknown executor, fewer than one job, or Ray asked for and not installed."""
    if executor not in ("local", "ray"):
        raise UsageError(f"--executor '{executor}' is unknown; use local or ray")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if executor == "ray":
        require_ray()


def _progress_line(outcome: Outcome, n: int, total: int) -> str:
    head = f"[{n}/{total}] cell {outcome.cell.key} {outcome.cell.describe()}:"
    if outcome.status == "failed":
        return f"{head} FAILED: {outcome.error}"
    seconds = ((outcome.result or {}).get("timing") or {}).get("cell_s")
    took = f" in {seconds:.1f} s" if seconds is not None and outcome.how != "read back" else ""
    return f"{head} done ({outcome.how}{took})"
