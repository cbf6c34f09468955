"""K-MaT's defaults rule (docs/defaults.md) as code, and benchmark cells keyed by their resolved config."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from repo_paths import SUPPORT

from kmat_cli import config
from kmat_cli.experiments import benchmark
from kmat_cli.experiments.rule import (
    Candidate,
    TemplateCheck,
    choose_template,
    choose_transport,
    eligible,
    template_checks,
)

TOY_METHODS = str(SUPPORT)


# The toy world is named by import path (toyworld:ToyTask): reading its benchmark.json back needs the opt-in.
pytestmark = pytest.mark.usefixtures("trust_code")


# ------------------------------------------------------------------------------------ cell identity
def test_two_spellings_of_one_configuration_share_a_cell() -> None:
    plan = benchmark.Plan(benchmark.Request(tasks=("phantom",), methods=("kmat",), seeds=(1,)))
    transport = config.build(flags={"task.name": "phantom", "method.name": "kmat", "out": "."})["transport"]
    spelling = (
        f"transport.alpha={transport['alpha']}",
        f"transport.center={str(transport['center']).lower()}",
    )
    plain = benchmark.Variant("K-MaT", "kmat")
    spelt = benchmark.Variant("spelt out", "kmat", spelling)
    other = benchmark.Variant("other alpha", "kmat", ("transport.alpha=0.3",))
    assert plan.cell("phantom", plain, 1).key == plan.cell("phantom", spelt, 1).key
    assert plan.cell("phantom", plain, 1).key != plan.cell("phantom", other, 1).key
    assert plan.cell("phantom", plain, 1).key != plan.cell("phantom", plain, 2).key


def test_a_changed_default_makes_a_new_cell_and_runtime_keys_do_not() -> None:
    def key(flags: dict) -> str:
        request = benchmark.Request(tasks=("phantom",), methods=("kmat",), seeds=(1,), flags=flags)
        return benchmark.Plan(request).cell("phantom", benchmark.Variant("K-MaT", "kmat"), 1).key

    base = key({})
    assert key({"transport.epsilon": 0.05}) != base  # what a changed default does to the resolved config
    assert key({"train.device": "cpu", "train.threads": 2}) == base


def test_cell_identity_round_trips_through_cell_json() -> None:
    plan = benchmark.Plan(benchmark.Request(tasks=("phantom",), methods=("coop",), seeds=(1,)))
    cell = plan.cell("phantom", plan.methods[0], 1)
    again = type(cell).from_dict(json.loads(json.dumps(cell.to_dict())))
    assert again.key == cell.key and again.identity == cell.identity != ""


# ---------------------------------------------------------------------------------------- the rule
def test_template_step_picks_the_smaller_gap_to_the_prompts() -> None:
    checks = [
        {"init": {"description_template": "{description}", "cos_p_hi_lo": 0.95, "cos_t_hi_lo": -0.3}},
        {
            "init": {
                "description_template": "{modality}: {description}",
                "cos_p_hi_lo": 0.17,
                "cos_t_hi_lo": -0.3,
            }
        },
        {"init": {"description_template": "{description}", "cos_p_hi_lo": 0.0, "cos_t_hi_lo": -0.3}},  # later
        {"no": "checks"},
    ]
    found = template_checks(checks)
    assert [c.template for c in found] == ["{modality}: {description}", "{description}"]
    assert found[1].gap == pytest.approx(1.25)
    assert choose_template(found).template == "{modality}: {description}"
    assert choose_template([TemplateCheck("{description}", -0.2, -0.3)]).template == "{description}"
    assert choose_template([]) is None


def _c(
    label: str, alpha: float, val: float, cos: float, center: bool = False, normalize: bool = False
) -> Candidate:
    return Candidate(label, alpha, center, normalize, val, cos)


def test_transport_step_keeps_validation_within_one_point_then_highest_cosine() -> None:
    candidates = [
        _c("a", 0.1, 71.0, 0.99),  # 2.5 below the best validation: out, whatever its cosine
        _c("b", 0.5, 72.6, 0.55),
        _c("c", 0.9, 73.5, 0.945),
        _c("d", 0.9, 72.4, 0.90, center=True),  # 1.1 below: out
        _c("e", 0.5, 73.0, math.nan),  # no cosine recorded: not a candidate
    ]
    assert [c.label for c in eligible(candidates)] == ["b", "c"]
    assert choose_transport(candidates).label == "c"
    assert choose_transport([]) is None


def test_transport_ties_go_to_the_literal_reading() -> None:
    tied = [
        _c("0.9 centred", 0.9, 73.0, 0.950, center=True),
        _c("0.9", 0.9, 73.0, 0.948),
        _c("0.5", 0.5, 72.5, 0.9461),
        _c("0.1 normalised", 0.1, 72.2, 0.9459, normalize=True),
        _c("0.1", 0.1, 71.5, 0.940),  # within one point of 73.0? 1.5 below: out
    ]
    assert choose_transport(tied).label == "0.1 normalised"  # within 0.005 of 0.950 and alpha 0.1
    assert choose_transport(tied[:2]).label == "0.9"  # same alpha: center off wins


# ------------------------------------------------------------------------------------- end to end
def test_benchmark_defaults_rule_runs_the_candidates_and_reports_the_choice(
    tmp_path: Path, kmat_main, monkeypatch
) -> None:
    monkeypatch.syspath_prepend(TOY_METHODS)
    out = tmp_path / "bench"
    argv = ["benchmark", "--task", "toyworld:ToyTask", "--backbone", "toyworld:ToyBackbone", "--seeds", "1"]
    argv += ["--epochs", "1", "--shots", "2", "--no-plots", "--methods", "kmat", "--defaults-rule"]
    argv += ["--out", str(out), "--set", f"task.root={tmp_path / 'data'}"]
    got = kmat_main(*argv)
    assert got.code == 0, got.err
    plan = benchmark.Plan(benchmark.load_request(out))
    assert len(plan.candidates) == 12
    markdown = (out / "report.md").read_text()
    section = markdown.split("## Defaults rule")[1]
    candidates = []
    for variant in plan.candidates:
        result = json.loads(
            (out / "cells" / plan.cell("toyworld:ToyTask", variant, 1).key / "result.json").read_text()
        )
        transport = plan.config("toyworld:ToyTask", variant, 1)["transport"]
        candidates.append(
            Candidate(
                variant.label,
                transport["alpha"],
                transport["center"],
                transport["normalize"],
                100 * result["validation"]["accuracy"],
                result["checks"]["trained"]["cos_t_p"]["lo"],
            )
        )
    assert (
        f"Chosen (highest cos(t_lo, p_lo), ties below 0.005 to the literal reading): **{choose_transport(candidates).label}**"
        in section
    )
    assert "1. **Template** (first seed, at initialisation)" in section


def test_defaults_rule_needs_a_transport_with_shape_options() -> None:
    request = benchmark.Request(
        tasks=("phantom",), methods=(), seeds=(1,), defaults_rule=True, flags={"transport.name": "none"}
    )
    with pytest.raises(benchmark.UsageError, match="--defaults-rule"):
        benchmark.Plan(request)


def test_benchmark_report_with_plots_through_the_cli(tmp_path: Path, kmat_main, monkeypatch) -> None:
    """The report's plot section is rendered by the real command (plots on, the default), PNGs on disk."""
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(TOY_METHODS)
    out = tmp_path / "bench"
    argv = ["benchmark", "--task", "toyworld:ToyTask", "--backbone", "toyworld:ToyBackbone", "--seeds", "1"]
    argv += ["--epochs", "1", "--shots", "2", "--methods", "zeroshot,kmat", "--out", str(out)]
    argv += ["--set", f"task.root={tmp_path / 'data'}"]
    got = kmat_main(*argv)
    assert got.code == 0, got.err
    markdown = (out / "report.md").read_text()
    section = markdown.split("## Plots")[1]
    assert "No plots" not in section
    pngs = sorted((out / "plots").glob("*.png"))
    assert pngs and all(f"plots/{p.name}" in section for p in pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
