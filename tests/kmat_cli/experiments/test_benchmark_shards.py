"""Shards and merge give the unsharded report; usage errors exit 2 with one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from bench_helpers import METHODS, SMALL


def test_two_shards_merged_equal_one_unsharded_report(small_bench: Path, tmp_path: Path, kmat_main) -> None:
    keys = []
    for i in (0, 1):
        got = kmat_main("benchmark", *SMALL, "--methods", METHODS, "--out", str(tmp_path / f"s{i}"),
                         "--shard-index", str(i), "--num-shards", "2")  # fmt: skip
        assert got.code == 0, got.err
        assert "cells belong to other shards" in (tmp_path / f"s{i}" / "report.md").read_text()
        keys.append({p.name for p in (tmp_path / f"s{i}" / "cells").iterdir()})
    assert not keys[0] & keys[1] and keys[0] | keys[1] == {p.name for p in (small_bench / "cells").iterdir()}
    merged = kmat_main("benchmark", "merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out",
                        str(tmp_path / "m"), "--no-plots")  # fmt: skip
    assert merged.code == 0, merged.err
    assert (tmp_path / "m" / "report.csv").read_text() == (small_bench / "report.csv").read_text()
    tables = [(f / "report.md").read_text().split("## Wall time")[0] for f in (tmp_path / "m", small_bench)]
    assert tables[0] == tables[1]
    assert "None: every cell finished." in (tmp_path / "m" / "report.md").read_text()
    # a shard folder alone is an incomplete merge: the other shard's cells are reported missing, exit 1
    alone = kmat_main("benchmark", "merge", str(tmp_path / "s0"), "--out", str(tmp_path / "m0"), "--no-plots")
    assert alone.code == 1 and "No result for" in (tmp_path / "m0" / "report.md").read_text()


def test_merge_refuses_shards_of_different_benchmarks(tmp_path: Path, kmat_main) -> None:
    for name, seeds in (("a", [1]), ("b", [2])):
        (tmp_path / name).mkdir()
        request = {"format": "kmat.benchmark/v1", "tasks": ["phantom"], "methods": ["coop"], "seeds": seeds}
        (tmp_path / name / "benchmark.json").write_text(json.dumps(request))
    got = kmat_main(
        "benchmark", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")
    )
    assert got.code == 2 and "different benchmark" in got.err and len(got.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "coop"], "needs --task"),
        (["--task", "phantom", "--seeds", "one"], "--seeds 'one'"),
        (["--task", "phantom", "--methods", "nosuch"], "nosuch"),
        (["--task", "phantom", "--set", "train.nosuch=1"], "train.nosuch"),
        (["--task", "phantom", "--shard-index", "2", "--num-shards", "2"], "--shard-index 2"),
        (["--task", "phantom", "--executor", "dask"], "--executor 'dask'"),
    ],
)
def test_usage_errors_exit_2_before_any_cell_runs(
    args: list[str], message: str, tmp_path: Path, kmat_main
) -> None:
    got = kmat_main("benchmark", *args, "--out", str(tmp_path / "b"))
    assert got.code == 2 and message in got.err and len(got.err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "cells").exists()


def test_ray_executor_without_ray_names_the_extra(
    tmp_path: Path, kmat_main, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    got = kmat_main("benchmark", "--task", "phantom", "--executor", "ray", "--out", str(tmp_path / "b"))
    assert got.code == 2 and "pip install 'kmat[distributed]'" in got.err
    assert len(got.err.strip().splitlines()) == 1
