"""kmat predict with the phantom backbone, vision-only, against the full phantom CLIP's image path; prompts
refused when made for another backbone, class list or modality; without --run or --embeddings, the run
that finished last, then ./prompts.safetensors.

Uses the shipped phantom weights when they exist, else stand-in weights of the same architecture (seeded
random init) written with the phantom's own config and vocabulary files.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from faults import (
    CLASSES,
    assert_error,
    cli,
    csv_records,
    custom_task,
    png,
    run_folders,
    train_args,
    two_class_prompts,
)
from PIL import Image
from predict_helpers import phantom_prompts_file

from kmat_cli.predict import load_classifier, run_predict

pytestmark = pytest.mark.usefixtures("no_progress")


def test_phantom_predict_equals_full_model_formula(phantom_weights: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    paths = []
    for i, (h, w) in enumerate([(32, 32), (48, 40), (20, 64)]):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    names = ["a", "b", "c", "d"]
    full, prompts, emb = phantom_prompts_file(tmp_path, phantom_weights, names)  # full: image and text towers
    clf = load_classifier(embeddings=prompts, device="cpu")
    params = [n for n, _ in clf.backbone.model.named_parameters()]
    assert all(n.startswith("visual.") or n == "logit_scale" for n in params)
    out = tmp_path / "rows.csv"
    summary = run_predict(paths, embeddings=prompts, output=out, workers=1, batch_size=2)
    assert summary.ok == 3 and summary.failed == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    got = np.array([[float(r[f"prob_{c}"]) for c in names] for r in rows])
    x = torch.stack([full.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        f = F.normalize(full.model.encode_image(x), dim=-1)
    want = torch.softmax(full.logit_scale * f @ emb["lo"].T, dim=-1).numpy()
    assert np.allclose(got, want, atol=2e-6, rtol=1e-5)
    assert [r["path"] for r in rows] == [str(p) for p in paths]


EMBEDDING_FAULTS = [
    ({"kmat.backbone": "open_clip:ViT-B-32@openai"}, None, "made with backbone 'open_clip:ViT-B-32@openai'"),
    ({"kmat.embed_dim": "512"}, None, "dimension"),
    (None, {"text_embeddings.lo": [2, 512]}, "dimension"),
    ({"kmat.preprocess": json.dumps({"image_size": 224})}, None, "preprocessing"),
    ({"kmat.class_names": json.dumps(["a", "b", "c"])}, None, "for 3 classes"),
    ({"kmat.class_names": "[broken"}, None, "incomplete kmat metadata"),
    ({"kmat.format": None}, None, "not a kmat.prompts/v1 file"),
    ({"kmat.backbone_config": None}, None, "no kmat.backbone_config"),
]


@pytest.mark.parametrize(("meta", "shapes", "needle"), EMBEDDING_FAULTS)
def test_embeddings_made_for_another_backbone_or_class_list(
    tmp_path: Path, meta: dict | None, shapes: dict | None, needle: str
) -> None:
    import torch

    tensors = {k: torch.randn(*v) for k, v in (shapes or {}).items()}
    prompts = two_class_prompts(tmp_path, meta, tensors)
    result = cli(
        "predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--output", tmp_path / "p.csv"
    )
    assert_error(result, prompts, needle)
    assert not (tmp_path / "p.csv").exists()


def test_embeddings_lacking_the_modality(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = two_class_prompts(tmp_path)
    with safe_open(str(src), "pt") as f:
        meta, hi = f.metadata(), f.get_tensor("text_embeddings.hi")
    save_file({"text_embeddings.hi": hi}, str(src), metadata=meta)
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", src, "--modality", "lo")
    assert_error(result, src, "no embeddings for modality 'lo'")


def test_run_with_prompts_of_another_class_order(tmp_path: Path) -> None:
    """A prompts.safetensors copied into a run from a run of the same backbone but another class order
    would label every image with its twin's name: refused."""
    a = custom_task(tmp_path / "a", per_split={"train": 2})
    b = custom_task(tmp_path / "b", classes=list(reversed(CLASSES)), per_split={"train": 2})
    assert cli(*train_args(a, tmp_path / "ra")).code == 0
    assert cli(*train_args(b, tmp_path / "rb")).code == 0
    [run_a], [run_b] = run_folders(tmp_path / "ra"), run_folders(tmp_path / "rb")
    shutil.copy(run_b / "prompts.safetensors", run_a / "prompts.safetensors")
    result = cli("predict", tmp_path / "a" / "lo", "--run", run_a, "--output", tmp_path / "p.csv")
    assert_error(result, run_a / "prompts.safetensors", "['spiculated mass', 'smooth nodule']")
    assert not (tmp_path / "p.csv").exists()


def _copy_run(run: Path, dest: Path, *, status: str = "finished", time: float = 1.0) -> Path:
    """A copy of a finished run folder with its ``run.json`` saying ``status`` at ``time``."""
    shutil.copytree(run, dest)
    (dest / "run.json").write_text(json.dumps({"status": status, "time": time}), encoding="utf-8")
    return dest


# ------------------------------------------------------------------ 0. kmat predict with no --run/--embeddings
def test_predict_without_prompts_uses_the_run_that_finished_last_then_the_local_prompts_file(
    phantom_run: Path, phantom_prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    images = phantom_prompts.parent / "images"
    code, _, stderr = cli("predict", images)
    assert code == 2 and stderr.count("\n") == 1
    assert "no finished run under runs/train" in stderr and "kmat train --task phantom" in stderr

    shutil.copy(phantom_prompts, tmp_path / "prompts.safetensors")
    code, stdout, stderr = cli("predict", images)
    assert code == 0 and "using ./prompts.safetensors" in stderr and len(csv_records(stdout)) == 12

    older = _copy_run(phantom_run, tmp_path / "runs/train/phantom-coop-s3-1", time=100.0)
    newer = _copy_run(phantom_run, tmp_path / "runs/train/phantom-coop-s3-2", time=200.0)
    _copy_run(phantom_run, tmp_path / "runs/train/phantom-coop-s3-3", status="interrupted", time=300.0)
    code, stdout, stderr = cli("predict", images)
    assert (
        code == 0 and f"using {Path('runs/train') / newer.name}," in stderr and str(older.name) not in stderr
    )
    _, explicit, _ = cli("predict", images, "--run", newer)
    assert stdout == explicit
