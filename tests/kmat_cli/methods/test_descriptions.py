"""The `descriptions` method (classification by description): logits by hand through encode_text."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from toyworld import CLASSES, ToyTask, setup

from kmat_cli import registry


def _hand_prototypes(template: str, modality: str) -> torch.Tensor:
    """normalize(mean_j normalize(encode_text(template(words, d_j)))) per class, written out."""
    s = setup()
    words = s.modalities[modality]
    rows = []
    for c in CLASSES:
        texts = [template.format(modality=words, description=d) for d in ToyTask().descriptions[modality][c]]
        e = F.normalize(s.backbone.encode_text(texts).float(), dim=-1)
        rows.append(F.normalize(e.mean(0), dim=-1))
    return torch.stack(rows)


@pytest.mark.parametrize("template", ["{modality}: {description}", "{description}"])
def test_logits_are_scaled_cosines_to_hand_computed_prototypes(template: str) -> None:
    method = registry.get("methods", "descriptions")(setup(), description_template=template)
    assert not method.trainable and not list(method.parameters())
    feats = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    for m in ("hi", "lo"):
        p = _hand_prototypes(template, m)
        want = method.logit_scale * F.normalize(feats, dim=-1) @ p.t()
        torch.testing.assert_close(method.logits(feats, m), want, rtol=1e-5, atol=1e-5)


def test_its_prototypes_are_kmat_anchor_prototypes() -> None:
    desc = registry.get("methods", "descriptions")(setup())
    torch.manual_seed(0)
    kmat = registry.get("methods", "kmat")(setup(), transport=False)
    torch.testing.assert_close(desc.prototypes, kmat.prototypes)


def test_without_descriptions_is_a_usage_error() -> None:
    from kmat_cli.errors import UsageError

    with pytest.raises(UsageError, match="needs class descriptions"):
        registry.get("methods", "descriptions")(setup(descriptions=None))


def test_python_api_trains_and_evaluates_it_without_epochs(tmp_path: Path) -> None:
    import kmat

    run = kmat.train(task="phantom", method="descriptions", out=str(tmp_path), epochs=1)
    assert run.config["method"]["name"] == "descriptions"
    assert not list(run.path.glob("checkpoint*"))  # nothing learned, nothing saved
    assert 0.0 < run.metrics["lo"]["accuracy"] <= 1.0
