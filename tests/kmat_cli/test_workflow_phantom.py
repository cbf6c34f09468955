"""Runs on the real default world: the phantom task and the shipped phantom backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kmat_cli import config, evaluate, registry, workflow
from kmat_cli.api import MODALITIES
from kmat_cli.images import load_image

pytestmark = pytest.mark.usefixtures("trust_code")


def phantom_cfg(tmp_path: Path, *sets: str, method: str = "kmat", epochs: int = 1, shots: int = 2) -> dict:
    flags = {
        "method.name": method,
        "train.epochs": epochs,
        "train.shots": shots,
        "out": str(tmp_path / "runs"),
    }
    return config.build(flags=flags, sets=list(sets))


def test_defaults_are_the_phantom_world_and_the_protocol() -> None:
    cfg = config.build()
    assert (cfg["task"]["name"], cfg["backbone"]["name"], cfg["method"]["name"]) == (
        "phantom",
        "phantom",
        "kmat",
    )
    assert (
        cfg["transport"]["name"] == "fgw" and cfg["transport"]["alpha"] == 0.1 and cfg["transport"]["center"]
    )  # docs/defaults.md
    t = cfg["train"]
    assert (t["shots"], t["epochs"], t["batch_size"], t["lr"], t["momentum"], t["weight_decay"]) == (
        16,
        50,
        4,
        0.0025,
        0.9,
        0.0005,
    )
    assert (t["warmup_epochs"], t["warmup_lr"], t["scheduler"]) == (1, 1e-5, "cosine")
    m = cfg["method"]
    assert (m["n_ctx"], m["csc"], m["msc"], m["anchor"], m["transport"]) == (4, True, True, True, True)


def test_phantom_training_reads_only_high_end_train_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kmat_cli.features as features

    world = registry.get("tasks", "phantom")().root  # the generated world stays shared
    monkeypatch.setenv("KMAT_CACHE", str(tmp_path / "cache"))  # but no cached features: every image is read
    opened: list[Path] = []
    real = features.load_image
    monkeypatch.setattr(features, "load_image", lambda p: (opened.append(Path(p)), real(p))[1])
    Phantom = registry.get("tasks", "phantom")
    asked: list[tuple[str, str]] = []
    real_split = Phantom.split
    monkeypatch.setattr(
        Phantom, "split", lambda self, m, s: (asked.append((m, s)), real_split(self, m, s))[1]
    )
    cfg = phantom_cfg(tmp_path, f"task.root={world}")
    run = workflow.run_training(cfg, scores=(), progress=False)
    assert asked == [("hi", "train")]
    hi_train = {str(s.path) for s in Phantom(root=str(world)).split("hi", "train")}
    assert len(opened) == 16 and {str(p) for p in opened} <= hi_train
    assert run.finished


def test_phantom_export_alone_reproduces_evaluate(tmp_path: Path) -> None:
    run = workflow.run_training(phantom_cfg(tmp_path), progress=False, show=False)
    metrics = json.loads(run.file("metrics.json").read_text())
    _, _, parts, method = workflow.load_trained(run.path)
    task = parts.task
    splits = {m: task.split(m, "test") for m in MODALITIES}
    ev = evaluate.evaluate_method(method, parts.backbone, splits, task.class_names, progress=False)
    # plain torch: the exported tensors and the image tower alone (built without a text tower)
    tensors = load_file(str(run.file("prompts.safetensors")))
    tower = registry.get("backbones", "phantom")(vision_only=True)
    with torch.no_grad():
        for m in MODALITIES:
            pixels = torch.stack([tower.preprocess(load_image(s.path)) for s in splits[m]])
            f = tower.model.encode_image(pixels)
            f = f / f.norm(dim=-1, keepdim=True)
            preds = (tower.logit_scale * f @ tensors[f"text_embeddings.{m}"].T).argmax(-1)
            assert torch.equal(preds, ev.preds[m])
            labels = torch.tensor([s.label for s in splits[m]])
            assert metrics[m]["accuracy"] == pytest.approx(float((preds == labels).double().mean()))


@pytest.mark.parametrize("method", ["zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop", "kmat"])
def test_every_method_trains_on_phantom(tmp_path: Path, method: str) -> None:
    run = workflow.run_training(phantom_cfg(tmp_path, method=method, epochs=2, shots=4), progress=False)
    rows = (
        [json.loads(x) for x in run.file("metrics.jsonl").read_text().splitlines()]
        if method != "zeroshot"
        else []
    )
    assert all(r["steps"] == 8 for r in rows)
    assert json.loads(run.file("metrics.json").read_text())["hi"]["n"] == 200
