"""The K-MaT ablation's deviation rows and the defaults rule's inputs recorded by cells and shown in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_paths import SUPPORT

from kmat_cli.experiments import benchmark

TOY_METHODS = str(SUPPORT)


# The toy world is named by import path (toyworld:ToyTask): reading its benchmark.json back needs the opt-in.
pytestmark = pytest.mark.usefixtures("trust_code")


def test_ablation_rows_are_variants_over_template_center_normalize_alpha() -> None:
    plan = benchmark.Plan(benchmark.Request(tasks=("phantom",), methods=(), seeds=(1,), ablation=True))
    rows = {v.label: v for v in plan.ablation}
    assert [label for label, _ in benchmark.ABLATION][:4] == [v.label for v in plan.ablation][:4]
    expected = {
        "literal K-MaT (bare descriptions, plain transport)": ("{description}", False, False),
        "modality-aware anchor": ("{modality}: {description}", False, False),
        "centred/normalised transport": ("{description}", True, True),
        "modality-aware anchor + centred/normalised transport": ("{modality}: {description}", True, True),
    }
    for label, (template, center, normalize) in expected.items():
        cfg = plan.config("phantom", rows[label], 1)
        assert cfg["method"]["description_template"] == template
        assert (cfg["transport"]["center"], cfg["transport"]["normalize"]) == (center, normalize)
        assert cfg["method"]["anchor"] and cfg["method"]["transport"]
        assert cfg["method"]["agreement"] is False  # the 2 x 2 of template and transport shape, no rule
    full = plan.config("phantom", rows["full K-MaT (fgw, alpha 0.1)"], 1)
    assert full["method"]["agreement"] is True
    alphas = sorted(
        plan.config("phantom", v, 1)["transport"]["alpha"] for v in plan.ablation if "alpha" in v.label
    )
    assert alphas == [0.1, 0.5, 0.9]


def test_no_deviation_rows_without_transport_options() -> None:
    request = benchmark.Request(
        tasks=("phantom",), methods=(), seeds=(1,), ablation=True, flags={"transport.name": "none"}
    )
    labels = [v.label for v in benchmark.Plan(request).ablation]
    assert labels == [label for label, _ in benchmark.ABLATION]


def _row_values(markdown: str, label: str) -> list[str]:
    for line in markdown.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if cols[0] == label:
            return cols
    raise AssertionError(f"no row {label!r}")


def test_tiny_grid_records_and_reports_the_rule_inputs(tmp_path: Path, kmat_main, monkeypatch) -> None:
    monkeypatch.syspath_prepend(TOY_METHODS)
    out = tmp_path / "bench"
    argv = ["benchmark", "--task", "toyworld:ToyTask", "--backbone", "toyworld:ToyBackbone", "--seeds", "1"]
    argv += [
        "--epochs",
        "1",
        "--shots",
        "2",
        "--no-plots",
        "--methods",
        "kmat",
        "--ablation",
        "--out",
        str(out),
    ]
    argv += ["--set", f"task.root={tmp_path / 'data'}"]
    got = kmat_main(*argv)
    assert got.code == 0, got.err
    markdown = (out / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| configuration"))
    assert header.rstrip().endswith("| Hi val | cos(t_lo, p_lo) |")
    plan = benchmark.Plan(benchmark.load_request(out))
    for variant in plan.ablation:
        cell = plan.cell("toyworld:ToyTask", variant, 1)
        folder = out / "cells" / cell.key
        (run,) = folder.glob("train/*/")
        val = json.loads((run / "metrics-val.json").read_text())["hi"]["accuracy"]
        cos = json.loads((run / "checks.json").read_text())["trained"]["cos_t_p"]["lo"]
        result = json.loads((folder / "result.json").read_text())
        assert result["validation"]["accuracy"] == val and result["checks"]["trained"]["cos_t_p"]["lo"] == cos
        cols = _row_values(markdown.split("## K-MaT ablation")[1], variant.label)
        assert float(cols[-2]) == pytest.approx(100 * val, abs=0.051)
        assert float(cols[-1]) == pytest.approx(cos, abs=0.00051)
