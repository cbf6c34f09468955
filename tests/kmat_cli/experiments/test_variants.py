"""A benchmark's rows stay Variant objects from the plan to the report plots."""

from __future__ import annotations

from kmat_cli.experiments import benchmark, report_plots
from kmat_cli.experiments.cells import Outcome
from kmat_cli.experiments.variants import METHOD_LABELS, METHODS, WITHOUT_TRANSPORT


def _metrics(k: int = 3) -> dict:
    eye = [[5 if i == j else 0 for j in range(k)] for i in range(k)]
    return {"class_names": [f"c{i}" for i in range(k)], "hi": {"confusion": eye}, "lo": {"confusion": eye}}


def test_results_tie_each_cell_to_its_row_once_and_the_bars_read_the_rows() -> None:
    request = benchmark.Request(
        tasks=("phantom",), methods=("coop", "kmat"), seeds=(1, 2), ablation=True, sets=("train.lr=0.01",)
    )
    plan = benchmark.Plan(request)
    outcomes = [Outcome(c, "done", {"metrics": _metrics(), "run": None}) for c in plan.cells()]
    results = plan.results(outcomes)
    assert len(results) == len(outcomes) == len({r.outcome.cell.key for r in results})
    full = [r for r in results if r.variant.method == "kmat" and r.variant.is_default]
    assert {r.variant.label for r in full} == {"K-MaT"}  # the shared cell keeps its method-table row
    assert {r.seed for r in full} == {1, 2}
    off = [r for r in results if r.variant.without_transport]
    assert [r.variant.sets for r in off] == [WITHOUT_TRANSPORT] * 2
    bars = report_plots.report_bar_data(results)["phantom"]
    assert list(bars) == ["K-MaT", "K-MaT without transport", "CoOp"]  # other ablation rows left out
    assert [len(v) for v in bars.values()] == [2, 2, 2]


def test_the_default_methods_are_the_labelled_ones() -> None:
    assert set(METHODS) == set(METHOD_LABELS)
    plan = benchmark.Plan(benchmark.Request(tasks=("phantom",), methods=METHODS, seeds=(1,)))
    assert [v.label for v in plan.methods] == [METHOD_LABELS[m] for m in METHODS]


def test_the_package_re_exports_its_main_names() -> None:
    import kmat_cli.experiments as experiments
    from kmat_cli.experiments import cells, runner

    assert experiments.Cell is cells.Cell and experiments.run_cells is runner.run_cells
    assert experiments.Plan is benchmark.Plan and experiments.METHODS == METHODS
