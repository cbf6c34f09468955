"""benchmarks/speed_runs.py: row 4's cost of a run per method, projected from its measured step and
checkpoint, with the checkpoints written as a run writes them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import speed_runs
import torch


def test_run_costs_of_methods(speed_toy, tmp_path: Path) -> None:
    backbone, parts, *_ = speed_toy
    test = {"hi": torch.randn(10, backbone.embed_dim), "lo": torch.randn(6, backbone.embed_dim)}
    costs = speed_runs.run_costs(parts, ["zeroshot", "coop", "cocoop"], tmp_path, test, reps=1, eval_subset=4)
    assert list(costs) == ["zeroshot", "coop", "cocoop"]
    for name, c in costs.items():
        assert set(c) == {"setup", "step", "save", "fit", "eval"}
        assert all(math.isfinite(v) and v >= 0 for v in c.values())
        if name != "zeroshot":  # 50 epochs of 12 steps (48 shots, batch 4) and a checkpoint each
            assert c["fit"] == pytest.approx(50 * (12 * c["step"] + c["save"])) and c["step"] > 0
    assert costs["zeroshot"]["fit"] == 0.0
    assert (tmp_path / "coop" / "metrics.jsonl").is_file()  # checkpoints written, as in a run
