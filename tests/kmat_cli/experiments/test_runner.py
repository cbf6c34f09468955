"""Cells run in this process or in a local process pool: each distinct image through the image tower once,
the pool's results equal the in-process ones, and the pool survives a worker that dies."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmat_cli import registry
from kmat_cli.experiments.cells import Cell
from kmat_cli.experiments.runner import run_cells

FAST = {"task.name": "phantom", "train.epochs": 2, "train.shots": 2}


@pytest.mark.trains
def test_local_grid_runs_the_image_tower_once_per_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmat_cli import fewshot

    Phantom = registry.get("tasks", "phantom")
    world = Phantom().root  # the generated world stays shared; the feature cache starts empty
    monkeypatch.setenv("KMAT_CACHE", str(tmp_path / "cache"))
    Backbone = registry.get("backbones", "phantom")
    rows: list[int] = []
    real = Backbone.encode_image
    monkeypatch.setattr(
        Backbone, "encode_image", lambda self, px: (rows.append(px.shape[0]), real(self, px))[1]
    )
    cells = [
        Cell({**FAST, "task.root": str(world), "method.name": m, "train.seed": s})
        for m in ("zeroshot", "coop")
        for s in (1, 2)
    ]
    outcomes = run_cells(cells, tmp_path / "grid", progress=False)
    assert [o.status for o in outcomes] == ["done"] * 4
    task = Phantom(root=str(world))
    shots = {
        s.path
        for seed in (1, 2)
        for s in fewshot.few_shot(task.split("hi", "train"), task.class_names, 2, seed)
    }
    tests = {s.path for m in ("hi", "lo") for s in task.split(m, "test")}
    val = {s.path for s in task.split("hi", "val")}  # every cell records its high-end validation accuracy
    assert len(tests) == 500 and 16 <= len(shots) <= 32
    assert sum(rows) == len(shots) + len(tests) + len(val)  # each distinct image through the tower once


@pytest.mark.slow
def test_process_pool_gives_the_in_process_results(tmp_path: Path) -> None:
    cells = [Cell({**FAST, "method.name": m, "train.seed": 1}) for m in ("zeroshot", "kmat")]
    pooled = run_cells(cells, tmp_path / "pool", jobs=2, progress=False)
    inline = run_cells(cells, tmp_path / "inline", progress=False)
    assert [o.status for o in pooled] == ["done", "done"]
    for a, b in zip(pooled, inline, strict=True):
        assert a.result["metrics"]["hi"] == b.result["metrics"]["hi"]
        assert a.result["metrics"]["lo"] == b.result["metrics"]["lo"]


@pytest.mark.spawns
def test_pool_survives_a_worker_dying_during_feature_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench_helpers import die_extracting_features

    from kmat_cli.experiments import runner as executors

    monkeypatch.setattr(executors, "features_entry", die_extracting_features)
    cells = [Cell({**FAST, "method.name": "zeroshot", "train.seed": s}) for s in (1, 2)]
    outcomes = run_cells(cells, tmp_path / "pool", jobs=2, progress=False)
    assert [o.status for o in outcomes] == ["done", "done"]  # a new pool ran the cells
