"""kmat predict on CUDA: the same rows as on the CPU (phantom tower, vision-only)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from predict_helpers import phantom_prompts_file

from kmat_cli.predict import run_predict


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.cuda
def test_predict_on_cuda_equals_the_cpu(phantom_weights: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths.append(tmp_path / "broken.png")
    names = ["a", "b", "c"]
    _, prompts, _ = phantom_prompts_file(tmp_path, phantom_weights, names)
    rows = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.csv"
        summary = run_predict(paths, embeddings=prompts, output=out, device=device, workers=1, batch_size=4)
        assert summary.ok == 10 and summary.failed == 1  # one bad image never stops the batch
        rows[device] = _rows(out)
    assert [r["path"] for r in rows["cuda"]] == [r["path"] for r in rows["cpu"]]
    assert [r["error"] for r in rows["cuda"]] == [r["error"] for r in rows["cpu"]]
    ok = [i for i, r in enumerate(rows["cpu"]) if not r["error"]]
    probs = {d: np.array([[float(rows[d][i][f"prob_{c}"]) for c in names] for i in ok]) for d in rows}
    assert np.allclose(probs["cuda"], probs["cpu"], atol=1e-4)
    margin = np.sort(probs["cpu"], axis=1)[:, -1] - np.sort(probs["cpu"], axis=1)[:, -2]
    clear = margin > 1e-3  # labels compared where the top two are not a near tie
    labels = {d: np.array([rows[d][i]["label"] for i in ok]) for d in rows}
    assert (labels["cuda"][clear] == labels["cpu"][clear]).all()
