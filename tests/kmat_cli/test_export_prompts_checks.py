"""A prompts file is checked on load (``read_prompts``): each malformed key or tensor is one line naming the
file and the key, before any image is read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from faults import assert_error, cli, png, two_class_prompts

pytestmark = pytest.mark.usefixtures("no_progress")


D = 128  # the phantom backbone's embedding width


# ----------------------------------------------------------------------------- malformed prompts contents
PROMPTS_FAULTS = {
    "scale-nan": ({"kmat.logit_scale": "nan"}, None, "kmat.logit_scale"),
    "scale-inf": ({"kmat.logit_scale": "inf"}, None, "kmat.logit_scale"),
    "scale-negative": ({"kmat.logit_scale": "-20"}, None, "kmat.logit_scale"),
    "scale-zero": ({"kmat.logit_scale": "0"}, None, "kmat.logit_scale"),
    "scale-huge": ({"kmat.logit_scale": "1e6"}, None, "kmat.logit_scale"),
    "scale-text": ({"kmat.logit_scale": "hot"}, None, "kmat.logit_scale"),
    "scale-missing": ({"kmat.logit_scale": None}, None, "kmat.logit_scale"),
    "int-tensor": (None, {"text_embeddings.lo": torch.ones(2, D, dtype=torch.int32)}, "text_embeddings.lo"),
    "bool-tensor": (None, {"text_embeddings.lo": torch.ones(2, D, dtype=torch.bool)}, "text_embeddings.lo"),
    "int-context": (None, {"context.ctx": torch.ones(4, 8, dtype=torch.int64)}, "context.ctx"),
    "three-dims": (None, {"text_embeddings.lo": torch.ones(2, D, 1)}, "text_embeddings.lo"),
    "zero-row": (
        None,
        {"text_embeddings.lo": torch.cat([torch.ones(1, D), torch.zeros(1, D)])},
        "text_embeddings.lo",
    ),
    "zero-row-hi": (None, {"text_embeddings.hi": torch.zeros(2, D)}, "text_embeddings.hi"),
    "names-empty-list": ({"kmat.class_names": "[]"}, None, "kmat.class_names"),
    "names-not-a-list": ({"kmat.class_names": '"smooth nodule"'}, None, "kmat.class_names"),
    "names-numbers": ({"kmat.class_names": "[1, 2]"}, None, "kmat.class_names"),
    "names-zero": ({"kmat.class_names": '[0, "spiculated mass"]'}, None, "kmat.class_names"),
    "names-empty-string": ({"kmat.class_names": '["", "spiculated mass"]'}, None, "kmat.class_names"),
    "names-duplicated": ({"kmat.class_names": '["nodule", "nodule"]'}, None, "kmat.class_names"),
    "names-lone-surrogate": ({"kmat.class_names": '["a\\udc80", "b"]'}, None, "kmat.class_names"),
    "names-count": ({"kmat.class_names": '["a", "b", "c"]'}, None, "for 3 classes"),
    "names-missing": ({"kmat.class_names": None}, None, "kmat.class_names"),
    "embed-dim-text": ({"kmat.embed_dim": "wide"}, None, "kmat.embed_dim"),
    "preprocess-list": ({"kmat.preprocess": "[1]"}, None, "kmat.preprocess"),
}


@pytest.mark.parametrize("case", list(PROMPTS_FAULTS))
def test_malformed_prompts_are_refused_on_load(tmp_path: Path, case: str) -> None:
    """Each fault is refused before any image is read: exit 2, one line naming the file and the key, no
    output file (NaN/uniform probabilities with a confident label are never written)."""
    meta, tensors, key = PROMPTS_FAULTS[case]
    prompts = two_class_prompts(tmp_path, meta, tensors)
    out = tmp_path / "rows.csv"
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0", "-o", out)
    assert_error(result, prompts, key)
    assert not out.exists()
