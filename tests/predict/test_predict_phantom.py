"""kmat predict with the phantom backbone, vision-only, against the full phantom CLIP's image path.

Uses the shipped phantom weights when they exist, else stand-in weights of the same architecture (seeded
random init) written with the phantom's own config and vocabulary files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from predict_helpers import write_prompts

from kmat_cli.predict import load_classifier, run_predict


@pytest.fixture(scope="module")
def phantom_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kmat.backbones.phantom import model as files

    if files.WEIGHTS.is_file():
        return files.WEIGHTS
    folder = tmp_path_factory.mktemp("phantom")
    return files.write_random(folder, words=8, context_length=16, seed=5)


def test_phantom_predict_equals_full_model_formula(phantom_weights: Path, tmp_path: Path) -> None:
    from kmat_cli.registry import get

    phantom = get("backbones", "phantom")
    full = phantom(weights=str(phantom_weights))  # image and text towers
    rng = np.random.default_rng(3)
    paths = []
    for i, (h, w) in enumerate([(32, 32), (48, 40), (20, 64)]):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    names = ["a", "b", "c", "d"]
    emb = {m: F.normalize(torch.randn(4, full.embed_dim), dim=-1) for m in ("hi", "lo")}
    prompts = write_prompts(
        tmp_path / "prompts.safetensors",
        emb,
        backbone_id=full.id,
        embed_dim=full.embed_dim,
        logit_scale=full.logit_scale,
        preprocess=full.preprocess_spec,
        backbone_config={"name": "phantom", "weights": str(phantom_weights)},
        class_names=names,
    )
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
