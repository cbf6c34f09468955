"""``kmat benchmark`` reports: numbers equal an independent recompute from the run folders' metrics.json; the
summary table says what its cells are."""

from __future__ import annotations

import csv
import json
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from kmat_runner import cli
from short_runs import SHORT_FLAGS

from kmat_cli.experiments import report
from kmat_cli.experiments.cells import Cell, Outcome

LABELS = {"zeroshot": "Zero-shot", "coop": "CoOp", "kmat": "K-MaT"}


def _runs(root: Path) -> dict[tuple[str, int], dict]:
    """(method, seed) -> metrics.json of its run folder, read straight from the run folders."""
    found = {}
    for spec in (root / "cells").glob("*/cell.json"):
        flags = json.loads(spec.read_text())["flags"]
        (metrics,) = spec.parent.glob("train/*/metrics.json")
        found[(flags["method.name"], flags["train.seed"])] = json.loads(metrics.read_text())
    return found


def _csv(root: Path) -> list[dict[str, str]]:
    with open(root / "report.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_numbers_are_means_and_stds_of_the_runs(small_bench: Path) -> None:
    runs = _runs(small_bench)
    assert sorted(runs) == [(m, s) for m in ("coop", "kmat", "zeroshot") for s in (1, 2)]
    rows = {(r["row"], r["modality"], r["metric"]): r for r in _csv(small_bench) if r["task"] == "phantom"}
    assert len(rows) == 3 * 3 * 2
    markdown = (small_bench / "report.md").read_text()
    table = markdown.split("### phantom")[1].split("\n\n")[1].splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[1:] == ["Zero-shot", "CoOp", "K-MaT"]
    body = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")][1:] for line in table[2:]
    }
    for modality, label in (("hi", "Hi"), ("lo", "Lo"), ("H", "H")):
        means = []
        for col, method in enumerate(("zeroshot", "coop", "kmat")):
            shown = []
            for metric in ("accuracy", "macro_f1"):
                values = np.array([runs[(method, s)][modality][metric] for s in (1, 2)]) * 100
                mean, std = values.mean(), values.std(ddof=1)
                row = rows[(LABELS[method], modality, metric)]
                assert float(row["mean_pct"]) == pytest.approx(mean, abs=1e-9)
                assert float(row["std_pct"]) == pytest.approx(std, abs=1e-9)
                assert row["n_seeds"] == "2"
                assert [float(row["seed_1_pct"]), float(row["seed_2_pct"])] == pytest.approx(list(values))
                shown.append(f"{mean:.1f} ± {std:.1f}")
            means.append(round(np.mean([runs[(method, s)][modality]["accuracy"] for s in (1, 2)]) * 100, 1))
            cell = body[label][col]
            assert cell.strip("*") == f"{shown[0]} ({shown[1]})"
        best = {i for i, m in enumerate(means) if m == max(means)}
        assert {i for i, c in enumerate(body[label]) if c.startswith("**")} == best


def _outcome(task: str, key: str, hi: float, lo: float, f1: float | None = None) -> Outcome:
    f1 = hi if f1 is None else f1
    h = 2 * hi * lo / (hi + lo)
    metrics = {
        "hi": {"accuracy": hi, "macro_f1": f1},
        "lo": {"accuracy": lo, "macro_f1": f1},
        "H": {"accuracy": h, "macro_f1": f1},
    }
    return Outcome(
        Cell({"task.name": task, "k": key}), "done", {"metrics": metrics, "run": None, "timing": {}}
    )


def test_average_over_tasks_ties_missing_seeds_and_relative_improvement() -> None:
    vals = {  # (task, row, seed) -> (hi, lo)
        ("a", "CE only", 1): (0.5, 0.2),
        ("a", "CE only", 2): (0.7, 0.4),
        ("b", "CE only", 1): (0.3, 0.6),
        ("b", "CE only", 2): (0.1, 0.2),
        ("a", "full", 1): (0.5, 0.3),
        ("a", "full", 2): (0.7, 0.5),
        ("b", "full", 1): (0.3, 0.7),  # seed 2 of task b failed
    }
    outcomes = {f"{t}{r}{s}": _outcome(t, f"{r}{s}", hi, lo) for (t, r, s), (hi, lo) in vals.items()}
    cells = {
        (t, r, s): f"{t}{r}{s}"
        for (t, r, s) in [(t, r, s) for t in "ab" for r in ("CE only", "full") for s in (1, 2)]
    }
    table = report.Table("ablation", ["CE only", "full"], cells)
    layout = report.Layout(["a", "b"], [1, 2], [table])
    st = report.stats(layout, table, outcomes)
    # average over tasks: per seed the mean over tasks, then mean and sample std over seeds
    per_seed = [
        statistics.fmean([vals[("a", "CE only", s)][0], vals[("b", "CE only", s)][0]]) for s in (1, 2)
    ]
    assert st[("average", "CE only", "hi", "accuracy")].mean == pytest.approx(
        100 * statistics.fmean(per_seed)
    )
    assert st[("average", "CE only", "hi", "accuracy")].std == pytest.approx(100 * statistics.stdev(per_seed))
    # the failed seed: task b has one value, the average only seed 1 (the one every task has)
    assert st[("b", "full", "lo", "accuracy")].n == 1 and st[("average", "full", "lo", "accuracy")].n == 1
    assert st[("average", "full", "lo", "accuracy")].mean == pytest.approx(100 * (0.3 + 0.7) / 2)
    md = report.ablation_markdown(layout, table, outcomes)
    assert "†" in md.split("### b")[1]
    h = {k: 2 * v[0] * v[1] / (v[0] + v[1]) for k, v in vals.items()}
    ce = statistics.fmean([h[("a", "CE only", 1)], h[("a", "CE only", 2)]])
    full = statistics.fmean([h[("a", "full", 1)], h[("a", "full", 2)]])
    block_a = md.split("### a")[1].split("###")[0]
    assert f"{100 * (full - ce) / ce:+.1f} %" in block_a
    text = report.report_csv(layout, outcomes)
    rel = [
        r
        for r in csv.DictReader(text.splitlines())
        if (r["task"], r["row"], r["modality"], r["metric"]) == ("a", "full", "H", "accuracy")
    ]
    assert float(rel[0]["rel_vs_first_row_pct"]) == pytest.approx(100 * (full - ce) / ce)


def test_ties_are_all_bold_and_failures_are_listed() -> None:
    outcomes = {k: _outcome("t", k, 0.5, 0.5) for k in ("x", "y")}
    outcomes["z"] = _outcome("t", "z", 0.25, 0.5)
    table = report.Table(
        "methods", ["X", "Y", "Z"], {("t", "X", 1): "x", ("t", "Y", 1): "y", ("t", "Z", 1): "z"}
    )
    md = report.methods_markdown(report.Layout(["t"], [1], [table]), table, outcomes)
    hi_row = next(line for line in md.splitlines() if line.startswith("| Hi "))
    assert re.findall(r"\*\*[^*]+\*\*", hi_row) == ["**50.0 (50.0) (n=1)**"] * 2  # one seed: no std
    failed = Outcome(Cell({"task.name": "t", "method.name": "coop"}), "failed", None, "RuntimeFailure: boom")
    text = report.failures_markdown([failed], [], other_shards=2)
    assert (
        failed.cell.key in text
        and "RuntimeFailure: boom" in text
        and "2 cells belong to other shards" in text
    )
    assert "None: every cell finished." in report.failures_markdown([], [])


def test_report_links_the_plots_or_says_why_there_are_none(
    small_bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from kmat_cli.experiments import benchmark, report_plots
    from kmat_cli.experiments.cells import read_cells

    pytest.importorskip("matplotlib")
    outcomes = list(read_cells([small_bench]).values())
    results = benchmark.Plan(benchmark.load_request(small_bench)).results(outcomes)
    section = report_plots.section(results, tmp_path)
    links = re.findall(r"\]\((plots/[^)]+\.png)\)", section)
    assert links and all((tmp_path / link).is_file() for link in links)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    assert "No plots: matplotlib is not installed" in report_plots.section(results, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_the_demo_table_says_its_cells_are_accuracy_and_macro_f1(tmp_path: Path, capsys) -> None:
    args = [
        "benchmark",
        "--task",
        "phantom",
        "--methods",
        "zeroshot",
        "--seeds",
        "1",
        "--no-plots",
        "--summary",
    ]
    code, stdout, _ = cli(*args, "--out", tmp_path / "b", *SHORT_FLAGS[:4])
    assert code == 0 and "accuracy % (macro-F1 %)" in stdout
