"""`kmat benchmark --knowledge`: the plan (axis values in each cell's config, shared cells of methods that
read no descriptions), the report's methods x regimes table and paired differences against a recompute."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from kmat_cli.experiments import axes, benchmark, knowledge_report, paired
from kmat_cli.experiments.cells import Outcome

REGIMES = ("shipped", "generic")


def plan() -> benchmark.Plan:
    request = benchmark.Request(
        tasks=("phantom",),
        methods=("zeroshot", "descriptions", "kmat"),
        seeds=(1, 2),
        axes=(("task.seed", (0, 1)), (axes.KNOWLEDGE, REGIMES)),
        knowledge_rows=True,
    )
    return benchmark.Plan(request)


def test_every_block_sets_its_axis_values_and_blind_methods_share_cells() -> None:
    p = plan()
    assert len(p.block_names) == 4
    by_block = {}
    for name, block in p.blocks.items():
        cfg = p.config(name, p.methods[1], 1)
        assert cfg["task"]["seed"] == block.value("task.seed")
        assert cfg["knowledge"]["regime"] == block.value(axes.KNOWLEDGE)
        by_block[name] = p.cell(name, p.methods[0], 1).key  # zero-shot
    shipped = [k for n, k in by_block.items() if "shipped" in n]
    generic = [k for n, k in by_block.items() if "generic" in n]
    assert shipped == generic and len(set(shipped)) == 2  # one zero-shot cell per world, not per regime
    kmat = next(v for v in p.methods if v.method == "kmat")
    assert p.config(p.block_names[0], kmat, 1)["method"]["agreement"] is True  # K-MaT's default: the rule
    assert p.knowledge[0].label == "K-MaT, agreement off"
    for fixed in p.knowledge:  # the configurations the rule is measured against do without it
        assert p.config(p.block_names[0], fixed, 1)["method"]["agreement"] is False


def _outcomes(p: benchmark.Plan, rng: np.random.Generator) -> tuple[dict, dict]:
    """Random per-image correctness for every cell; returns outcomes by key and vectors by (block, row, seed)."""
    layout = p.layout()
    by_key, vectors = {}, {}
    for table in layout.tables:
        for (block, row, seed), key in table.cells.items():
            if key not in by_key:
                c = (rng.random(30) < rng.uniform(0.2, 0.8)).astype(np.uint8)
                metrics = {"lo": {"accuracy": float(c.mean()), "correct": "".join(map(str, c))}}
                by_key[key] = Outcome(p.cell(block, p.knowledge[0], seed), "done", {"metrics": metrics})
            correct = by_key[key].result["metrics"]["lo"]["correct"]
            vectors[(block, row, seed)] = paired.correctness(correct)
    return by_key, vectors


def test_regime_table_and_paired_differences_equal_a_recompute() -> None:
    p = plan()
    by_key, vectors = _outcomes(p, np.random.default_rng(0))
    layout = p.layout()
    md = knowledge_report.section(p, layout, by_key, layout.tables)
    names = {(b.value("task.seed"), b.value(axes.KNOWLEDGE)): n for n, b in p.blocks.items()}
    for regime in REGIMES:
        values = [
            100 * vectors[(names[(w, regime)], "Descriptions", s)].mean() for w in (0, 1) for s in (1, 2)
        ]
        want = f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f} (n=4)"
        row = next(line for line in md.splitlines() if line.startswith("| Descriptions |"))
        assert row.split("|")[2 + REGIMES.index(regime)].strip() == want
    rule, desc = "K-MaT", "Descriptions"
    got = knowledge_report.difference(p, layout, by_key, rule, desc, "generic", None)
    diffs = [
        vectors[(names[(w, "generic")], rule, s)].mean() - vectors[(names[(w, "generic")], desc, s)].mean()
        for w in (0, 1)
        for s in (1, 2)
    ]
    assert got.n == 4 and got.mean == pytest.approx(100 * statistics.fmean(diffs))
    assert got.low <= got.mean <= got.high
    cross = knowledge_report.difference(p, layout, by_key, rule, rule, "generic", "shipped")
    own = [
        vectors[(names[(w, "generic")], rule, s)].mean() - vectors[(names[(w, "shipped")], rule, s)].mean()
        for w in (0, 1)
        for s in (1, 2)
    ]
    assert cross.mean == pytest.approx(100 * statistics.fmean(own))
    assert got.markdown() in md


def test_cli_knowledge_grid_writes_the_section_and_saves_the_regime(tmp_path) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / "bench"
    args = ["benchmark", "--task", "phantom", "--methods", "descriptions", "--knowledge", "shipped,shuffled"]
    args += ["--seeds", "1", "--epochs", "1", "--shots", "1", "--no-plots", "--out", str(out)]
    cmd = [sys.executable, "-m", "kmat_cli.app", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    text = (out / "report.md").read_text()
    assert "## Knowledge regimes" in text and "### Paired differences" in text
    regimes = set()
    for spec in (out / "cells").glob("*/cell.json"):
        (cfg,) = spec.parent.glob("train/*/config.yaml")
        import yaml

        regimes.add(yaml.safe_load(cfg.read_text())["knowledge"]["regime"])
        assert json.loads(spec.read_text())["flags"]["method.name"] in ("descriptions", "kmat")
        (metrics_file,) = spec.parent.glob("train/*/metrics.json")
        for m in ("hi", "lo"):  # per-image correctness agrees with the accuracy and the confusion matrix
            got = json.loads(metrics_file.read_text())[m]
            correct = paired.correctness(got["correct"])
            assert correct.size == got["n"] and correct.mean() == pytest.approx(got["accuracy"])
            assert correct.sum() == sum(got["confusion"][k][k] for k in range(len(got["confusion"])))
    assert regimes == {"shipped", "shuffled"}


def test_vary_parses_values_as_yaml_and_rejects_a_bad_item() -> None:
    from kmat_cli.errors import UsageError

    assert axes.parse_vary(["task.seed=0, 1,11"]) == (("task.seed", (0, 1, 11)),)
    for bad in ("task.seed", "task.seed=", "=1,2"):
        with pytest.raises(UsageError, match="--vary"):
            axes.parse_vary([bad])
    with pytest.raises(UsageError, match="twice"):
        axes.parse_vary(["task.seed=0", "task.seed=1"])
