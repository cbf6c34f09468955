"""A kmat :class:`~kmat_cli.api.Backbone` around an already-built open_clip model, with prompt injection.

Prompt injection: a learnable context ``ctx`` (P, L, W) is placed right after the start token, followed by
the frozen token embeddings of ``texts[p]``, the end token and padding:

    e_p = [E(start), ctx_p(1..L), E(t_p1), ..., E(t_pn), E(end), E(pad), ...]

and ``e_p`` runs through the frozen text tower exactly as the model's own ``encode_text`` runs its token
embeddings (:mod:`kmat.backbones.text_towers`, both tower kinds open_clip has).

The tower runs only up to the longest real prompt length in the batch where that is exact (causal or
padding-masked attention, pooling at a real position); otherwise over the full context. Towers that can
(BERT-type HF towers with SDPA attention) run no padding at all: the prompts' real tokens packed into rows
(:mod:`kmat.backbones.packing`), the same computation without the padded rows' work. A text longer than
``context_length - L`` tokens is truncated as open_clip's tokenizers truncate: its end token is kept last.
The frozen token embeddings of a prompt batch are computed once and cached (the last few batches).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from kmat.backbones import prepacked
from kmat.backbones.packing import packing
from kmat.backbones.text_towers import HFTower, NativeTower, Prepared, text_tower
from torch import nn

from kmat_cli.api import Backbone, RuntimeFailure, UsageError

__all__ = ["OpenClipBackbone"]

_CACHE_SIZE = 8  # distinct (texts, L) prompt batches whose token embeddings stay cached


@dataclass(frozen=True)
class _Layout:
    """Where a tokenizer puts its special tokens: ``start`` (0 or 1 leading tokens), ``end`` (0 or 1
    trailing tokens), ``pad_id`` and ``context_length``."""

    start: int
    end: int
    pad_id: int
    context_length: int


def _detect_layout(tokenizer: Callable[..., torch.Tensor], context_length: int) -> _Layout:
    """Find the start/end special tokens and the pad id by tokenizing probe texts."""
    probe = tokenizer(["a", "b c", "tissue"], context_length=context_length)
    pad_id = int(probe[0, -1])
    lengths = [int((row != pad_id).nonzero().max()) + 1 for row in probe]
    firsts = {int(row[0]) for row in probe}
    lasts = {int(row[n - 1]) for row, n in zip(probe, lengths, strict=True)}
    return _Layout(
        start=int(len(firsts) == 1), end=int(len(lasts) == 1), pad_id=pad_id, context_length=context_length
    )


def _embed_dim(model: nn.Module) -> int:
    if isinstance(getattr(model, "embed_dim", None), int):
        return model.embed_dim
    visual = getattr(model, "visual", None)
    for holder in (visual, getattr(model, "text", None)):
        dim = getattr(holder, "output_dim", None)
        if isinstance(dim, int) and dim > 0:
            return dim
    proj = getattr(model, "text_projection", None)
    if isinstance(proj, nn.Linear):
        return proj.out_features
    if isinstance(proj, torch.Tensor):
        return int(proj.shape[1])
    raise UsageError(f"cannot tell the embedding size of {type(model).__name__}")


class OpenClipBackbone(Backbone):
    """A frozen open_clip ``CLIP``/``CustomTextCLIP`` (or a vision-only model with ``visual`` and
    ``logit_scale``) as a kmat backbone.

    ``tokenizer(texts, context_length=None) -> LongTensor (N, ctx)`` follows open_clip's tokenizers; pass
    ``tokenizer=None`` for a vision-only model. ``id`` identifies the weights; ``preprocess_spec`` is the
    JSON-able description of ``preprocess`` (image_size, mean, std, resize, interpolation).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[..., torch.Tensor] | None,
        preprocess: Callable[[Any], torch.Tensor],
        *,
        id: str,
        preprocess_spec: dict[str, Any],
        device: str = "cpu",
    ) -> None:
        model.eval()
        model.requires_grad_(False)
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.preprocess_spec = dict(preprocess_spec)
        self.id = id
        self.embed_dim = _embed_dim(model)
        scale = getattr(model, "logit_scale", None)
        self.logit_scale = (
            float(scale.detach().exp().reshape(-1)[0]) if isinstance(scale, torch.Tensor) else 100.0
        )
        self._tower = text_tower(model) if tokenizer is not None else None
        self._layout: _Layout | None = None
        self.token_width = int(self._tower.embedding.weight.shape[1]) if self._tower is not None else 0
        self._ids: dict[str, torch.Tensor] = {}
        self._prepared: OrderedDict[tuple[tuple[str, ...], int, bool | str], Prepared] = OrderedDict()
        self.truncate_prompts = True  # False: always run the full context (same result, slower)
        self.pack_prompts = True  # False: pad to the longest prompt instead of packing (same result, slower)
        # False: no MKL-packed text weights (backbones/prepacked.py; same result, slower, less memory)
        self.prepack_weights = True
        for module in self._tower.text_modules() if self._tower is not None else []:
            prepacked.convert(module)
        self.device = torch.device("cpu")
        self.to(device)

    # ------------------------------------------------------------------------------------------ basics
    @property
    def vision_only(self) -> bool:
        return self._tower is None

    @property
    def context_length(self) -> int:
        """Tokens per prompt: the tokenizer's context length (start, context, text, end, padding)."""
        return self._layout_().context_length

    def to(self, device: str | torch.device) -> OpenClipBackbone:
        """Move the model to ``device`` (cached token tensors follow on next use)."""
        self.device = torch.device(device)
        self.model.to(self.device)
        prepacked.release(self.model)
        self._ids.clear()
        self._prepared.clear()
        return self

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _text(self) -> NativeTower | HFTower:
        if self._tower is None:
            raise RuntimeFailure(f"backbone {self.id} was built vision-only: it has no text tower")
        return self._tower

    def _layout_(self) -> _Layout:
        if self._layout is None:  # the tokenizer's context (BiomedCLIP: 256) may be below the tower's (512)
            ctx = getattr(self.tokenizer, "context_length", None) or self._text().context_length
            self._layout = _detect_layout(self.tokenizer, min(int(ctx), self._text().context_length))
        return self._layout

    # ----------------------------------------------------------------------------------------- encoders
    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) preprocessed pixels -> (N, D) L2-normalised float32 image embeddings."""
        feats = self.model.encode_image(pixels.to(self.device, self._dtype()))
        return F.normalize(feats.float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Texts -> (N, D) normalised embeddings; equal to ``normalize(model.encode_text(tokenizer(texts)))``
        (computed through the truncated path, which is exact)."""
        texts = list(texts)
        chunks = []
        for i in range(0, len(texts), batch_size):
            part = texts[i : i + batch_size]
            prep = self._prepare(tuple(part), 0, keep=False)  # one-off texts: not worth caching
            chunks.append(F.normalize(self._run_text(prep.embeds, prep).float(), dim=-1))
        return torch.cat(chunks) if chunks else torch.zeros(0, self.embed_dim, device=self.device)

    def token_embeddings(self, text: str) -> torch.Tensor:
        """Frozen token embeddings (n, W) of ``text`` without its start/end tokens (context init)."""
        lay = self._layout_()
        ids = self._token_ids(text)
        n = int((ids != lay.pad_id).nonzero().max()) + 1 if bool((ids != lay.pad_id).any()) else 0
        with torch.no_grad():
            return self._text().embedding(ids[lay.start : n - lay.end]).detach().clone()

    def encode_prompts(self, ctx: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """``ctx`` (P, L, W) after the start token, then the tokens of ``texts[p]`` -> (P, D) normalised.

        Differentiable w.r.t. ``ctx`` only (the tower is frozen). ``L = 0`` equals :meth:`encode_text`.
        """
        texts = list(texts)
        if (
            ctx.dim() != 3
            or ctx.shape[0] != len(texts)
            or (ctx.shape[1] and ctx.shape[2] != self.token_width)
        ):
            raise UsageError(
                f"context must be (P, L, {self.token_width}) with P = {len(texts)} texts; got {tuple(ctx.shape)}"
            )
        prep = self._prepare(tuple(texts), int(ctx.shape[1]))
        x = prep.embeds
        if prep.n_ctx:
            s, n = prep.start, prep.n_ctx
            x = torch.cat([x[:, :s], ctx.to(self.device, x.dtype), x[:, s + n :]], dim=1)
        return F.normalize(self._run_text(x, prep).float(), dim=-1)

    def _run_text(self, x: torch.Tensor, prep: Prepared) -> torch.Tensor:
        """The text tower on prepared token embeddings (MKL-packed weights where ``prepack_weights``)."""
        with prepacked.enabled(self.prepack_weights):
            return self._text().forward(x, prep)

    # --------------------------------------------------------------------------------- token handling
    def _token_ids(self, text: str) -> torch.Tensor:
        self._tokenize([text])
        return self._ids[text]

    def _tokenize(self, texts: Sequence[str]) -> None:
        """Tokenize the texts not seen yet, in one call; ids are kept per text (on the device)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._ids]
        if new:
            ids = self.tokenizer(new, context_length=self.context_length).to(self.device)
            self._ids.update(zip(new, ids, strict=True))

    def _prepare(self, texts: tuple[str, ...], n_ctx: int, keep: bool = True) -> Prepared:
        """Token ids of ``texts`` with ``n_ctx`` context slots after the start token, cut to the longest
        real length where exact; their frozen embeddings are computed once and (``keep``) cached."""
        truncate = bool(self.truncate_prompts)
        packed = truncate and bool(self.pack_prompts)
        key = (texts, n_ctx, truncate if packed or not truncate else "padded")
        hit = self._prepared.get(key)
        if hit is not None:
            self._prepared.move_to_end(key)
            return hit
        lay, tower = self._layout_(), self._text()
        ctx_len = lay.context_length
        if n_ctx >= ctx_len - lay.start - lay.end:
            raise UsageError(f"{n_ctx} context tokens do not fit in a context of {ctx_len} tokens")
        rows, lengths = [], []
        self._tokenize(texts)
        for text in texts:
            ids = self._token_ids(text)
            real = ids != lay.pad_id
            n = int(real.nonzero().max()) + 1 if bool(real.any()) else 0
            body = ids[lay.start : n]
            room = ctx_len - lay.start - n_ctx
            if body.numel() > room:  # truncate, keeping the end token last (as open_clip's tokenizers do)
                body = (
                    torch.cat([body[: room - lay.end], body[body.numel() - lay.end :]])
                    if lay.end
                    else body[:room]
                )
            head = ids[: lay.start]
            ctx_ids = torch.full((n_ctx,), -1, dtype=ids.dtype, device=ids.device)
            row = torch.cat([head, ctx_ids, body])
            lengths.append(row.numel())
            pad = torch.full((ctx_len - row.numel(),), lay.pad_id, dtype=ids.dtype, device=ids.device)
            rows.append(torch.cat([row, pad]))
        all_ids = torch.stack(rows) if rows else torch.zeros(0, ctx_len, dtype=torch.long, device=self.device)
        short = truncate and tower.can_truncate()
        length = max(lengths, default=1) if short else ctx_len
        all_ids = all_ids[:, :length]
        with torch.no_grad():
            embeds = tower.embedding(all_ids.clamp_min(0))
            embeds[:, lay.start : lay.start + n_ctx] = 0
        pack = (
            packing(lengths, length, self.device) if short and packed and rows and tower.can_pack() else None
        )
        if pack is not None and pack.rows * pack.width >= len(rows) * length:
            pack = None  # no padding to save
        prep = Prepared(embeds=embeds, ids=all_ids, start=lay.start, n_ctx=n_ctx, pack=pack)
        if not keep:
            return prep
        self._prepared[key] = prep
        while len(self._prepared) > _CACHE_SIZE:
            self._prepared.popitem(last=False)
        return prep
