"""Whole runs on the toy world: what training reads, checkpoints and resume, export, evaluate, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import toyworld
from safetensors import safe_open
from safetensors.torch import load_file
from toyworld import toy_cfg, train_argv
from typer.testing import CliRunner

from kmat_cli import checkpoint, config, evaluate, export, workflow
from kmat_cli.api import MODALITIES
from kmat_cli.images import load_image
from kmat_cli.runs import open_run

pytestmark = pytest.mark.usefixtures("trust_code")

KMAT = str(Path(sys.executable).with_name("kmat"))
TOY_PATH = str(Path(toyworld.__file__).parent)


def test_training_never_reads_low_end_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kmat_cli.features as features

    monkeypatch.setenv("KMAT_CACHE", str(tmp_path / "cache"))  # nothing cached: every image is decoded
    opened: list[Path] = []
    real = features.load_image
    monkeypatch.setattr(features, "load_image", lambda p: (opened.append(Path(p)), real(p))[1])
    toyworld.ToyTask.requested.clear()
    run = workflow.run_training(toy_cfg(tmp_path), scores=(), progress=False)
    assert toyworld.ToyTask.requested == [("hi", "train")]
    assert opened and all(p.parent.name == "hi-train" for p in opened)
    assert run.finished and not run.file("metrics.json").exists()
    # evaluation, afterwards, is the first to touch the low-end split
    workflow.evaluate_run(run.path, progress=False, show=False)
    assert ("lo", "test") in toyworld.ToyTask.requested


def test_run_folder_contents_and_metrics_files(tmp_path: Path) -> None:
    run = workflow.run_training(toy_cfg(tmp_path, "train.batch_size=2"), progress=False)
    assert run.finished
    names = {p.name for p in run.path.iterdir()}
    assert {
        "config.yaml",
        "env.json",
        "run.json",
        "metrics.jsonl",
        "metrics.json",
        "checkpoint.json",
        "checkpoint-0003.safetensors",
        "prompts.safetensors",
    } <= names
    lines = [json.loads(x) for x in run.file("metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]
    assert set(lines[0]["losses"]) == {"ce", "anchor", "transport"}
    cosine = [0.0025 * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    assert [r["lr"] for r in lines] == pytest.approx(cosine)  # 3 epochs: no warm-up (at most a tenth)
    assert all(r["steps"] == 6 for r in lines)  # 12 shots / batch 2
    assert all(r["loss"] == pytest.approx(sum(r["losses"].values())) for r in lines)
    metrics = json.loads(run.file("metrics.json").read_text())
    for m in MODALITIES:
        assert metrics[m]["n"] == 36 and sum(map(sum, metrics[m]["confusion"])) == 36
    assert metrics["run"]["method"] == "kmat" and metrics["timing"]["steps"] == 18


@pytest.mark.parametrize("transport", ["fgw", "gw"])
def test_in_process_resume_continues_exactly(tmp_path: Path, transport: str) -> None:
    """A run interrupted after epoch 2 and resumed ends bit-for-bit where an uninterrupted run ends: the
    checkpoint carries the transport's warm start (with gw, a cold restart would find another plan)."""
    cfg = toy_cfg(tmp_path, "train.batch_size=3", f"transport.name={transport}", epochs=5)
    full = workflow.run_training(cfg, scores=(), progress=False)

    from kmat_cli import train

    original = train.Trainer.save

    def save_then_die(self: train.Trainer) -> None:
        original(self)
        if self.epoch == 2:
            raise KeyboardInterrupt

    train.Trainer.save = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            workflow.run_training(cfg, scores=(), progress=False)
    finally:
        train.Trainer.save = original
    cut = open_run(tmp_path / "runs" / "train" / "toyworld_ToyTask-kmat-s1-2")
    saved = checkpoint.load(cut.path)
    assert cut.status == "interrupted" and saved.epoch == 2
    assert set(saved.solver) == {"plan", "g"} and saved.solver["plan"].shape == (3, 3)
    workflow.run_training(config.load_yaml(cut.file("config.yaml")), run=cut, scores=(), progress=False)
    a, b = load_file(full.file("prompts.safetensors")), load_file(cut.file("prompts.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("time", "step_time")
    rows = [
        [
            {k: v for k, v in json.loads(x).items() if k not in drop}
            for x in r.file("metrics.jsonl").read_text().splitlines()
        ]
        for r in (full, cut)
    ]
    assert rows[0] == rows[1]


def test_checkpoint_round_trips_optimizer_and_rng(tmp_path: Path) -> None:
    p = torch.nn.Parameter(torch.randn(3, 4))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
    torch.manual_seed(7)
    checkpoint.save(
        tmp_path, epoch=2, method={"w": p.detach()}, optimizer=opt.state_dict(), history=[{"epoch": 1}]
    )
    expected = torch.rand(5)
    torch.manual_seed(99)
    ck = checkpoint.load(tmp_path, restore_rng=True)
    assert torch.equal(torch.rand(5), expected)
    opt2 = torch.optim.SGD([torch.nn.Parameter(p.detach().clone())], lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt2.load_state_dict(ck.optimizer)
    assert torch.equal(
        opt2.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"]
    )
    assert ck.epoch == 2 and torch.equal(ck.method["w"], p.detach()) and ck.history == [{"epoch": 1}]
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def test_exported_file_alone_reproduces_evaluate_predictions(tmp_path: Path) -> None:
    run = workflow.run_training(toy_cfg(tmp_path), progress=False)
    path = run.file("prompts.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert {"text_embeddings.hi", "text_embeddings.lo"} <= keys
    assert (
        meta["kmat.format"] == "kmat.prompts/v1" and json.loads(meta["kmat.class_names"]) == toyworld.CLASSES
    )
    assert meta["kmat.backbone"] == "toy-backbone-v1" and meta["kmat.embed_dim"] == "8"
    assert json.loads(meta["kmat.modalities"]) == toyworld.ToyTask.modalities and meta["kmat.task"] == "toy"
    assert json.loads(meta["kmat.preprocess"])["image_size"] == 4 and meta["kmat.version"]
    tensors = load_file(str(path))
    for m in MODALITIES:
        e = tensors[f"text_embeddings.{m}"]
        assert e.dtype == torch.float32 and e.shape == (3, 8)
        torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))

    # kmat evaluate's predictions and metrics ...
    metrics = workflow.evaluate_run(run.path, progress=False, show=False)
    _, _, parts, method = workflow.load_trained(run.path)
    task = toyworld.ToyTask(root=str(tmp_path / "data"))
    splits = {m: task.split(m, "test") for m in MODALITIES}
    ev = evaluate.evaluate_method(method, parts.backbone, splits, task.class_names, progress=False)
    # ... equal plain torch: the image tower and the exported tensors, nothing else of kmat
    image_tower = toyworld.ToyBackbone()
    scale = float(meta["kmat.logit_scale"])
    for m in MODALITIES:
        pixels = torch.stack([image_tower.preprocess(load_image(s.path)) for s in splits[m]])
        f = torch.nn.functional.normalize(image_tower.encode_image(pixels), dim=-1)
        preds = (scale * f @ tensors[f"text_embeddings.{m}"].t()).softmax(-1).argmax(-1)
        assert torch.equal(preds, ev.preds[m])
        labels = torch.tensor([s.label for s in splits[m]])
        assert metrics[m]["accuracy"] == pytest.approx(float((preds == labels).double().mean()))
    assert export.read_prompts(path).class_names == toyworld.CLASSES


@pytest.mark.parametrize("method", ["zeroshot", "cocoop"])
def test_untrained_and_image_conditioned_methods_run_end_to_end(tmp_path: Path, method: str) -> None:
    run = workflow.run_training(toy_cfg(tmp_path, method=method, epochs=2), progress=False)
    metrics = json.loads(run.file("metrics.json").read_text())
    assert run.finished and 0 <= metrics["H"]["accuracy"] <= 1
    assert checkpoint.exists(run.path) == (method != "zeroshot")
    again = workflow.evaluate_run(run.path, progress=False, show=False)
    assert again["hi"]["confusion"] == metrics["hi"]["confusion"]  # evaluate reproduces train's evaluation


def test_cli_train_evaluate_export_through_the_typer_app(tmp_path: Path) -> None:
    from kmat_cli.app import app

    runner = CliRunner()
    args = [*train_argv(tmp_path, epochs=2, shots=4), "--set", "method.anchor=false", "--transport", "gw"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Hi (high-end test)" in result.output and "H (harmonic)" in result.output
    run = tmp_path / "runs" / "train" / "toyworld_ToyTask-kmat-s1-1"
    cfg = config.load_yaml(run / "config.yaml")
    assert cfg["method"]["anchor"] is False and cfg["transport"]["name"] == "gw"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert set(json.loads(lines[0])["losses"]) == {"ce", "transport"}
    result = runner.invoke(app, ["evaluate", str(run), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["metrics"]["format"] == "kmat.metrics/v1"
    result = runner.invoke(app, ["export", str(run), "--output", str(tmp_path / "p.safetensors")])
    assert result.exit_code == 0
    a, b = load_file(str(tmp_path / "p.safetensors")), load_file(str(run / "prompts.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _kmat(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([KMAT, *args], capture_output=True, text=True, env=env, timeout=300)


def _env(tmp_path: Path) -> dict:
    """The subprocess environment: the toy world importable; compiled bytecode kept in the kmat cache
    (outside the venv) even where PYTHONDONTWRITEBYTECODE is set, so each process starts in seconds."""
    env = {**os.environ, "PYTHONPATH": TOY_PATH, "OMP_NUM_THREADS": "1", "KMAT_NO_PROGRESS": "1"}
    if env.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = str(Path(os.environ["KMAT_CACHE"]) / "pycache")
    return env


def test_cli_too_many_shots_exits_2_without_a_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    r = _kmat(
        "train",
        "--task",
        "toyworld:ToyTask",
        "--backbone",
        "toyworld:ToyBackbone",
        "--shots",
        "50",
        "--out",
        str(out),
        "--set",
        f"task.root={tmp_path / 'data'}",
        env=_env(tmp_path),
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "kmat: error: class 'alpha' has 12 high-end training images, fewer than 50 shots; pass --shots 12 or fewer"
    ]
    assert not (out / "train").exists() or not list((out / "train").iterdir())


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """A real `kmat train` process killed with SIGKILL after an epoch, then `kmat train --resume`."""
    env = {**_env(tmp_path), "KMAT_TRUST_CODE": "1"}  # --resume reads the toy world's import path back
    args = [*train_argv(tmp_path, epochs=8, shots=12), "--set", "train.batch_size=1", "--no-evaluate"]
    full = _kmat(*args, env=env)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen([KMAT, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "runs" / "train" / "toyworld_ToyTask-kmat-s1-2"
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            epoch = json.loads((run / "checkpoint.json").read_text())["epoch"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            epoch = 0
        if epoch >= 2:
            proc.send_signal(signal.SIGKILL)
            killed_at = epoch
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, (
        "the run ended before it could be killed"
    )
    assert not open_run(run).finished
    assert checkpoint.load(run).epoch < 8
    resumed = _kmat("train", "--resume", str(run), "--no-evaluate", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert open_run(run).finished
    a = load_file(str(tmp_path / "runs" / "train" / "toyworld_ToyTask-kmat-s1-1" / "prompts.safetensors"))
    b = load_file(str(run / "prompts.safetensors"))
    assert a.keys() == b.keys()
    diff = {k: float((a[k] - b[k]).abs().max()) for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"killed at epoch {killed_at}: {diff}"
