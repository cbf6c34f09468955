"""The ``kmat benchmark`` report of a plan's outcomes:

- ``report.md``: Table 2 (Hi / Lo / H rows per task, ``acc (F1)`` mean ± std over seeds, best per row in
  bold, average over tasks), Table 3 with ``--ablation``, the defaults rule, knowledge rows, wall times,
  plots, failed cells;
- ``report.csv``: one row per (table, task, row, modality, metric) with mean, std, seeds and per-seed values.

The tables' text is :mod:`~kmat_cli.experiments.report`'s, the plots :mod:`~kmat_cli.experiments.report_plots`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from kmat_cli import atomic
from kmat_cli.errors import UsageError
from kmat_cli.experiments import axes, knowledge_report, report, report_plots, rule
from kmat_cli.experiments.cells import Outcome
from kmat_cli.experiments.plan import Plan
from kmat_cli.experiments.variants import Variant

REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
_HI_VAL = ("validation", "accuracy")  # the defaults rule's inputs in a cell's result (report.RULE_INPUTS)
_COS_LO = ("checks", "trained", "cos_t_p", "lo")


def _protocol(plan: Plan) -> str:
    req = plan.request
    try:
        cfg = plan.config(
            plan.block_names[0], (plan.methods or plan.ablation or plan.knowledge)[-1], req.seeds[0]
        )
    except UsageError:
        return ""
    t = cfg["train"]
    transport = cfg["transport"]
    shown = ("epsilon", "alpha", "cost", "center", "normalize")
    options = ", ".join(f"{k} {v}" for k, v in transport.items() if k in shown)
    kmat = plan.config(plan.block_names[0], Variant("K-MaT", "kmat"), req.seeds[0])["method"]
    method = ", ".join(
        f"{k} {kmat[k]!r}" if isinstance(kmat[k], str) else f"{k} {kmat[k]}"
        for k in ("lambda1", "lambda2", "description_template", "agreement")
        if k in kmat
    )
    axis = [f"{k} in {{{', '.join(map(str, v))}}}" for k, v in req.axes]
    regime = (
        "" if any(k == axes.KNOWLEDGE for k, _ in req.axes) else f"; knowledge {cfg['knowledge']['regime']}"
    )
    return (
        f"Protocol: backbone `{cfg['backbone']['name']}`, {t['shots']} shots per class, {t['epochs']} epochs, "
        f"batch {t['batch_size']}, lr {t['lr']}; transport `{transport['name']}`"
        + (f" ({options})" if options else "")
        + (f"; K-MaT {method}" if method else "")
        + regime
        + (f"; axes: {'; '.join(axis)}" if axis else "")
        + f"; seeds {', '.join(map(str, req.seeds))}."
        + (f" Overrides: `{' '.join(req.sets)}`." if req.sets else "")
    )


def _rule_outcome(
    plan: Plan, layout: report.Layout, table: report.Table, by_key: Mapping[str, Outcome]
) -> str:
    """The defaults rule applied per task (:mod:`kmat_cli.experiments.rule`) to this benchmark's cells: step 1
    reads the initial checks of every finished cell of the first seed (any table), step 2 the candidates."""
    first = layout.seeds[0]
    parts = []
    for task in layout.tasks:
        keys = {
            key
            for t in layout.tables
            for (k_task, _, seed), key in t.cells.items()
            if (k_task, seed) == (task, first)
        }
        checks = [
            (by_key[key].result or {}).get("checks") or {}
            for key in sorted(keys)
            if key in by_key and by_key[key].status == "done"
        ]
        candidates = []
        for variant in plan.candidates:
            transport = plan.config(task, variant, first)["transport"]
            candidates.append(
                rule.Candidate(
                    label=variant.label,
                    alpha=float(transport["alpha"]),
                    center=bool(transport["center"]),
                    normalize=bool(transport["normalize"]),
                    hi_val=100.0 * report.rule_input(layout, table, by_key, task, variant.label, _HI_VAL),
                    cos_lo=report.rule_input(layout, table, by_key, task, variant.label, _COS_LO),
                )
            )
        checked = rule.template_checks(checks)
        parts.append(rule.markdown(task, checked, candidates, len(layout.seeds)))
    return "\n".join(parts)


def render(plan: Plan, outcomes: Sequence[Outcome], out: Path, *, plots: bool = True) -> tuple[str, str]:
    """(markdown, CSV) of the report of ``outcomes`` under ``out`` (plots written into ``out/plots``)."""
    layout = plan.layout()
    by_key = {o.cell.key: o for o in outcomes if o.status in ("done", "failed")}
    failed = [o for o in outcomes if o.status == "failed"]
    missing = [o.cell for o in outcomes if o.status == "missing"]
    other = len({o.cell.key for o in outcomes if o.status == "other-shard"})
    req = plan.request
    parts = [
        f"# kmat benchmark: {', '.join(req.tasks)}",
        "",
        _protocol(plan),
        "",
        "Accuracy with macro-F1 in brackets, in %, mean ± std (sample std) over seeds, or mean (n=1) from "
        "one seed; H is the harmonic mean of Hi and Lo per run. Best per row in bold. † fewer seeds than planned (failed cells). "
        f"Every number per seed: [{REPORT_CSV}]({REPORT_CSV}).",
        "",
    ]
    for table in layout.tables:
        if table.kind == "methods":
            parts += [
                "## Methods (Table 2 layout)",
                "",
                report.METHODS_LEGEND,
                "",
                report.methods_markdown(layout, table, by_key),
            ]
        elif table.kind == "rule":
            parts += [
                "## Defaults rule (docs/defaults.md)",
                "",
                "The transport candidates of step 2 (relative columns against the first candidate). The rule "
                "reads only Hi val and cos(t_lo, p_lo); Lo is shown beside, never used.",
                "",
                report.ablation_markdown(layout, table, by_key),
                _rule_outcome(plan, layout, table, by_key),
            ]
        elif table.kind == "knowledge":
            parts += [
                "## K-MaT configurations (knowledge benchmark)",
                "",
                "K-MaT with its defaults uses the agreement rule (docs/defaults.md); these fixed configurations, "
                "without it, are what it is measured against.",
                "",
                report.methods_markdown(layout, table, by_key),
            ]
        else:
            parts += [
                "## K-MaT ablation (Table 3 layout)",
                "",
                "Relative improvement of mean H over the CE-only row (shared context, no CSC, MSC, anchor or "
                "transport).",
                "",
                report.ablation_markdown(layout, table, by_key),
            ]
    knowledge = knowledge_report.section(plan, layout, by_key, layout.tables)
    if knowledge:
        parts += [knowledge]
    timing = report.timing_markdown(layout, layout.tables[0], by_key)
    if timing:
        parts += ["## Wall time", "", timing]
    if plots:
        section = report_plots.section(plan.results(outcomes), out)
        if section:
            parts += [section]
    parts += [report.failures_markdown(failed, missing, other)]
    return "\n".join(parts), report.report_csv(layout, by_key)


def write_report(plan: Plan, outcomes: Sequence[Outcome], out: Path, *, plots: bool = True) -> Path:
    """Write ``report.md`` and ``report.csv`` into ``out``; returns the markdown path."""
    markdown, table = render(plan, outcomes, out, plots=plots)
    atomic.write_text(out / REPORT_CSV, table)
    atomic.write_text(out / REPORT_MD, markdown)
    return out / REPORT_MD
