"""``kmat tune``: choose config values (K-MaT's lambda1, lambda2 or any key) on the high-end validation split.

Protocol (METHOD.md): every grid point is trained on the few-shot high-end train set, once per seed, and
scored on the **high-end validation split only**; low-end images are never read, so the choice cannot leak
the target modality. Each (point, seed) is a :class:`kmat_cli.experiments.cells.Cell` with ``score="hi-val"``, so tuning
shares the benchmark's runner: local or Ray executors, and finished cells are read back, not recomputed
(an interrupted tune resumes).

Selection: ``score(point) = mean over seeds of metric(point, seed)``, metric the high-end validation
``accuracy`` or ``macro_f1``; the best point is ``argmax score``, ties going to the earlier grid point
(grid order: the product of the ``--grid`` lists, first key slowest), so the choice is deterministic.

Default grid (:data:`DEFAULT_GRID`, 25 points): lambda1 and lambda2 each over 0.1, 0.5, 1, 2, 5. The
paper's default is 1 for both; these values span 50x around it on a rough log scale, enough to tell
whether a term should be weaker or stronger than the cross-entropy, and 25 trials of ~20 s keep a phantom
tune under 10 minutes on one thread. 0 is left out on purpose: switching a term off is an ablation
(``kmat benchmark``), not a tuning choice.

Outputs in ``out``: ``tune.csv`` (one row per point: values, metric per seed, mean, status) and
``best.yaml``, a config file for ``kmat train --config``: the task/method/transport names, the keys fixed
by ``--config`` and ``--set`` and the best point's values, as nested YAML. Both written atomically.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmat_cli import atomic, datafiles, runs
from kmat_cli import config as config_mod
from kmat_cli.errors import RuntimeFailure, UsageError, short_repr
from kmat_cli.experiments.cells import Cell
from kmat_cli.experiments.flags import common_flags, flatten, task_slug
from kmat_cli.experiments.runner import run_cells
from kmat_cli.progress import say

DEFAULT_GRID: dict[str, list[float]] = {
    "method.lambda1": [0.1, 0.5, 1.0, 2.0, 5.0],
    "method.lambda2": [0.1, 0.5, 1.0, 2.0, 5.0],
}
METRICS = ("accuracy", "macro_f1")
CSV_FILE = "tune.csv"
BEST_FILE = "best.yaml"
# keys a grid may not vary: seeds have their own option, the output folder belongs to the grid runner
FORBIDDEN = {"train.seed": "use --seeds", "out": "use --out"}


# ---------------------------------------------------------------------------------------------- the grid
def _value(raw: str, item: str) -> Any:
    """A YAML scalar; ``1e-3`` (a string to PyYAML's YAML 1.1) is read as the float it looks like."""
    raw = raw.strip()
    if not raw:
        raise UsageError(f"--grid '{item}': empty value; e.g. --grid method.lambda1=0.1,1,10")
    value = datafiles.parse_yaml(raw, f"--grid {short_repr(item)}")
    if isinstance(value, str) and config_mod.NUMBER.fullmatch(value):
        return float(value)
    return value


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["method.lambda1=0.1,1,10", "method.csc=[true, false]"]`` -> ``{key: [values]}``.

    Values are comma-separated YAML scalars, or one YAML flow list (``[...]``) for values that contain
    commas. Keys keep their order (it is the grid order); a repeated key is a UsageError.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--grid '{item}': expected key=v1,v2,..., e.g. --grid method.lambda1=0.1,1,10")
        if key in FORBIDDEN:
            raise UsageError(f"--grid '{item}': {key} cannot be tuned; {FORBIDDEN[key]}")
        if key in grid:
            raise UsageError(f"--grid '{item}': {key} is given twice; list all its values once")
        if raw.strip().startswith("["):
            values = _value(raw, item)
            if not isinstance(values, list) or not values:
                raise UsageError(f"--grid '{item}': expected a non-empty YAML list like [1, 2]")
        else:
            values = [_value(v, item) for v in raw.split(",")]
        grid[key] = values
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, first key slowest: ``[{key: value, ...}, ...]``."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def set_items(point: Mapping[str, Any]) -> tuple[str, ...]:
    """A grid point as ``--set`` overrides: ``("method.lambda1=0.5", ...)`` (values as JSON, valid YAML)."""
    return tuple(f"{k}={json.dumps(v)}" for k, v in point.items())


def validate(
    flags: Mapping[str, Any],
    sets: Sequence[str],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    *,
    default: bool = False,
) -> dict[str, Any]:
    """Resolve the config of every grid value (through :func:`kmat_cli.config.build`, so an unknown key or
    a wrong type is a UsageError naming it) before anything runs; returns the config without the grid.
    ``default``: the grid is :data:`DEFAULT_GRID`, and a method without its keys gets a message saying so."""
    if not seeds:
        raise UsageError("--seeds needs at least one seed, e.g. --seeds 1,2,3")
    seeded = {**flags, "train.seed": int(seeds[0])}
    first = config_mod.build(flags=seeded, sets=sets)
    if default:
        missing = [k for k in grid if k.split(".", 1)[1] not in first.get(k.split(".", 1)[0], {})]
        if missing:
            raise UsageError(
                f"the default grid tunes {', '.join(missing)}, which method '{first['method']['name']}' "
                "does not have; pass --grid KEY=V1,V2,..."
            )
    for key, values in grid.items():
        for value in values:
            try:
                config_mod.build(flags=seeded, sets=[*sets, *set_items({key: value})])
            except UsageError as exc:
                raise UsageError(f"--grid {key}: {exc}") from exc
    return first


def normalise(grid: Mapping[str, Sequence[Any]], resolved: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Integers given for a float option become floats (``lambda1=3`` and ``3.0`` are one grid point, and
    one cell); other values are kept. ``resolved``: a resolved config, whose values give the types."""
    out = {}
    for key, values in grid.items():
        try:
            like = config_mod.get_dotted(resolved, key)
        except (KeyError, TypeError):
            like = None
        floaty = isinstance(like, float)
        out[key] = [
            float(v) if floaty and isinstance(v, int) and not isinstance(v, bool) else v for v in values
        ]
    return out


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Trial:
    """One grid point: its values, the metric per seed (None where the cell did not finish), errors."""

    index: int
    values: dict[str, Any]
    scores: dict[int, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return bool(self.scores) and all(v is not None for v in self.scores.values())

    @property
    def mean(self) -> float | None:
        """Mean over seeds; None unless every seed finished."""
        scores = [s for s in self.scores.values() if s is not None]
        return math.fsum(scores) / len(scores) if self.complete else None


def best_trial(trials: Sequence[Trial]) -> Trial:
    """The trial of highest mean; on ties the earliest; a RuntimeFailure when none finished."""
    done = [t for t in trials if t.mean is not None]
    if not done:
        first = next((e for t in trials for e in t.errors), "no trial finished")
        raise RuntimeFailure(f"every tuning trial failed; first error: {first}")
    return max(done, key=lambda t: (t.mean, -t.index))


@dataclass
class TuneResult:
    """What :func:`tune` found and wrote."""

    metric: str
    keys: list[str]
    seeds: list[int]
    trials: list[Trial]
    best: Trial
    config: dict[str, Any]  # the content of best.yaml
    csv_path: Path
    best_path: Path


def csv_text(trials: Sequence[Trial], keys: Sequence[str], seeds: Sequence[int], metric: str) -> str:
    """``tune.csv``: trial, the grid keys, ``<metric>_seed<s>`` per seed, ``mean_<metric>``, status."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", *keys, *(f"{metric}_seed{s}" for s in seeds), f"mean_{metric}", "status"])
    for t in trials:
        scores = ["" if t.scores.get(s) is None else repr(t.scores[s]) for s in seeds]
        mean = "" if t.mean is None else repr(t.mean)
        status = "done" if t.complete else ("failed: " + t.errors[0] if t.errors else "not run")
        writer.writerow([t.index, *(json.dumps(t.values[k]) for k in keys), *scores, mean, status])
    return buf.getvalue()


def fixed_keys(flags: Mapping[str, Any], sets: Sequence[str]) -> dict:
    """The dotted keys every trial ran with: the cells' ``flags`` (a ``--config`` file's keys and the
    command's flags such as ``--epochs``) and ``--set`` items, except the seed and the output folder. They
    all go into ``best.yaml``, so ``kmat train --config best.yaml`` trains what the trials trained."""
    out = {**flags, **flatten(config_mod.parse_set(sets))}
    for key in FORBIDDEN:
        out.pop(key, None)
    return out


def best_config(resolved: Mapping[str, Any], fixed: Mapping[str, Any], point: Mapping[str, Any]) -> dict:
    """``best.yaml``'s mapping: task/method/transport names from the resolved config, then the ``fixed``
    keys (from --config and --set) and the best ``point``, nested (``{"method": {"lambda1": 0.5}}``)."""
    out: dict[str, Any] = {s: {"name": resolved[s]["name"]} for s in ("task", "method", "transport")}
    for key, value in {**fixed, **point}.items():
        config_mod.set_dotted(out, key, value)
    return out


def _yaml_text(cfg: Mapping[str, Any], header: Sequence[str]) -> str:
    return "".join(f"# {line}\n" for line in header) + config_mod.dump(cfg)


def _score(result: Mapping[str, Any] | None, metric: str) -> float | None:
    try:
        return float(result["metrics"]["hi"][metric])  # type: ignore[index]  # a None result is the TypeError below
    except (KeyError, TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------- tune
def tune(
    *,
    flags: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] = (1,),
    sets: Sequence[str] = (),
    config_file: str | Path | None = None,
    out: str | Path | None = None,
    metric: str = "accuracy",
    executor: str = "local",
    address: str | None = None,
    jobs: int = 1,
    output: str | Path | None = None,
    progress: bool = True,
) -> TuneResult:
    """Run the grid (``None``: :data:`DEFAULT_GRID`) over ``seeds`` with the high-end validation score and
    write ``tune.csv`` and ``best.yaml`` into ``out`` (default ``<config out>/tune/<task>-<method>``; also
    ``output`` when given). ``flags``: dotted config flags (``task.name``, ``method.name``,
    ``transport.name``, ``train.shots``, ...)."""
    if metric not in METRICS:
        raise UsageError(f"--metric '{metric}' is unknown; use {' or '.join(METRICS)}")
    default = not grid
    grid = dict(grid or DEFAULT_GRID)
    for key in grid:
        if key in FORBIDDEN:
            raise UsageError(f"--grid {key}: cannot be tuned; {FORBIDDEN[key]}")
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {','.join(map(str, seeds))}: a seed is repeated")
    cell_flags = common_flags(config_file, flags)
    out_root = cell_flags.pop("out", None)  # a config file's `out`: the root of the default tune folder
    resolved = validate(cell_flags, list(sets), grid, seeds, default=default)
    grid = normalise(grid, resolved)
    # the plugin names always travel, so a tune that relies on the defaults shares cells with one naming them
    cell_flags.update({f"{s}.name": resolved[s]["name"] for s in ("task", "method", "transport")})
    if out is None:
        out = (
            Path(out_root or resolved["out"])
            / "tune"
            / f"{task_slug(resolved['task']['name'])}-{runs.slug(resolved['method']['name'])}"
        )
    out = Path(out)
    points = grid_points(grid)
    trials = [Trial(i + 1, p) for i, p in enumerate(points)]
    cells, owner = [], []
    for trial in trials:
        for seed in seeds:
            flags_s = {**cell_flags, "train.seed": seed}
            cells.append(Cell(flags=flags_s, sets=(*sets, *set_items(trial.values)), score="hi-val"))
            owner.append((trial, seed))
    outcomes = run_cells(cells, out, executor=executor, address=address, jobs=jobs, progress=progress)
    for (trial, seed), outcome in zip(owner, outcomes, strict=True):
        trial.scores[seed] = _score(outcome.result, metric) if outcome.status == "done" else None
        if outcome.status != "done":
            trial.errors.append(outcome.error or outcome.status)
    best = best_trial(trials)
    cfg = best_config(resolved, fixed_keys(cell_flags, sets), best.values)
    config_mod.build(config_file=None, flags=flatten(cfg))  # best.yaml must load as a config
    header = [
        f"kmat tune: best of {len(trials)} grid points by high-end validation {metric}",
        f"(mean over seeds {', '.join(map(str, seeds))}) = {best.mean:.4f}; all trials in {out / CSV_FILE}",
        f"train with: kmat train --config {out / BEST_FILE}",
    ]
    csv_path, best_path = out / CSV_FILE, out / BEST_FILE
    atomic.write_text(csv_path, csv_text(trials, list(grid), seeds, metric))
    atomic.write_text(best_path, _yaml_text(cfg, header))
    if output is not None:
        atomic.write_text(output, _yaml_text(cfg, header), user_named=True)
    return TuneResult(metric, list(grid), seeds, trials, best, cfg, csv_path, best_path)


def render(result: TuneResult) -> None:
    """Print the trial table (metric in %), the best point and the command that trains with it."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=escape(f"kmat tune: high-end validation {result.metric} (%)"),
        title_justify="left",
        header_style="bold",
    )
    table.add_column("#", justify="right")
    for key in result.keys:
        table.add_column(escape(key), justify="right")
    for s in result.seeds:
        table.add_column(f"seed {s}", justify="right")
    table.add_column("mean", justify="right")
    for t in result.trials:
        scores = ["-" if (v := t.scores.get(s)) is None else f"{100 * v:.2f}" for s in result.seeds]
        mean = "failed" if t.mean is None else f"{100 * t.mean:.2f}"
        style = "bold green" if t is result.best else None
        mark = "*" if t is result.best else ""
        table.add_row(
            f"{t.index}{mark}", *(escape(str(t.values[k])) for k in result.keys), *scores, mean, style=style
        )
    console = Console(soft_wrap=True)
    console.print(table)
    failed = [t for t in result.trials if not t.complete]
    if failed:
        first = next((e for t in failed for e in t.errors), "not run")
        say(f"{len(failed)} of {len(result.trials)} grid points failed; first: {first}")
    values = " ".join(f"{k}={v}" for k, v in result.best.values.items())
    best = result.best.mean or 0.0  # the best trial is a complete one
    console.print(f"best: {values} (high-end validation {result.metric} {100 * best:.2f}%)", markup=False)
    console.print(f"train with: kmat train --config {result.best_path}", highlight=False, markup=False)
