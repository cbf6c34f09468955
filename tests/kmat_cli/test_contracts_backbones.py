"""Every registered backbone honours the Backbone contract (kmat_cli/api.py, DESIGN.md "Contracts").

Parametrized over ``kmat_cli.registry.names("backbones")``, so a new backbone is checked as soon as it is
registered. Backbones whose weights live on a hub are built offline from a ``local-dir:`` folder with
random weights of the same architecture kind; the others with their default arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from kmat_cli.api import Backbone, KmatError
from kmat_cli.registry import get, names

TEXTS = ["round smooth nodule", "a spiculated mass.", "normal"]
SPEC_KEYS = {"image_size", "mean", "std", "resize", "interpolation"}


def _offline_kwargs(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if name == "biomedclip":
        return {"model": f"local-dir:{request.getfixturevalue('tiny_biomedclip_dir')}"}
    if name == "open_clip":
        return {"model": f"local-dir:{request.getfixturevalue('native_dir')}"}
    return {}


@pytest.fixture(scope="module", params=names("backbones"))
def pair(request: pytest.FixtureRequest) -> tuple[Backbone, Backbone]:
    """(full backbone, the same built vision-only)."""
    cls = get("backbones", request.param)
    kwargs = _offline_kwargs(request.param, request)
    return cls(**kwargs), cls(**kwargs, vision_only=True)


def _pixels(b: Backbone, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    imgs = [Image.fromarray((torch.rand(37, 50, 3, generator=g) * 255).byte().numpy()) for _ in range(n)]
    return torch.stack([b.preprocess(im) for im in imgs])


def _unit(x: torch.Tensor) -> bool:
    return bool(torch.allclose(x.norm(dim=-1), torch.ones(x.shape[0]), atol=1e-5))


def test_attributes(pair: tuple[Backbone, Backbone]) -> None:
    b, _ = pair
    assert isinstance(b.id, str) and b.id
    assert isinstance(b.embed_dim, int) and b.embed_dim > 0
    assert isinstance(b.token_width, int) and b.token_width > 0
    assert isinstance(b.logit_scale, float) and b.logit_scale > 0
    assert set(b.preprocess_spec) >= SPEC_KEYS
    json.dumps(b.preprocess_spec)  # JSON-able: it goes into cache keys and exported files
    assert b.model is not None and b.tokenizer is not None
    assert all(not p.requires_grad for p in b.model.parameters())
    assert not b.model.training


def test_preprocess_output_size(pair: tuple[Backbone, Backbone]) -> None:
    b, _ = pair
    size = b.preprocess_spec["image_size"]
    h, w = (size, size) if isinstance(size, int) else size
    x = _pixels(b, 1)
    assert x.shape == (1, 3, h, w) and x.dtype == torch.float32


def test_image_embeddings(pair: tuple[Backbone, Backbone]) -> None:
    b, vis = pair
    x = _pixels(b)
    f1, f2 = b.encode_image(x), b.encode_image(x)
    assert f1.shape == (2, b.embed_dim) and f1.dtype == torch.float32
    assert f1.device == torch.device(b.device) and _unit(f1)
    assert torch.equal(f1, f2)  # deterministic (eval mode, no dropout)
    assert torch.allclose(vis.encode_image(x), f1, atol=1e-6)  # the vision-only build is the same tower
    assert vis.id == b.id and vis.preprocess_spec == b.preprocess_spec and vis.embed_dim == b.embed_dim


def test_text_embeddings(pair: tuple[Backbone, Backbone]) -> None:
    b, _ = pair
    t1, t2 = b.encode_text(TEXTS), b.encode_text(TEXTS)
    assert t1.shape == (3, b.embed_dim) and t1.dtype == torch.float32 and _unit(t1)
    assert torch.equal(t1, t2)
    empty = torch.zeros(3, 0, b.token_width)
    assert torch.allclose(b.encode_prompts(empty, TEXTS), t1, atol=1e-5)


def test_prompt_embeddings(pair: tuple[Backbone, Backbone]) -> None:
    b, _ = pair
    ctx = (
        torch.randn(3, 4, b.token_width, generator=torch.Generator().manual_seed(1)) * 0.02
    ).requires_grad_()
    out = b.encode_prompts(ctx, TEXTS)
    assert out.shape == (3, b.embed_dim) and out.dtype == torch.float32 and _unit(out.detach())
    (out * torch.randn_like(out)).sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in b.model.parameters())
    emb = b.token_embeddings("round nodule")
    assert emb.dim() == 2 and emb.shape[0] >= 1 and emb.shape[1] == b.token_width and not emb.requires_grad


def test_vision_only_has_no_text_tower(pair: tuple[Backbone, Backbone]) -> None:
    b, vis = pair
    n_full = sum(p.numel() for p in b.model.parameters())
    n_vis = sum(p.numel() for p in vis.model.parameters())
    assert n_vis < n_full
    assert not any(
        n.startswith(("text.", "token_embedding", "transformer.")) for n, _ in vis.model.named_parameters()
    )
    with pytest.raises(KmatError):
        vis.encode_text(TEXTS)


def test_device_placement(pair: tuple[Backbone, Backbone]) -> None:
    b, _ = pair
    assert b.to("cpu") is b and torch.device(b.device) == torch.device("cpu")
    if not torch.cuda.is_available():
        return
    try:
        b.to("cuda")
        assert all(p.device.type == "cuda" for p in b.model.parameters())
        x = _pixels(b)
        assert b.encode_image(x).device.type == "cuda"  # pixels on the CPU are moved by the backbone
        assert b.encode_text(TEXTS).device.type == "cuda"
        ctx = torch.zeros(3, 2, b.token_width, device="cuda")
        assert b.encode_prompts(ctx, TEXTS).device.type == "cuda"
    finally:
        b.to("cpu")


def test_builtin_open_clip_contract_offline(tmp_path: Path) -> None:
    """DESIGN.md: ``get("backbones", "open_clip")(model=..., pretrained="none")`` needs no download."""
    b = get("backbones", "open_clip")(model="RN50", pretrained="none", vision_only=True)
    assert b.id == "open_clip:RN50:random-seed0" and b.embed_dim == 1024
    assert b.preprocess_spec["image_size"] == 224


@pytest.mark.slow
def test_builtin_vit_b_32_full_offline() -> None:
    b = get("backbones", "open_clip")(model="ViT-B-32", pretrained="none")
    t = b.encode_text(TEXTS)
    own = torch.nn.functional.normalize(b.model.encode_text(b.tokenizer(TEXTS)), dim=-1)
    assert torch.allclose(t, own, atol=1e-5)
