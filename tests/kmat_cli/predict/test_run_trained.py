"""kmat predict on a run trained and exported by kmat itself (the toy world of tests/support/toyworld.py): its labels
equal kmat evaluate's predictions through --run; the exported file alone is refused, because its backbone
is a ``module:attr`` import path, which only a run's config may name, and only with KMAT_TRUST_CODE=1."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import toyworld

from kmat_cli import config, evaluate, export, workflow
from kmat_cli.errors import UsageError
from kmat_cli.predict import run_predict
from kmat_cli.runs import Run


def test_predict_equals_evaluate_on_a_trained_run(tmp_path: Path, capsys, monkeypatch) -> None:
    flags = {
        "task.name": "toyworld:ToyTask",
        "backbone.name": "toyworld:ToyBackbone",
        "method.name": "kmat",
        "train.epochs": 2,
        "train.shots": 4,
        "out": str(tmp_path / "runs"),
    }
    cfg = config.build(flags=flags, sets=[f"task.root={tmp_path / 'data'}"])
    run = workflow.run_training(cfg, scores=(), progress=False)
    meta = export.read_prompts(run.file(Run.PROMPTS)).metadata
    assert meta["kmat.backbone_config"]  # written by training's export
    with pytest.raises(UsageError, match="KMAT_TRUST_CODE=1"):  # the run's config names code
        workflow.load_trained(run.path)
    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
    _, _, parts, method = workflow.load_trained(run.path)
    task = toyworld.ToyTask(root=str(tmp_path / "data"))
    splits = {m: task.split(m, "test") for m in ("hi", "lo")}
    ev = evaluate.evaluate_method(method, parts.backbone, splits, task.class_names, progress=False)
    split = splits["lo"]
    want = [task.class_names[int(k)] for k in ev.preds["lo"]]
    folder = split[0].path.parent
    out = tmp_path / "rows.csv"
    summary = run_predict([folder], run=run.path, output=out, workers=1, batch_size=8)
    assert summary.failed == 0
    with open(out, newline="") as handle:
        rows = {Path(r["path"]).name: r["label"] for r in csv.DictReader(handle)}
    assert [rows[s.path.name] for s in split] == want
    with pytest.raises(UsageError, match=r"unknown backbone 'toyworld:ToyBackbone'.*--run RUN"):
        run_predict([folder], embeddings=run.file(Run.PROMPTS), output=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    assert "no vision_only option" in capsys.readouterr().err  # the toy backbone is built whole, said so
    assert torch.is_tensor(ev.preds["lo"])
