"""The knowledge section of a benchmark report: methods x knowledge regimes, and paired differences.

Every block of a benchmark with a ``knowledge.regime`` axis (:mod:`.axes`) is one task under one regime
and one value of each other axis (e.g. ``task.seed``, the phantom world). A *unit* is one (other axis
values, seed) pair; within a regime a row's low-end accuracy is summarised over its finished units as
mean ± sample std with n stated. Paired differences (:mod:`.paired`) compare two rows on the same units
(same world, seed and test images) with a bootstrap 95 % interval over units and test images.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kmat_cli.experiments import axes, paired
from kmat_cli.experiments.report import Layout, Table
from kmat_cli.experiments.variants import (
    AGREEMENT_OFF,
    ANCHOR_ONLY,
    LAMBDA2_3,
    TRANSPORT_ONLY,
    method_label,
)

SHIPPED = "shipped"
_KMAT = method_label("kmat")  # with its defaults: the agreement rule
# (A, B, B's regime or None for the same regime as A): the comparisons of the paired table
COMPARISONS: tuple[tuple[str, str, str | None], ...] = (
    (_KMAT, method_label("descriptions"), None),
    (_KMAT, AGREEMENT_OFF, None),
    (_KMAT, ANCHOR_ONLY, None),
    (_KMAT, TRANSPORT_ONLY, None),
    (_KMAT, LAMBDA2_3, None),
    (AGREEMENT_OFF, ANCHOR_ONLY, None),
    (_KMAT, _KMAT, SHIPPED),
    (AGREEMENT_OFF, AGREEMENT_OFF, SHIPPED),
)


def _units(plan: Any, regime: str) -> list[tuple[tuple, str, str]]:
    """(unit key, block name, task+other-values image group) of the blocks of ``regime``."""
    out = []
    for name, block in plan.blocks.items():
        if block.value(axes.KNOWLEDGE) != regime:
            continue
        other = tuple((k, v) for k, v in block.values if k != axes.KNOWLEDGE)
        out.append(((block.task, other), name, repr((block.task, other))))
    return out


def _lo(outcome: Any) -> tuple[float, str] | None:
    if outcome is None or outcome.status != "done" or not outcome.result:
        return None
    try:
        lo = outcome.result["metrics"]["lo"]
        return float(lo["accuracy"]), str(lo.get("correct", ""))
    except (KeyError, TypeError, ValueError):
        return None


def _cells(layout: Layout) -> dict[tuple[str, str, int], str]:
    """(block, row, seed) -> cell key over every table (a row label names one variant)."""
    found: dict[tuple[str, str, int], str] = {}
    for table in layout.tables:
        found.update(table.cells)
    return found


def regimes(plan: Any) -> list[str]:
    return [v for k, values in plan.request.axes if k == axes.KNOWLEDGE for v in values]


def lo_table(plan: Any, layout: Layout, rows: Sequence[str], outcomes: Mapping[str, Any]) -> str:
    """Rows x regimes: low-end accuracy (%) mean ± sample std over units, n units per cell."""
    cells = _cells(layout)
    names = regimes(plan)
    lines = ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in rows:
        texts = []
        for regime in names:
            values = [
                100 * got[0]
                for _, block, _ in _units(plan, regime)
                for seed in layout.seeds
                if (got := _lo(outcomes.get(cells.get((block, row, seed), "")))) is not None
            ]
            if not values:
                texts.append("—")
            elif len(values) == 1:
                texts.append(f"{values[0]:.1f} (n=1)")
            else:
                texts.append(
                    f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f} (n={len(values)})"
                )
        lines.append(f"| {row} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def difference(
    plan: Any, layout: Layout, outcomes: Mapping[str, Any], a: str, b: str, regime: str, b_regime: str | None
) -> paired.Difference:
    """Paired Lo-accuracy difference A (in ``regime``) - B (in ``b_regime`` or the same regime)."""
    cells = _cells(layout)
    b_blocks = {key: name for key, name, _ in _units(plan, b_regime or regime)}
    units = []
    for key, block, group in _units(plan, regime):
        if key not in b_blocks:
            continue
        for seed in layout.seeds:
            got_a = _lo(outcomes.get(cells.get((block, a, seed), "")))
            got_b = _lo(outcomes.get(cells.get((b_blocks[key], b, seed), "")))
            if got_a and got_b and got_a[1] and len(got_a[1]) == len(got_b[1]):
                units.append(paired.Unit(group, paired.correctness(got_a[1]), paired.correctness(got_b[1])))
    return paired.paired_difference(units)


def paired_table(plan: Any, layout: Layout, outcomes: Mapping[str, Any]) -> str:
    """One row per comparison of :data:`COMPARISONS` whose rows the benchmark has, one column per regime."""
    labels = {row for t in layout.tables for row in t.rows}
    names = regimes(plan)
    lines = ["| A - B (Lo accuracy, points) | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for a, b, b_regime in COMPARISONS:
        if a not in labels or b not in labels or (b_regime and b_regime not in names):
            continue
        title = f"{a} - {b}" + (f" with {b_regime} descriptions" if b_regime else "")
        texts = []
        for regime in names:
            if b_regime == regime:
                texts.append("—")
                continue
            texts.append(difference(plan, layout, outcomes, a, b, regime, b_regime).markdown())
        lines.append(f"| {title} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def section(plan: Any, layout: Layout, outcomes: Mapping[str, Any], tables: Sequence[Table]) -> str:
    """The report's knowledge section (empty without a knowledge axis)."""
    if not regimes(plan):
        return ""
    rows = [row for t in tables if t.kind in ("methods", "knowledge") for row in t.rows]
    others = [k for k, _ in plan.request.axes if k != axes.KNOWLEDGE]
    unit = "(" + ", ".join([*others, "seed"]) + ")"
    return "\n".join(
        [
            "## Knowledge regimes",
            "",
            f"Low-end accuracy (%) per knowledge regime of the low-end descriptions (high-end descriptions "
            f"as shipped): mean ± sample std over n {unit} runs.",
            "",
            lo_table(plan, layout, rows, outcomes),
            "### Paired differences",
            "",
            f"Low-end accuracy of A minus B on the same {unit} runs and test images, in points: mean "
            "[95 % interval: bootstrap over runs and test images, 2000 replicates] (runs where A > B / n). "
            'A row "with shipped descriptions" compares A in each regime with B in the shipped regime.',
            "",
            paired_table(plan, layout, outcomes),
        ]
    )
