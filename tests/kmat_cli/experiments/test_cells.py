"""The grid's cells: keys, sharding, hi-val scoring, resuming an unfinished run, finding and scoring its run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, f1_score

from kmat_cli import registry
from kmat_cli.errors import UsageError
from kmat_cli.experiments.cells import Cell, read_cells, run_cell, shard_of

FAST = {"task.name": "phantom", "train.epochs": 2, "train.shots": 2}


def test_cell_key_is_stable_and_order_free() -> None:
    a = Cell({"task.name": "phantom", "method.name": "kmat", "train.seed": 1}, ("a.b=1", "c.d=2"))
    b = Cell(
        {"train.seed": 1, "method.name": "kmat", "task.name": "phantom", "x.y": None}, ("c.d=2", "a.b=1")
    )
    assert a.key == b.key and a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Cell(a.flags, a.sets, score="hi-val").key != a.key
    assert Cell({**a.flags, "train.seed": 2}, a.sets).key != a.key
    assert Cell.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert len(a.key) == 16 and a.key == Cell.from_dict(a.to_dict()).key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flags": {"out": "x"}},
        {"flags": {}, "sets": ("a.b=1", "a.b=2")},
        {"flags": {}, "score": "lo-test"},
    ],
)
def test_bad_cells_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        Cell(**kwargs)


def test_shards_partition_the_sorted_cells() -> None:
    cells = [Cell({"train.seed": s, "method.name": m}) for s in range(5) for m in ("coop", "kmat")]
    ordered = sorted(cells, key=lambda c: c.key)
    shards = [shard_of(cells + cells[:3], i, 3) for i in range(3)]  # duplicates count once
    assert sorted(c.key for s in shards for c in s) == [c.key for c in ordered]
    for i, shard in enumerate(shards):
        assert shard == [c for j, c in enumerate(ordered) if j % 3 == i]
    with pytest.raises(UsageError):
        shard_of(cells, 3, 3)


@pytest.mark.trains
def test_hi_val_cell_scores_the_high_end_validation_split_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Phantom = registry.get("tasks", "phantom")
    asked: list[tuple[str, str]] = []
    real = Phantom.split
    monkeypatch.setattr(Phantom, "split", lambda self, m, s: (asked.append((m, s)), real(self, m, s))[1])
    cell = Cell({**FAST, "method.name": "coop", "train.seed": 1}, score="hi-val")
    out = run_cell(cell, tmp_path)
    assert out.status == "done", out.error
    assert all(m == "hi" for m, _ in asked) and ("hi", "val") in asked and ("hi", "test") not in asked
    metrics = out.result["metrics"]
    assert metrics["split"] == "val" and "lo" not in metrics and metrics["hi"]["n"] == 100
    # independent truth: the exported high-end prompts and the image tower, scored by scikit-learn
    run = Path(out.result["run"])
    prompts = load_file(str(run / "prompts.safetensors"))["text_embeddings.hi"]
    backbone = registry.get("backbones", "phantom")()
    samples = real(Phantom(), "hi", "val")
    from kmat_cli.images import load_image

    pixels = torch.stack([backbone.preprocess(load_image(s.path)) for s in samples])
    preds = (backbone.encode_image(pixels) @ prompts.T).argmax(-1).numpy()
    labels = np.array([s.label for s in samples])
    assert metrics["hi"]["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    assert metrics["hi"]["macro_f1"] == pytest.approx(
        f1_score(labels, preds, average="macro", labels=range(8), zero_division=0), abs=1e-9
    )


@pytest.mark.trains
def test_an_unfinished_run_folder_is_resumed_not_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kmat_cli import train

    cell = Cell({**FAST, "train.epochs": 3, "method.name": "kmat", "train.seed": 2})
    real_save = train.Trainer.save

    def save_then_stop(self: train.Trainer) -> None:
        real_save(self)
        if self.epoch == 1:
            raise KeyboardInterrupt  # killed after the first epoch's checkpoint

    monkeypatch.setattr(train.Trainer, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_cell(cell, tmp_path / "a")
    folder = tmp_path / "a" / "cells" / cell.key
    assert (folder / "cell.json").is_file() and not (folder / "result.json").exists()
    monkeypatch.setattr(train.Trainer, "save", real_save)
    resumed = run_cell(cell, tmp_path / "a")
    assert resumed.status == "done" and resumed.how == "resumed"
    assert [p.name for p in (folder / "train").iterdir()] == ["phantom-kmat-s2-1"]
    history = [
        json.loads(line)
        for line in (folder / "train/phantom-kmat-s2-1/metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    fresh = run_cell(cell, tmp_path / "b")  # an uninterrupted run ends the same
    for m in ("hi", "lo", "H"):
        assert resumed.result["metrics"][m]["accuracy"] == fresh.result["metrics"][m]["accuracy"]
        assert resumed.result["metrics"][m]["macro_f1"] == fresh.result["metrics"][m]["macro_f1"]
    again = run_cell(cell, tmp_path / "a")
    assert again.how == "read back" and again.result == resumed.result
    assert set(read_cells([tmp_path / "a"])) == {cell.key}


@pytest.mark.trains
def test_a_cell_finds_its_run_by_what_the_folder_holds_not_by_its_name(tmp_path: Path) -> None:
    cell = Cell({**FAST, "method.name": "zeroshot", "train.seed": 1})
    first = run_cell(cell, tmp_path)
    assert first.status == "done", first.error
    folder = tmp_path / "cells" / cell.key
    (folder / "result.json").unlink()  # the finished marker lost: the run must be found again
    run = Path(first.result["run"])
    run.rename(run.with_name("renamed by hand"))
    again = run_cell(cell, tmp_path)
    assert again.status == "done" and again.how == "resumed"  # not trained anew
    assert [p.name for p in (folder / "train").iterdir()] == ["renamed by hand"]
    assert again.result["metrics"]["lo"] == first.result["metrics"]["lo"]


def test_a_cell_scores_its_run_by_the_names_the_training_steps_know(tmp_path: Path) -> None:
    from kmat_cli import config, workflow
    from kmat_cli.experiments import cells

    assert cells.SCORES == workflow.SCORES == ("test", "hi-val")
    cfg = config.build(flags={**FAST, "out": str(tmp_path)})
    with pytest.raises(UsageError, match="lo-test"):
        workflow.run_training(cfg, scores=("lo-test",))
    assert not any(tmp_path.iterdir())  # refused before anything was written
