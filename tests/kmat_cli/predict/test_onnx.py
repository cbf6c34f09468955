"""``kmat export --format onnx`` and ``kmat predict --onnx``: the ONNX classifier gives kmat predict's
probabilities (within 1e-4) and labels on a trained phantom run and on the BiomedCLIP architecture with
random weights; the README's plain-onnxruntime snippet gives the same labels; bad input is one line, exit 2."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

import kmat_runner
import numpy as np
import pytest
import torch
from PIL import Image
from repo_paths import REPO

import kmat
from kmat_cli import registry
from kmat_cli.export import read_prompts
from kmat_cli.onnx_export import write_onnx
from kmat_cli.runs import Run

pytest.importorskip("onnxruntime")


onnx = pytest.importorskip("onnx")


N_IMAGES = 24


def cli(*args: object) -> int:
    """``kmat ARGS`` in this process (``kmat_runner.cli``); its exit code, its output passed on to this test's
    stdout and stderr (where ``capsys`` reads it)."""
    result = kmat_runner.cli(*args)
    sys.stdout.write(result.out)
    sys.stderr.write(result.err)
    return result.code


def rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["path"]: r for r in csv.DictReader(handle)}


def probabilities(row: dict[str, str]) -> list[float]:
    return [float(v) for k, v in row.items() if k.startswith("prob_")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A short phantom K-MaT run exported to ONNX, a folder of low-end test images, a folder of bad files."""
    base = tmp_path_factory.mktemp("onnx-world")
    run = kmat.train(
        task="phantom", method="kmat", seed=1, epochs=2, shots=4, threads=1, out=str(base / "runs")
    )
    assert cli("export", run.path, "--format", "onnx") == 0
    scans = base / "scans"
    scans.mkdir()
    split = registry.get("tasks", "phantom")().split("lo", "test")
    for s in split[:: len(split) // N_IMAGES][:N_IMAGES]:
        Image.open(s.path).convert("RGB").resize((45, 61)).save(scans / f"{s.label}-{s.path.name}")
    bad = base / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.png").write_text("not an image")
    return {"run": run.path, "onnx": run.path / Run.ONNX, "scans": scans, "bad": bad, "base": base}


def test_onnx_predict_equals_run_predict_on_a_phantom_run(world: dict[str, Path], tmp_path: Path) -> None:
    by_onnx, by_run = tmp_path / "onnx.csv", tmp_path / "run.csv"
    paths = (world["scans"], world["bad"])
    assert cli("predict", *paths, "--onnx", world["onnx"], "--output", by_onnx, "--workers", 0) == 0
    assert cli("predict", *paths, "--run", world["run"], "--output", by_run, "--workers", 1) == 0
    got, want = rows(by_onnx), rows(by_run)
    assert list(got) == list(want) and len(got) == N_IMAGES + 2
    for path, row in want.items():
        assert (got[path]["label"], got[path]["error"]) == (row["label"], row["error"]), path
        if not row["error"]:
            np.testing.assert_allclose(probabilities(got[path]), probabilities(row), atol=1e-4, rtol=0)
    assert sum(bool(r["error"]) for r in got.values()) == 2
    assert len({r["label"] for r in got.values() if r["label"]}) > 1  # not one class for everything


def readme_onnx_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### ONNX") :]
    return re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)


def test_readme_onnx_snippet_gives_kmat_predicts_labels(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder = tmp_path / "deploy"
    # the snippet names the run folder as the docs' world does (runs/train/phantom-kmat-s1-1)
    target = folder / "runs" / "train" / "phantom-kmat-s1-1" / Run.ONNX
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(world["onnx"].read_bytes())
    (folder / "scans").symlink_to(world["scans"])
    monkeypatch.chdir(folder)
    scope: dict[str, object] = {"__name__": "readme_snippet"}
    exec(compile(readme_onnx_snippet(), "README.md (ONNX)", "exec"), scope)
    out = tmp_path / "rows.csv"
    assert cli("predict", world["scans"], "--onnx", world["onnx"], "--output", out) == 0
    want = [row["label"] for _, row in sorted(rows(out).items())]
    assert scope["labels"] == want
    assert str(want) in capsys.readouterr().out


def test_onnx_metadata_holds_classes_preprocessing_backbone_and_provenance(world: dict[str, Path]) -> None:
    model = onnx.load(str(world["onnx"]))
    meta = {p.key: p.value for p in model.metadata_props}
    prompts = read_prompts(world["run"] / Run.PROMPTS)
    for key in ("kmat.class_names", "kmat.backbone", "kmat.backbone_config", "kmat.task", "kmat.method"):
        assert meta[key] == prompts.metadata[key], key
    assert float(meta["kmat.logit_scale"]) == prompts.logit_scale
    assert meta["kmat.format"] == "kmat.onnx/v1" and meta["kmat.modality"] == "lo"
    assert json.loads(meta["kmat.preprocess"]) == {**prompts.preprocess, "crop": "center"}
    config = world["run"] / Run.CONFIG
    assert meta["kmat.config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert (meta["kmat.run"], meta["kmat.seed"]) == (world["run"].name, "1")
    (pixels,), (probs,) = model.graph.input, model.graph.output
    dims = [d.dim_param or d.dim_value for d in pixels.type.tensor_type.shape.dim]
    assert (pixels.name, dims) == ("pixels", ["batch", 3, 32, 32])
    assert [d.dim_param or d.dim_value for d in probs.type.tensor_type.shape.dim] == ["batch", 8]


def test_biomedclip_architecture_onnx_equals_torch_predict(tmp_path: Path) -> None:
    """The full BiomedCLIP image tower (ViT-B/16, random weights) with random low-end embeddings."""
    from folders import write_biomedclip_dir
    from kmat.backbones.open_clip import BiomedCLIP
    from predict_helpers import write_prompts

    folder = write_biomedclip_dir(tmp_path / "biomedclip")
    tower = BiomedCLIP(model=f"local-dir:{folder}", vision_only=True)
    gen = torch.Generator().manual_seed(3)
    emb = {m: torch.nn.functional.normalize(torch.randn(3, 512, generator=gen), dim=-1) for m in ("hi", "lo")}
    prompts = write_prompts(
        tmp_path / "prompts.safetensors",
        emb,
        backbone_id=tower.id,
        embed_dim=512,
        logit_scale=100.0,  # BiomedCLIP's scale: the probabilities are far from uniform
        preprocess=tower.preprocess_spec,
        backbone_config={"name": "biomedclip", "model": f"local-dir:{folder}"},
    )
    model = write_onnx(tmp_path / "biomedclip.onnx", tower, emb["lo"], read_prompts(prompts).metadata)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for i, shape in enumerate([(224, 224, 3), (300, 250, 3), (180, 260, 3), (240, 240, 3)]):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(images / f"{i}.png")
    by_onnx, by_torch = tmp_path / "onnx.csv", tmp_path / "torch.csv"
    assert cli("predict", images, "--onnx", model, "--output", by_onnx, "--workers", 0) == 0
    assert cli("predict", images, "--embeddings", prompts, "--output", by_torch, "--workers", 0) == 0
    got, want = rows(by_onnx), rows(by_torch)
    assert list(got) == list(want)
    for path, row in want.items():
        assert got[path]["label"] == row["label"]
        np.testing.assert_allclose(probabilities(got[path]), probabilities(row), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------ bad input
def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("kmat: error: ")
    return err[-1]


def test_missing_extra_is_one_line_naming_the_install(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    out = tmp_path / "rows.csv"
    assert cli("predict", world["scans"], "--onnx", world["onnx"], "--output", out) == 2
    assert "pip install 'kmat[onnx]'" in one_line_error(capsys)
    assert not out.exists()
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert cli("export", world["run"], "--format", "onnx", "--output", tmp_path / "c.onnx") == 2
    assert "pip install 'kmat[onnx]'" in one_line_error(capsys)
    assert not (tmp_path / "c.onnx").exists()


def test_bad_models_and_options_are_refused_with_exit_2(
    world: dict[str, Path], tmp_path: Path, capsys
) -> None:
    not_onnx = tmp_path / "not.onnx"
    not_onnx.write_text("hello")
    plain = onnx.load(str(world["onnx"]))
    del plain.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(plain, str(foreign))
    scans, model = world["scans"], world["onnx"]
    cases = [
        (("predict", scans, "--onnx", not_onnx), f"{not_onnx}: not an ONNX model"),
        (("predict", scans, "--onnx", foreign), f"{foreign}: not a kmat.onnx/v1 model"),
        (("predict", scans, "--onnx", tmp_path / "missing.onnx"), "ONNX model not found"),
        (("predict", scans, "--onnx", model, "--run", world["run"]), "give only one of --run"),
        (("predict", scans, "--onnx", model, "--modality", "hi"), "classifies with the 'lo' embeddings"),
        (("export", world["run"], "--format", "tflite"), "--format 'tflite' is not known"),
    ]
    for args, message in cases:
        out = tmp_path / "rows.csv"
        assert cli(*args, "--output", out) == 2, args
        assert message in one_line_error(capsys), args
        assert not out.exists()
