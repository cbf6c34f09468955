"""Prompt injection through frozen open_clip text towers, checked against the models' own code paths.

Truth: ``model.encode_text(tokenizer(texts))`` (L = 0) and a by-hand construction of the full-context
sequence [start, ctx, text tokens, end, pad...] run through the tower's own modules (L > 0).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kmat.backbones.openclip_adapter import OpenClipBackbone
from open_clip import CLIP, CustomTextCLIP, SimpleTokenizer

TEXTS = ["dermoscopy melanoma.", "a chest x-ray image of covid pneumonia.", "x", "benign nevus"]
LONG = " ".join(["irregular pigmented lesion with blue white veil"] * 6)  # > 32 tokens
TOL = 1e-5
VISION = {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16}

# open_clip native text configs: pooling, causal mask, projection kinds, CustomTextCLIP's own tower
NATIVE = {
    "argmax": ({}, False),
    "linear-proj": ({"proj_bias": True}, False),
    "no-proj": ({"proj_type": "none"}, False),
    "last-pool": ({"pool_type": "last"}, False),
    "first-pool": ({"pool_type": "first"}, False),
    "eos-pool": ({"pool_type": "eos", "eos_id": 49407}, False),
    "bidirectional": ({"no_causal_mask": True}, False),
    "custom-argmax": ({}, True),
    "custom-pad-mask": ({"no_causal_mask": True, "use_pad_mask": True}, True),
    "custom-cls-emb": ({"embed_cls": True, "pool_type": "last"}, True),
}


def _native(text_cfg: dict, custom: bool) -> OpenClipBackbone:
    torch.manual_seed(0)
    cfg = {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2, **text_cfg}
    embed_dim = 32 if cfg.get("proj_type") == "none" else 24
    use_pad_mask = cfg.pop("use_pad_mask", False)
    model = (CustomTextCLIP if custom else CLIP)(embed_dim=embed_dim, vision_cfg=VISION, text_cfg=cfg)
    if use_pad_mask:  # CLIPTextCfg has no such field; TextTransformer does
        model.text.use_pad_mask = True
    for p in model.parameters():  # break the init's symmetries so every path matters
        p.data.add_(torch.randn_like(p) * 0.02)
    return OpenClipBackbone(model, SimpleTokenizer(context_length=32), None, id="native", preprocess_spec={})


@pytest.fixture(scope="module", params=sorted(NATIVE))
def native(request: pytest.FixtureRequest) -> OpenClipBackbone:
    return _native(*NATIVE[request.param])


def _own(b: OpenClipBackbone, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(b.model.encode_text(b.tokenizer(texts)).float(), dim=-1)


def _tower(b: OpenClipBackbone) -> torch.nn.Module:
    return getattr(b.model, "text", b.model)


def _untruncated(b: OpenClipBackbone, ctx: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """``encode_prompts`` over the whole context length (prompt truncation off for this call)."""
    b.truncate_prompts = False
    try:
        return b.encode_prompts(ctx, texts)
    finally:
        b.truncate_prompts = True


def _manual_native(b: OpenClipBackbone, ctx: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Full-context [sot, ctx, tokens, eot, pad...] through the model's own tower, written out by hand."""
    from open_clip.transformer import text_global_pool

    t = _tower(b)
    n_ctx, ctx_len = ctx.shape[1], 32
    ids = b.tokenizer(texts, context_length=ctx_len - n_ctx)  # open_clip's own truncation keeps the eot
    emb = t.token_embedding(ids)
    x = torch.cat([emb[:, :1], ctx, emb[:, 1:]], dim=1)
    full_ids = torch.cat([ids[:, :1], torch.full((len(texts), n_ctx), 1), ids[:, 1:]], dim=1)  # 1 = non-pad
    if isinstance(b.model, CLIP):
        x = b.model.transformer(x + b.model.positional_embedding, attn_mask=b.model.attn_mask)
        x = b.model.ln_final(x)
        pool_ids = full_ids.clone()
        pool_ids[:, 1 : 1 + n_ctx] = -1
        pooled = text_global_pool(x, pool_ids, b.model.text_pool_type, eos_token_id=b.model.text_eos_id)
        proj = b.model.text_projection
    else:  # TextTransformer.forward with the embedding step replaced
        seq = x.shape[1]
        mask = t.attn_mask
        if t.cls_emb is not None:
            x = torch.cat([x, t.cls_emb.view(1, 1, -1).expand(x.shape[0], -1, -1)], 1)
            seq += 1
        if t.use_pad_mask or t.cls_emb is not None:
            add = t._build_additive_mask(full_ids, seq, x.dtype)
            mask = add if mask is None else mask[:seq, :seq].unsqueeze(0) + add
        x = t.transformer(x + t.positional_embedding[:seq], attn_mask=mask)
        if t.cls_emb is not None:
            pooled = t.ln_final(x[:, -1])
        else:
            pool_ids = full_ids.clone()
            pool_ids[:, 1 : 1 + n_ctx] = -1
            pooled = text_global_pool(t.ln_final(x), pool_ids, t.pool_type, eos_token_id=t.eos_id)
        proj = t.text_projection
    if proj is not None:
        pooled = proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj
    return F.normalize(pooled, dim=-1)


def test_native_zero_context_equals_encode_text(native: OpenClipBackbone) -> None:
    texts = [*TEXTS, LONG]
    got = native.encode_prompts(torch.zeros(len(texts), 0, native.token_width), texts)
    assert (got - _own(native, texts)).abs().max() <= TOL
    assert (native.encode_text(texts) - _own(native, texts)).abs().max() <= TOL


def test_native_context_equals_manual_construction(native: OpenClipBackbone) -> None:
    texts = [*TEXTS, LONG]
    ctx = torch.randn(len(texts), 4, native.token_width) * 0.1
    got = native.encode_prompts(ctx, texts)
    with torch.no_grad():
        want = _manual_native(native, ctx, texts)
    assert (got - want).abs().max() <= TOL


def test_native_truncated_equals_full_length(native: OpenClipBackbone) -> None:
    ctx = torch.randn(len(TEXTS), 3, native.token_width) * 0.1
    short = native.encode_prompts(ctx, TEXTS)
    full = _untruncated(native, ctx, TEXTS)
    assert (short - full).abs().max() <= TOL
    lengths = {k[2]: p.embeds.shape[1] for k, p in native._prepared.items() if k[:2] == (tuple(TEXTS), 3)}
    assert lengths[False] == 32
    tower = native._tower
    if tower.can_truncate():  # causal (or pad-masked) towers pooling at a real token: really shorter
        assert lengths[True] < 32
    else:
        assert lengths[True] == 32


def test_gradients_reach_context_only(native: OpenClipBackbone) -> None:
    ctx = (torch.randn(2, 4, native.token_width) * 0.1).requires_grad_()
    out = native.encode_prompts(ctx, TEXTS[:2])
    (out @ torch.randn(out.shape[1])).sum().backward()
    tower = native._tower
    if (
        tower.pool_type == "first" and tower.owner.attn_mask is not None
    ):  # causal: the start token sees only itself
        assert ctx.grad is not None and ctx.grad.abs().sum() == 0
    else:
        assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in native.model.parameters())
    assert not native.model.training


def test_native_token_embeddings_strip_special_tokens(native: OpenClipBackbone) -> None:
    tok = SimpleTokenizer()
    ids = torch.tensor(tok.encode("melanoma in situ"))
    want = _tower(native).token_embedding(ids)
    assert torch.equal(native.token_embeddings("melanoma in situ"), want)


def test_prepared_embeddings_are_cached(native: OpenClipBackbone) -> None:
    native.encode_prompts(torch.zeros(2, 4, native.token_width), TEXTS[:2])
    calls = []
    emb = _tower(native).token_embedding
    hook = emb.register_forward_hook(lambda *a: calls.append(1))
    try:
        native.encode_prompts(torch.zeros(2, 4, native.token_width), TEXTS[:2])
    finally:
        hook.remove()
    assert calls == []


def test_bad_context_shape_is_a_usage_error(native: OpenClipBackbone) -> None:
    from kmat_cli.api import UsageError

    with pytest.raises(UsageError, match="context must be"):
        native.encode_prompts(torch.zeros(3, 4, native.token_width), TEXTS[:2])
    with pytest.raises(UsageError, match="do not fit"):
        native.encode_prompts(torch.zeros(1, 31, native.token_width), TEXTS[:1])


# --------------------------------------------------------------------------- BiomedCLIP (HF text tower)
def _manual_hf(b: OpenClipBackbone, ctx: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """[CLS, ctx, tokens, SEP, PAD...] over the full 256 context as inputs_embeds; the attention mask
    covers the real tokens and the context; CLS pooling and the MLP projection of the model."""
    enc = b.model.text
    n_ctx = ctx.shape[1]
    ids = b.tokenizer(texts, context_length=256 - n_ctx)
    emb = enc.transformer.get_input_embeddings()(ids)
    x = torch.cat([emb[:, :1], ctx, emb[:, 1:]], dim=1)
    real = (ids != enc.config.pad_token_id).long()
    mask = torch.cat([real[:, :1], torch.ones(len(texts), n_ctx, dtype=torch.long), real[:, 1:]], dim=1)
    out = enc.transformer(inputs_embeds=x, attention_mask=mask)
    return F.normalize(enc.proj(out.last_hidden_state[:, 0]), dim=-1)


def test_biomedclip_architecture(biomedclip_full: OpenClipBackbone) -> None:
    b = biomedclip_full
    bert = b.model.text.transformer.config
    assert (bert.vocab_size, bert.hidden_size, bert.num_hidden_layers, bert.num_attention_heads) == (
        30522,
        768,
        12,
        12,
    )
    assert (bert.intermediate_size, bert.max_position_embeddings) == (3072, 512)
    assert type(b.model.text.pooler).__name__ == "ClsLastHiddenStatePooler"
    assert [m.out_features for m in b.model.text.proj if isinstance(m, torch.nn.Linear)] == [640, 512]
    assert b.model.visual.trunk.patch_embed.patch_size == (16, 16)
    assert (b.embed_dim, b.token_width, b.context_length) == (512, 768, 256)
    assert b.preprocess_spec["image_size"] == 224
    assert b.preprocess_spec["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])


def test_biomedclip_zero_context_equals_encode_text(biomedclip_full: OpenClipBackbone) -> None:
    b = biomedclip_full
    texts = TEXTS[:2]
    got = b.encode_prompts(torch.zeros(len(texts), 0, b.token_width), texts)
    assert (got - _own(b, texts)).abs().max() <= TOL
    assert b._prepared[(tuple(texts), 0, True)].embeds.shape[1] < 20  # ran ~12 tokens, not 256


def _check_context(b: OpenClipBackbone) -> None:
    texts = TEXTS[:2]
    ctx = (torch.randn(2, 8, b.token_width) * 0.02).requires_grad_()
    got = b.encode_prompts(ctx, texts)
    (got * torch.randn_like(got)).sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in b.model.parameters())
    with torch.no_grad():
        want = _manual_hf(b, ctx, texts)  # full 256-token context
        full = _untruncated(b, ctx, texts)
    assert (got - want).abs().max() <= TOL
    assert (got - full).abs().max() <= TOL


def test_hf_tower_context_matches_manual_and_full_length(tiny_biomedclip: OpenClipBackbone) -> None:
    _check_context(tiny_biomedclip)


@pytest.mark.slow
def test_biomedclip_context_matches_manual_and_full_length(biomedclip_full: OpenClipBackbone) -> None:
    _check_context(biomedclip_full)


def test_hf_tower_long_text_is_truncated_like_the_tokenizer(tiny_biomedclip: OpenClipBackbone) -> None:
    b = tiny_biomedclip
    text = " ".join(["spiculated irregular mass with calcifications"] * 60)  # > 256 tokens
    ctx = torch.randn(1, 8, b.token_width) * 0.02
    with torch.no_grad():
        assert (b.encode_prompts(ctx, [text]) - _manual_hf(b, ctx, [text])).abs().max() <= TOL
        assert (b.encode_text([text]) - _own(b, [text])).abs().max() <= TOL
    want = b.model.text.transformer.get_input_embeddings()(
        torch.tensor(b.tokenizer.tokenizer("melanoma nevus")["input_ids"][1:-1])
    )
    assert torch.equal(b.token_embeddings("melanoma nevus"), want)
