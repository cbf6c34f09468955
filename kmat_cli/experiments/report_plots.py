"""The plots of a ``kmat benchmark`` report, drawn from its cells' results (:mod:`kmat_cli.experiments.plots`).

Every result carries the :class:`~kmat_cli.experiments.variants.Variant` (the table row) its cell was run
for, so what a plot shows is read off the variants: a method as configured (``Variant.is_default``) and
K-MaT without its transport term (``Variant.without_transport``), the pair of the K-MaT paper's Fig. 2.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmat_cli.experiments.plots import confusion_matrices, per_class_accuracy, prompt_map
from kmat_cli.experiments.variants import Result, Variant, method_label
from kmat_cli.runs import Run, slug

PLOTS_DIR = "plots"


@dataclass(frozen=True)
class ReportPlot:
    """A written plot of a report: its task, its PNG and the caption that says what it shows."""

    task: str
    path: Path
    caption: str


@dataclass(frozen=True)
class _Entry:
    task: str
    variant: Variant
    seed: int
    metrics: dict[str, Any]
    run: Path | None

    @property
    def prompts(self) -> Path | None:
        path = self.run / Run.PROMPTS if self.run is not None else None
        return path if path is not None and path.is_file() else None


def _entries(results: Sequence[Result]) -> list[_Entry]:
    """The finished test-scored cells with metrics of both modalities."""
    rows = []
    for r in results:
        o = r.outcome
        if o.status != "done" or not o.result or o.cell.score != "test":
            continue
        metrics = o.result.get("metrics") or {}
        if "lo" in metrics and "hi" in metrics:
            run = Path(o.result["run"]) if o.result.get("run") else None
            rows.append(_Entry(r.task, r.variant, r.seed, metrics, run))
    return rows


def variant_label(variant: Variant) -> str:
    """Display name of a variant in the plots: ``K-MaT``, ``K-MaT without transport``, ``K-MaT (CE only)``."""
    name = method_label(variant.method)
    if variant.is_default:
        return name
    return f"{name} without transport" if variant.without_transport else f"{name} ({variant.label})"


def _in_bars(entry: _Entry, group: Sequence[_Entry]) -> bool:
    """Bars show each method as run by default, plus K-MaT without transport (the paper's Fig. 2 pair);
    other variants only for a method that has no default run."""
    v = entry.variant
    if v.is_default or v.without_transport:
        return True
    return not any(e.variant.is_default for e in group if e.variant.method == v.method)


def _bar_variants(group: Sequence[_Entry]) -> dict[str, list[dict[str, Any]]]:
    variants: dict[str, list[dict[str, Any]]] = {}
    order = sorted(
        group,
        key=lambda e: (
            e.variant.method != "kmat",
            e.variant.method,
            len(e.variant.sets),
            e.variant.sets,
            e.seed,
        ),
    )
    for e in order:
        if _in_bars(e, group):
            variants.setdefault(variant_label(e.variant), []).append(e.metrics)
    return variants


def report_bar_data(results: Sequence[Result]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """What the per-class bars of :func:`write_report_plots` are drawn from: ``{task: {variant label:
    [metrics of each seed]}}`` (feed a task's mapping to :func:`~kmat_cli.experiments.plots.per_class_scores`)."""
    entries = _entries(results)
    return {t: _bar_variants([e for e in entries if e.task == t]) for t in sorted({e.task for e in entries})}


def _prompt_map(task: str, group: Sequence[_Entry], out_dir: Path, method: str) -> ReportPlot | None:
    """K-MaT's lowest-seed prompt map, beside the same seed's run without transport when there is one."""
    full = sorted(
        (e for e in group if e.variant.method == "kmat" and e.variant.is_default), key=lambda e: e.seed
    )
    if not full or full[0].prompts is None:
        return None
    seed = full[0].seed
    projection = "2-D PCA" if method == "pca" else "t-SNE"
    files = {f"K-MaT (seed {seed})": full[0].prompts}
    twin = next((e for e in group if e.variant.without_transport and e.seed == seed and e.prompts), None)
    if twin is not None and twin.prompts is not None:
        files[f"K-MaT without transport (seed {seed})"] = twin.prompts
        title = f"{task}: learned prompt embeddings with and without transport"
        caption = f"learned high- and low-end prompt embeddings ({projection}) of K-MaT with and without transport (seed {seed})"
    else:
        title = f"{task}: learned prompt embeddings of K-MaT\n(no run without transport in this benchmark)"
        caption = f"learned high- and low-end prompt embeddings ({projection}) of K-MaT (seed {seed}; no run without transport in this benchmark)"
    path = prompt_map(files, out_dir / f"{slug(task)}-prompt-map.png", method, title=title)
    return ReportPlot(task, path, caption)


def _bars(task: str, group: Sequence[_Entry], class_names: Sequence[str], out_dir: Path) -> ReportPlot:
    """Low-end per-class accuracy of every variant in the bars (:func:`_in_bars`), mean over seeds."""
    variants = _bar_variants(group)
    seeds = sorted({e.seed for e in group})
    over = f"mean over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    whisker = "; whiskers: std over seeds" if any(len(v) > 1 for v in variants.values()) else ""
    path = per_class_accuracy(
        variants,
        class_names,
        out_dir / f"{slug(task)}-per-class-lo.png",
        "lo",
        title=f"{task}: low-end per-class accuracy ({over})",
    )
    return ReportPlot(task, path, f"low-end per-class accuracy of every method ({over}{whisker})")


def write_report_plots(
    results: Sequence[Result], out_dir: str | Path, *, method: str = "pca"
) -> list[ReportPlot]:
    """The plots of a benchmark grid's finished cells, per task, into ``out_dir``; returns them with
    captions drawn from what each one shows. Names are stable:

    - ``<task>-prompt-map.png``: prompt map of the lowest-seed K-MaT run against the same seed's K-MaT run
      without transport (only the full run, said in the title, when that cell is absent);
    - ``<task>-per-class-lo.png``: low-end per-class accuracy of every method as run by default and of
      K-MaT without transport (mean over seeds);
    - ``<task>-confusion-kmat.png``: K-MaT's confusion matrices (lowest seed).
    """
    out_dir = Path(out_dir)
    entries = _entries(results)
    written: list[ReportPlot] = []
    for task in sorted({e.task for e in entries}):
        group = [e for e in entries if e.task == task]
        class_names = group[0].metrics.get("class_names") or [
            str(i) for i in range(len(group[0].metrics["lo"]["confusion"]))
        ]
        mapped = _prompt_map(task, group, out_dir, method)
        written += [mapped] if mapped is not None else []
        written.append(_bars(task, group, class_names, out_dir))
        full = sorted(
            (e for e in group if e.variant.method == "kmat" and e.variant.is_default), key=lambda e: e.seed
        )
        if full:
            path = confusion_matrices(
                full[0].metrics,
                class_names,
                out_dir / f"{slug(task)}-confusion-kmat.png",
                title=f"{task}: K-MaT confusion matrices (seed {full[0].seed})",
            )
            caption = f"K-MaT confusion matrices on both test splits (seed {full[0].seed})"
            written.append(ReportPlot(task, path, caption))
    return written


def plots_markdown(plots: Sequence[ReportPlot], relative_to: str | Path) -> str:
    """A markdown ``## Plots`` section linking ``plots`` (relative to the report's folder), each under
    its caption."""
    lines = ["## Plots", ""]
    for plot in plots:
        rel = Path(os.path.relpath(plot.path, relative_to)).as_posix()
        lines += [f"**{plot.task}**: {plot.caption}", "", f"![{plot.task}: {plot.caption}]({rel})", ""]
    return "\n".join(lines)


def section(results: Sequence[Result], out: Path) -> str:
    """The report's ``## Plots`` section, plots written into ``out/plots``; says why when there are none
    (matplotlib missing, a plot failing: a plot never costs the report); empty with nothing to plot."""
    if importlib.util.find_spec("matplotlib") is None:
        return "## Plots\n\nNo plots: matplotlib is not installed (`pip install 'kmat[plots]'`).\n"
    try:
        paths = write_report_plots(results, out / PLOTS_DIR)
    except ImportError as exc:
        return f"## Plots\n\nNo plots: {exc}.\n"
    except Exception as exc:  # a plot must never cost the report
        return f"## Plots\n\nNo plots: {type(exc).__name__}: {exc}.\n"
    return plots_markdown(paths, out) + "\n" if paths else ""
