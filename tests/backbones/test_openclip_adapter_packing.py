"""Packed prompts (BERT-type HF towers): the real tokens of all prompts in rows without padding, each prompt
attending only to itself, give the padded batch's embeddings and context gradients."""

from __future__ import annotations

import pytest
import torch
from kmat.backbones.openclip_adapter import OpenClipBackbone
from kmat.backbones.packing import PACK_FACTOR, PACK_MIN_TOKENS

WORDS = ["irregular", "pigmented", "lesion", "with", "blue", "white", "veil", "and", "atypical", "network"]


def _texts(n: int) -> list[str]:
    """n prompts of 1 to 11 words, so the padded batch has much padding."""
    return [" ".join(WORDS[: 1 + (7 * i) % len(WORDS)]) + "." for i in range(n)]


def _run(b: OpenClipBackbone, ctx: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = ctx.clone().requires_grad_()
    out = b.encode_prompts(leaf, texts)
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    return out.detach(), leaf.grad


@pytest.mark.parametrize("first_only", [True, False])  # last layer for the first tokens only, or whole
@pytest.mark.parametrize("n", [6, 40])  # few prompts; many prompts in several rows
def test_packed_equals_padded(
    tiny_biomedclip: OpenClipBackbone, monkeypatch: pytest.MonkeyPatch, n: int, first_only: bool
) -> None:
    b = tiny_biomedclip
    assert b._tower.first_token_only()  # BiomedCLIP: CLS pooling of a BERT
    if not first_only:
        monkeypatch.setattr(type(b._tower), "first_token_only", lambda self: False)
    texts = _texts(n)
    ctx = torch.randn(n, 8, b.token_width) * 0.02
    b._prepared.clear()
    packed, g_packed = _run(b, ctx, texts)
    prep = b._prepared[(tuple(texts), 8, True)]
    assert prep.pack is not None
    real = int((prep.ids != b._layout_().pad_id).sum())
    assert prep.pack.rows * prep.pack.width < prep.ids.numel()  # less work than the padded batch
    assert real <= prep.pack.rows * prep.pack.width
    longest = int((prep.ids != b._layout_().pad_id).sum(1).max())
    assert prep.pack.width <= max(PACK_FACTOR * longest, PACK_MIN_TOKENS)
    if n == 40:
        assert prep.pack.rows > 1
    b.pack_prompts = False
    try:
        padded, g_padded = _run(b, ctx, texts)
    finally:
        b.pack_prompts = True
    assert b._prepared[(tuple(texts), 8, "padded")].pack is None
    assert (packed - padded).abs().max() <= 1e-5
    assert (g_packed - g_padded).abs().max() <= 1e-5 * g_padded.abs().max()


def test_encode_text_packed_equals_the_models_own(tiny_biomedclip: OpenClipBackbone) -> None:
    b = tiny_biomedclip
    texts = _texts(12)
    with torch.no_grad():
        own = torch.nn.functional.normalize(b.model.encode_text(b.tokenizer(texts)).float(), dim=-1)
    assert (b.encode_text(texts) - own).abs().max() <= 1e-5
