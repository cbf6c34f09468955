"""``kmat benchmark --executor ray`` on a local Ray (2 CPUs): the same results as the local executor, and
image features extracted once, before any cell, and reused by every cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_helpers import SMALL
from safetensors import safe_open

pytest.importorskip("ray")


def _by_run(root: Path) -> dict[tuple[str, int], dict]:
    found = {}
    for result in (root / "cells").glob("*/result.json"):
        flags = json.loads((result.parent / "cell.json").read_text())["flags"]
        found[(flags["method.name"], flags["train.seed"])] = json.loads(result.read_text())
    return found


def test_ray_executor_matches_local_and_extracts_features_once(
    small_bench: Path, tmp_path: Path, kmat_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmat_cli import registry
    from kmat_cli.experiments.cells import read_cells
    from kmat_cli.experiments.runner import feature_jobs

    world = registry.get("tasks", "phantom")().root  # the generated world stays shared
    cache = tmp_path / "cache"  # an empty feature cache, seen by the Ray workers too
    monkeypatch.setenv("KMAT_CACHE", str(cache))
    out = tmp_path / "ray"
    got = kmat_main("benchmark", *SMALL, "--methods", "zeroshot,kmat", "--out", str(out), "--executor", "ray",
                     "--jobs", "2", "--set", f"task.root={world}")  # fmt: skip
    assert got.code == 0, got.err
    ray_runs, local_runs = _by_run(out), _by_run(small_bench)
    assert sorted(ray_runs) == [("kmat", 1), ("kmat", 2), ("zeroshot", 1), ("zeroshot", 2)]
    for key, result in ray_runs.items():
        assert result["metrics"]["hi"] == local_runs[key]["metrics"]["hi"]  # confusion matrices included
        assert result["metrics"]["lo"] == local_runs[key]["metrics"]["lo"]
        assert result["metrics"]["H"] == local_runs[key]["metrics"]["H"]
        assert Path(out / "cells" / result["key"] / result["run"] / "prompts.safetensors").is_file()
    # features: one shard per feature job, every image in exactly one shard, all written before any cell
    shards = sorted((cache / "features").glob("*/*.safetensors"))
    keys = []
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            keys += json.loads(f.metadata()["keys"])
    cells = [o.cell for o in read_cells([out]).values()]
    assert len(shards) == len(feature_jobs(cells)) == 4  # hi/val, hi/test, lo/test, the few-shot draws
    assert len(keys) == len(set(keys)) >= 500
    first_cell = min(p.stat().st_mtime_ns for p in out.glob("cells/*/train/*/config.yaml"))
    assert max(s.stat().st_mtime_ns for s in shards) < first_cell
    # rerun: every cell read back (no Ray started for nothing)
    again = kmat_main("benchmark", *SMALL, "--methods", "zeroshot,kmat", "--out", str(out), "--executor", "ray",
                       "--jobs", "2", "--set", f"task.root={world}")  # fmt: skip
    assert again.code == 0 and again.err.count("done (read back)") == 4 and "cells to run" not in again.err
