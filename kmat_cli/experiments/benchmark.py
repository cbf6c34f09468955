"""``kmat benchmark``: the paper's Table 2 (methods) and Table 3 (K-MaT ablation) protocol as one grid.

A :class:`~kmat_cli.experiments.request.Request` (tasks, methods, seeds, ablation, common flags and
``--set`` overrides) becomes a :class:`~kmat_cli.experiments.plan.Plan` (one cell per task, row and seed).
The grid runs with :func:`kmat_cli.experiments.runner.run_cells` (resumable, shardable, local or Ray) into
one benchmark folder, which holds one request (``benchmark.json``); the report is written from the cells'
results (:mod:`~kmat_cli.experiments.benchmark_report`). The names below are what ``kmat benchmark`` and
its callers use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kmat_cli import atomic
from kmat_cli.errors import UsageError
from kmat_cli.experiments.benchmark_report import REPORT_CSV, REPORT_MD, render, write_report
from kmat_cli.experiments.cells import Outcome, read_cells
from kmat_cli.experiments.flags import common_flags, flatten, task_slug
from kmat_cli.experiments.plan import ABLATION, ALPHAS, DEVIATIONS, Plan, config_identity, rule_candidates
from kmat_cli.experiments.request import REQUEST_FILE, REQUEST_FORMAT, Request, load_request, same_request
from kmat_cli.experiments.runner import run_cells
from kmat_cli.experiments.variants import METHODS, Variant

__all__ = [
    "ABLATION",
    "ALPHAS",
    "DEVIATIONS",
    "METHODS",
    "REPORT_CSV",
    "REPORT_MD",
    "REQUEST_FILE",
    "REQUEST_FORMAT",
    "Plan",
    "Request",
    "Variant",
    "check_folder",
    "choose_folder",
    "common_flags",
    "config_identity",
    "default_out",
    "flatten",
    "load_request",
    "merge",
    "render",
    "rule_candidates",
    "run",
    "write_report",
]


def default_out(tasks: Sequence[str]) -> Path:
    """``runs/benchmark/<task>-<task>...``, each task by its name (:func:`~.flags.task_slug`)."""
    return Path("runs") / "benchmark" / "-".join(task_slug(t) for t in tasks)


def check_folder(request: Request, out: Path) -> None:
    """A benchmark folder holds one request: a rerun of it resumes there; another request is a one-line
    UsageError (its report would replace the folder's report beside plots and cells of the first)."""
    if (out / REQUEST_FILE).is_file() and not same_request(request, load_request(out)):
        raise UsageError(
            f"{out}: holds another benchmark ({REQUEST_FILE} differs: other tasks, methods, seeds or "
            "settings); pass a new --out (a rerun of the same grid resumes there)"
        )


def choose_folder(request: Request, tasks: Sequence[str]) -> Path:
    """The default folder of ``request``: ``runs/benchmark/<tasks>``, or ``<tasks>-2``, ``-3``, ... when that
    holds another request: the first one that holds this request (a rerun resumes it), else the first new
    one. Never a folder holding another benchmark."""
    base = default_out(tasks)
    n = 1
    while True:
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if not (folder / REQUEST_FILE).is_file():
            return folder
        try:
            check_folder(request, folder)
            return folder
        except UsageError:
            n += 1


def run(request: Request, out: Path, **options: Any) -> tuple[Plan, list[Outcome]]:
    """Validate, save ``benchmark.json`` and run the request's grid (this shard of it) under ``out``;
    ``options`` are those of :func:`~kmat_cli.experiments.runner.run_cells` (executor, address,
    shard_index, num_shards, jobs, progress). ``out`` holding another request is refused
    (:func:`check_folder`)."""
    plan = Plan(request)
    plan.validate()
    check_folder(request, out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / REQUEST_FILE, request.to_dict())
    return plan, run_cells(plan.cells(), out, **options)


def merge(shards: Sequence[Path], out: Path) -> tuple[Plan, list[Outcome]]:
    """The outcomes of one request whose shards ran into separate folders (all with the same request)."""
    if not shards:
        raise UsageError("kmat benchmark merge needs at least one shard folder")
    requests = [load_request(s) for s in shards]
    for shard, req in zip(shards[1:], requests[1:], strict=True):
        if req != requests[0]:
            raise UsageError(f"{shard}: ran a different benchmark than {shards[0]} ({REQUEST_FILE} differs)")
    plan = Plan(requests[0])
    found = read_cells([Path(s) for s in shards], failed=True)
    outcomes = [found.get(c.key) or Outcome(c, "missing") for c in plan.cells()]
    atomic.own(out)
    check_folder(requests[0], out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / REQUEST_FILE, requests[0].to_dict())
    return plan, outcomes
