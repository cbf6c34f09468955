"""Benchmark reports as text: pure functions from grid outcomes to markdown and CSV.

A :class:`Table` says which cell (by key) holds each (task, row, seed); rows are method variants
(``Zero-shot``, ``K-MaT``, or ablation rows like ``+ CSC/MSC``). Every number is a statistic over seeds of
one run metric from ``metrics.json`` (fractions there, percent here):

    mean = (1/n) sum_s v_s,   std = sqrt( sum_s (v_s - mean)^2 / (n - 1) )  (sample std; none when n = 1:
    the markdown shows ``mean (n=1)``, the CSV an empty std)

over the n seeds whose cell finished. ``H`` is each run's harmonic mean 2 Hi Lo / (Hi + Lo) (accuracy and
macro-F1 separately), averaged over seeds like Hi and Lo. The average over tasks takes, per seed, the mean
over tasks of the metric (only seeds finished on every task), then mean ± std of those per-seed averages;
so its mean is the mean of the per-task means, and the average H is the mean of per-task H, not the
harmonic mean of the average Hi and Lo. Relative improvement over the ablation's first row (CE only):
``100 (mean_row - mean_ce) / mean_ce``.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kmat_cli.experiments.variants import Variant

MODALITY_ROWS = (("hi", "Hi"), ("lo", "Lo"), ("H", "H"))
METRICS = ("accuracy", "macro_f1")
AVERAGE = "average"


@dataclass(frozen=True)
class Stat:
    """Mean and sample std (percent) of the values by seed."""

    values: Mapping[int, float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return 100 * statistics.fmean(self.values.values()) if self.values else math.nan

    @property
    def std(self) -> float:
        return 100 * statistics.stdev(self.values.values()) if self.n > 1 else 0.0


@dataclass
class Table:
    """One report table: ``kind`` ``methods`` (Table 2 layout) or ``ablation`` (Table 3 layout); ``rows``
    the variant labels in order (columns of a methods table); ``cells[(task, row, seed)]`` the cell key;
    ``info[row]`` optional: the row's :class:`~kmat_cli.experiments.variants.Variant` (its method and
    ``--set`` overrides are shown in the CSV)."""

    kind: str
    rows: list[str]
    cells: dict[tuple[str, str, int], str]
    info: dict[str, Variant] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """What a report covers: tasks and seeds in order, and its tables."""

    tasks: Sequence[str]
    seeds: Sequence[int]
    tables: Sequence[Table]
    blocks_are: str = "tasks"  # what a block is, for the average's heading ("tasks", or "blocks" with axes)


def _value(outcome: Any, modality: str, metric: str) -> float | None:
    if outcome is None or outcome.status != "done" or not outcome.result:
        return None
    try:
        return float(outcome.result["metrics"][modality][metric])
    except (KeyError, TypeError, ValueError):
        return None


def stats(layout: Layout, table: Table, outcomes: Mapping[str, Any]) -> dict[tuple[str, str, str, str], Stat]:
    """``{(task or "average", row, modality, metric): Stat}`` for every row of ``table``."""
    out: dict[tuple[str, str, str, str], Stat] = {}
    for row in table.rows:
        for modality, _ in MODALITY_ROWS:
            for metric in METRICS:
                per_task: dict[str, dict[int, float]] = {}
                for task in layout.tasks:
                    values = {}
                    for seed in layout.seeds:
                        key = table.cells.get((task, row, seed))
                        v = _value(outcomes.get(key) if key else None, modality, metric)
                        if v is not None:
                            values[seed] = v
                    per_task[task] = values
                    out[(task, row, modality, metric)] = Stat(values)
                common = [s for s in layout.seeds if all(s in per_task[t] for t in layout.tasks)]
                out[(AVERAGE, row, modality, metric)] = Stat(
                    {s: statistics.fmean(per_task[t][s] for t in layout.tasks) for s in common}
                )
    return out


# ------------------------------------------------------------------------------------------ markdown
def _fmt(stat: Stat, planned: int) -> str:
    if stat.n == 0:
        return "—"
    mark = " †" if stat.n < planned else ""
    return f"{_spread(stat.mean, stat.std, stat.n)}{mark}"


def _spread(mean: float, std: float, n: int) -> str:
    """``mean ± std`` of ``n`` values; one value has no spread: ``mean (n=1)``."""
    return f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f} (n=1)"


def _pair(
    st: Mapping[tuple[str, str, str, str], Stat], task: str, row: str, modality: str, planned: int
) -> str:
    acc, f1 = st[(task, row, modality, "accuracy")], st[(task, row, modality, "macro_f1")]
    if acc.n == 0:
        return "—"
    if acc.n == f1.n == 1:  # one seed: no spread, said once per cell
        return f"{acc.mean:.1f} ({f1.mean:.1f}) (n=1)" + (" †" if planned > 1 else "")
    return f"{_fmt(acc, planned)} ({_fmt(f1, planned)})"


def _best(values: Sequence[float]) -> set[int]:
    """Indices of the largest value at the displayed precision (ties: all of them)."""
    shown = [round(v, 1) if not math.isnan(v) else -math.inf for v in values]
    top = max(shown, default=-math.inf)
    return {i for i, v in enumerate(shown) if v == top and v != -math.inf}


def _bold(text: str) -> str:
    return f"**{text}**" if text != "—" else text


def _blocks(layout: Layout) -> list[tuple[str, str]]:
    """(stats key, heading) per block: each task, then the average when there is more than one task."""
    blocks = [(t, t) for t in layout.tasks]
    if len(layout.tasks) > 1:
        blocks.append((AVERAGE, f"Average over {len(layout.tasks)} {layout.blocks_are}"))
    return blocks


METHODS_LEGEND = (
    "Each cell: accuracy % (macro-F1 %) on the test split, mean ± std over seeds; the best accuracy of each "
    "row in bold. H is the harmonic mean of Hi and Lo."
)


def methods_markdown(layout: Layout, table: Table, outcomes: Mapping[str, Any]) -> str:
    """Table 2 layout: per task, rows Hi / Lo / H, one column per method, cells ``acc (F1)`` as
    mean ± std over seeds, the best accuracy of each row in bold; then the average over tasks."""
    st = stats(layout, table, outcomes)
    planned = len(layout.seeds)
    lines = []
    for block, heading in _blocks(layout):
        lines += [
            f"### {heading}",
            "",
            "| | " + " | ".join(table.rows) + " |",
            "|---" * (len(table.rows) + 1) + "|",
        ]
        for modality, label in MODALITY_ROWS:
            texts = [_pair(st, block, row, modality, planned) for row in table.rows]
            best = _best([st[(block, row, modality, "accuracy")].mean for row in table.rows])
            texts = [_bold(t) if i in best else t for i, t in enumerate(texts)]
            lines.append(f"| {label} | " + " | ".join(texts) + " |")
        lines.append("")
    return "\n".join(lines)


def _relative(row: float, base: float) -> float:
    return 100 * (row - base) / base if base and not math.isnan(base) and not math.isnan(row) else math.nan


#: Label-free inputs of the defaults rule (docs/defaults.md) a cell records beside its test metrics:
#: (column, path in the cell's result, scale, format). Mean high-end *validation* accuracy, and the mean
#: cos(t_lo,k, p_lo,k) of the trained prompts with the run's description prototypes (text only).
RULE_INPUTS: tuple[tuple[str, tuple[str, ...], float, str], ...] = (
    ("Hi val", ("validation", "accuracy"), 100.0, "{:.1f}"),
    ("cos(t_lo, p_lo)", ("checks", "trained", "cos_t_p", "lo"), 1.0, "{:.3f}"),
)


def _lookup(outcome: Any, path: Sequence[str]) -> float | None:
    if outcome is None or outcome.status != "done" or not outcome.result:
        return None
    node: Any = outcome.result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    try:
        return float(node)
    except (TypeError, ValueError):
        return None


def rule_input(
    layout: Layout, table: Table, outcomes: Mapping[str, Any], block: str, row: str, path: Sequence[str]
) -> float:
    """Mean over seeds (and over tasks for the average block) of the value at ``path`` (NaN: none)."""
    tasks = layout.tasks if block == AVERAGE else [block]
    found = [
        v
        for t in tasks
        for seed in layout.seeds
        if (v := _lookup(outcomes.get(table.cells.get((t, row, seed), "")), path)) is not None
    ]
    return statistics.fmean(found) if found else math.nan


def ablation_markdown(layout: Layout, table: Table, outcomes: Mapping[str, Any]) -> str:
    """Table 3 layout: per task, one row per ablation configuration with Hi / Lo / H (``acc (F1)``), the
    relative improvement of mean H accuracy and H macro-F1 over the first row (CE only), best H bold, and
    the defaults rule's label-free inputs (:data:`RULE_INPUTS`; "—" where a cell did not record them)."""
    st = stats(layout, table, outcomes)
    planned = len(layout.seeds)
    base = table.rows[0]
    lines = []
    rule_heads = " | ".join(head for head, *_ in RULE_INPUTS)
    for block, heading in _blocks(layout):
        lines += [
            f"### {heading}",
            "",
            f"| configuration | Hi | Lo | H | H acc vs {base} | H F1 vs {base} | {rule_heads} |",
            "|---|---|---|---|---|---|" + "---|" * len(RULE_INPUTS),
        ]
        best = _best([st[(block, row, "H", "accuracy")].mean for row in table.rows])
        for i, row in enumerate(table.rows):
            cols = [_pair(st, block, row, m, planned) for m, _ in MODALITY_ROWS]
            if i in best:
                cols[2] = _bold(cols[2])
            for metric in METRICS:
                rel = _relative(st[(block, row, "H", metric)].mean, st[(block, base, "H", metric)].mean)
                cols.append("—" if i == 0 or math.isnan(rel) else f"{rel:+.1f} %")
            for _, path, scale, fmt in RULE_INPUTS:
                v = rule_input(layout, table, outcomes, block, row, path)
                cols.append("—" if math.isnan(v) else fmt.format(scale * v))
            lines.append(f"| {row} | " + " | ".join(cols) + " |")
        lines.append("")
    return "\n".join(lines)


def failures_markdown(failed: Sequence[Any], missing: Sequence[Any], other_shards: int = 0) -> str:
    """The failed-cells section: failed cells with their error, cells without a result, other shards."""
    lines = ["## Failed cells", ""]
    if not failed and not missing and not other_shards:
        return "\n".join([*lines, "None: every cell finished.", ""])
    if failed:
        lines += ["| cell | what | error |", "|---|---|---|"]
        for o in failed:
            error = (o.error or "").replace("|", "\\|")
            lines.append(f"| `{o.cell.key}` | {o.cell.describe()} | {error} |")
        lines += [
            "",
            "Failed cells are retried when the same command runs again (`cells/<key>/error.json` has "
            "the traceback).",
            "",
        ]
    if missing:
        lines += [
            f"No result for {len(missing)} cells: "
            + ", ".join(f"`{c.key}` ({c.describe()})" for c in missing),
            "",
        ]
    if other_shards:
        lines += [
            f"{other_shards} cells belong to other shards; `kmat benchmark merge` builds the full report.",
            "",
        ]
    return "\n".join(lines)


def timing_markdown(layout: Layout, table: Table, outcomes: Mapping[str, Any]) -> str:
    """Wall time per method (row): training step (ms) and whole run (s), mean ± std over finished cells."""
    lines = [
        "| method | cells | train step (ms) | run: build, features, train, evaluate (s) |",
        "|---|---|---|---|",
    ]
    any_row = False
    for row in table.rows:
        steps, totals = [], []
        for (_, r, _), key in table.cells.items():
            o = outcomes.get(key)
            timing = (
                ((o.result or {}).get("metrics") or {}).get("timing") if o and o.status == "done" else None
            )
            if r == row and timing:
                if timing.get("steps"):
                    steps.append(1000 * float(timing["step_s"]))
                totals.append(float(timing.get("total_s", 0.0)))
        if not totals:
            continue
        any_row = True
        step = _spread(statistics.fmean(steps), _stdev(steps), len(steps)) if steps else "—"
        total = _spread(statistics.fmean(totals), _stdev(totals), len(totals))
        lines.append(f"| {row} | {len(totals)} | {step} | {total} |")
    return "\n".join(lines) + "\n" if any_row else ""


def _stdev(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


# ----------------------------------------------------------------------------------------------- CSV
def report_csv(layout: Layout, outcomes: Mapping[str, Any]) -> str:
    """One row per (table, task or ``average``, row, modality, metric): mean, std (percent), number of
    seeds, the relative improvement over the CE-only row (ablation tables) and the per-seed values."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    seed_cols = [f"seed_{s}_pct" for s in layout.seeds]
    writer.writerow(
        [
            "table",
            "task",
            "row",
            "method",
            "sets",
            "modality",
            "metric",
            "mean_pct",
            "std_pct",
            "n_seeds",
            "rel_vs_first_row_pct",
            *seed_cols,
        ]
    )
    for table in layout.tables:
        st = stats(layout, table, outcomes)
        tasks = [b for b, _ in _blocks(layout)]
        for task in tasks:
            for row in table.rows:
                variant = table.info.get(row)
                method, sets = (variant.method, " ".join(variant.sets)) if variant else ("", "")
                for modality, _ in MODALITY_ROWS:
                    for metric in METRICS:
                        s = st[(task, row, modality, metric)]
                        rel = ""
                        if table.kind == "ablation" and row != table.rows[0]:
                            r = _relative(s.mean, st[(task, table.rows[0], modality, metric)].mean)
                            rel = "" if math.isnan(r) else repr(r)
                        writer.writerow(
                            [
                                table.kind,
                                task,
                                row,
                                method,
                                sets,
                                modality,
                                metric,
                                "" if s.n == 0 else repr(s.mean),
                                "" if s.n < 2 else repr(s.std),
                                s.n,
                                rel,
                                *[repr(100 * s.values[x]) if x in s.values else "" for x in layout.seeds],
                            ]
                        )
    return buf.getvalue()
