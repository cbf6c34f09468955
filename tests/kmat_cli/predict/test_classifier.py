"""kmat predict with the phantom backbone, vision-only, against the full phantom CLIP's image path.

Uses the shipped phantom weights when they exist, else stand-in weights of the same architecture (seeded
random init) written with the phantom's own config and vocabulary files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from predict_helpers import phantom_prompts_file

from kmat_cli.predict import load_classifier, run_predict


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
