"""A kmat :class:`~kmat_cli.api.Backbone` around an already-built open_clip model, with prompt injection.

Prompt injection: a learnable context ``ctx`` (P, L, W) is placed right after the start token, followed by
the frozen token embeddings of ``texts[p]``, the end token and padding:

    e_p = [E(start), ctx_p(1..L), E(t_p1), ..., E(t_pn), E(end), E(pad), ...]

and ``e_p`` runs through the frozen text tower exactly as the model's own ``encode_text`` runs its token
embeddings, for both tower kinds open_clip has:

* the native transformer (``CLIP`` or a ``TextTransformer`` inside ``CustomTextCLIP``): + positional
  embedding, transformer with its causal mask (and pad/CLS masks where configured), final LayerNorm,
  pooling (argmax/eos at the end token shifted by L, first, last), projection;
* HF towers (``HFTextEncoder``, e.g. BiomedCLIP's PubMedBERT): ``inputs_embeds`` with the attention mask
  of the real tokens (context included, padding excluded), positions continuing after the context, the
  tower's pooler and projection.

The tower runs only up to the longest real prompt length in the batch where that is exact (causal or
padding-masked attention, pooling at a real position); otherwise over the full context. BERT-type HF towers
with SDPA attention go further and run no padding at all: the prompts' real tokens are packed one after
another into rows of up to twice the longest prompt (at least 32 tokens), each prompt with its own positions
(0, 1, ...) and an attention mask that keeps it to its own tokens (block diagonal): the same computation as
the padded batch (the padding is masked out of the keys there) without the padded rows' work. Short rows
keep the attention kernel cheap (measured on BiomedCLIP's BERT: one row of all six chest prompts cost twice
the padded batch's attention time, rows of about two prompts nearly the same). A text longer than
``context_length - L`` tokens is truncated as open_clip's tokenizers truncate: its end token is kept last.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from kmat.backbones import prepacked
from torch import nn

from kmat_cli.api import Backbone, RuntimeFailure, UsageError

__all__ = ["OpenClipBackbone"]

_CACHE_SIZE = 8  # distinct (texts, L) prompt batches whose token embeddings stay cached
_PACK_FACTOR = 2  # a packed row holds up to this many times the longest prompt's tokens ...
_PACK_MIN_TOKENS = 32  # ... and at least this many


@dataclass(frozen=True)
class _Layout:
    """Where a tokenizer puts its special tokens: ``start`` (0 or 1 leading tokens), ``end`` (0 or 1
    trailing tokens), ``pad_id`` and ``context_length``."""

    start: int
    end: int
    pad_id: int
    context_length: int


@dataclass
class _Packing:
    """Where the real tokens of a padded (P, T) batch go in R packed rows of C tokens.

    ``padded[k]`` and ``packed[k]`` are the flat positions (p * T + t and r * C + c) of real token k;
    ``positions`` (R, C) restart at 0 for every prompt; ``mask`` (R, 1, C, C) is True where query and key
    belong to the same prompt (unused slots at the end of a row form one-token groups of their own, so no
    query row is fully masked); ``rows``/``width`` are R and C.

    For a last layer run on the first token of each prompt only (R rows of S query slots, S the most
    prompts in a row): ``first`` (R * S,) the packed flat position of each slot's first token (a spare
    slot: its row's first position), ``first_mask`` (R, 1, S, C) the keys of each slot's prompt (a spare
    slot: key 0 alone) and ``slot`` (P,) each prompt's slot."""

    padded: torch.Tensor
    packed: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    rows: int
    width: int
    first: torch.Tensor
    first_mask: torch.Tensor
    slot: torch.Tensor


def _packing(lengths: Sequence[int], width: int, device: torch.device) -> _Packing:
    """Pack prompts of real ``lengths`` (padded to ``width`` tokens) in order into rows of at most
    ``max(_PACK_FACTOR * longest, _PACK_MIN_TOKENS)`` tokens (a new row starts when the next prompt does
    not fit); the rows are as wide as the fullest one."""
    cap = max(_PACK_FACTOR * max(lengths, default=1), _PACK_MIN_TOKENS)
    rows: list[list[int]] = [[]]
    fill = 0
    for p, n in enumerate(lengths):
        if fill + n > cap and rows[-1]:
            rows.append([])
            fill = 0
        rows[-1].append(p)
        fill += n
    C = max(sum(lengths[p] for p in row) for row in rows)
    S = max(len(row) for row in rows)
    padded, packed, positions, groups = [], [], torch.zeros(len(rows), C, dtype=torch.long), []
    first = torch.arange(len(rows)).repeat_interleave(S) * C
    first_mask = torch.zeros(len(rows), 1, S, C, dtype=torch.bool)
    first_mask[..., 0] = True
    slot = torch.zeros(len(lengths), dtype=torch.long)
    for r, row in enumerate(rows):
        group = torch.arange(C)  # unused slots: a group each (never a query without any key)
        at = 0
        for g, p in enumerate(row):
            n = lengths[p]
            padded.append(torch.arange(n) + p * width)
            packed.append(torch.arange(n) + r * C + at)
            positions[r, at : at + n] = torch.arange(n)
            group[at : at + n] = -1 - g
            first[r * S + g] = r * C + at
            first_mask[r, 0, g] = False
            first_mask[r, 0, g, at : at + n] = True
            slot[p] = r * S + g
            at += n
        groups.append(group)
    g = torch.stack(groups)
    return _Packing(
        padded=torch.cat(padded).to(device),
        packed=torch.cat(packed).to(device),
        positions=positions.to(device),
        mask=(g[:, :, None] == g[:, None, :]).unsqueeze(1).to(device),
        rows=len(rows),
        width=C,
        first=first.to(device),
        first_mask=first_mask.to(device),
        slot=slot.to(device),
    )


@dataclass
class _Prepared:
    """A prompt batch ready to run: token embeddings with zeros where the context goes, the token ids
    (-1 at context positions; used for pooling and attention masks), the context offset/length and, for
    towers that run packed rows, where each real token goes (:class:`_Packing`)."""

    embeds: torch.Tensor  # (P, T, W) frozen token embeddings, context slots zero
    ids: torch.Tensor  # (P, T) token ids, -1 at context positions
    start: int
    n_ctx: int
    pack: _Packing | None = None


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


class _NativeTower:
    """open_clip's own text transformer, read from ``CLIP`` (flattened attributes) or a ``TextTransformer``."""

    def __init__(self, owner: nn.Module, *, clip_flat: bool) -> None:
        self.owner = owner
        self.clip_flat = clip_flat  # CLIP.encode_text: no CLS embedding, no pad mask (mirrors model.py)
        self.pool_type = owner.text_pool_type if clip_flat else owner.pool_type
        self.eos_id = getattr(owner, "text_eos_id" if clip_flat else "eos_id", None)
        self.cls_emb = None if clip_flat else owner.cls_emb
        self.use_pad_mask = False if clip_flat else bool(owner.use_pad_mask)
        self.context_length = int(owner.positional_embedding.shape[0]) - (self.cls_emb is not None)

    @property
    def embedding(self) -> nn.Embedding:
        return self.owner.token_embedding

    def text_modules(self) -> list[nn.Module]:
        """The modules that run text (not the image tower of a flat ``CLIP``)."""
        if not self.clip_flat:
            return [self.owner]
        proj = self.owner.text_projection
        return [self.owner.transformer] + ([proj] if isinstance(proj, nn.Module) else [])

    def can_truncate(self) -> bool:
        """Running only the first T positions is exact when later positions cannot reach earlier ones
        (causal mask, or padding masked out of the keys) and the pooled position is a real token."""
        masked = self.owner.attn_mask is not None or self.use_pad_mask
        return masked and self.cls_emb is None and self.pool_type in ("argmax", "eos", "first")

    def can_pack(self) -> bool:
        return False

    def forward(self, x: torch.Tensor, prep: _Prepared) -> torch.Tensor:
        from open_clip.transformer import text_global_pool

        o = self.owner
        cast_dtype = o.transformer.get_cast_dtype()
        x = x.to(cast_dtype)
        seq_len = x.shape[1]
        attn_mask = o.attn_mask
        if self.cls_emb is not None:
            x = torch.cat([x, self.cls_emb.to(cast_dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)], 1)
            seq_len += 1
        if attn_mask is not None:
            attn_mask = attn_mask[:seq_len, :seq_len]
        if self.use_pad_mask or self.cls_emb is not None:
            # the model masks ids equal to its pad id; context slots are never padding
            mask_ids = torch.where(prep.ids < 0, o.pad_id + 1, prep.ids)
            add_mask = o._build_additive_mask(mask_ids, seq_len, x.dtype)
            attn_mask = add_mask if attn_mask is None else attn_mask.unsqueeze(0) + add_mask
        x = x + o.positional_embedding[:seq_len].to(cast_dtype)
        x = o.transformer(x, attn_mask=attn_mask)
        if self.cls_emb is not None:
            pooled = o.ln_final(text_global_pool(x, pool_type="last"))
        else:
            x = o.ln_final(x)
            pooled = text_global_pool(x, prep.ids, self.pool_type, eos_token_id=self.eos_id)
        proj = o.text_projection
        if proj is not None:
            pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
        return pooled


class _HFTower:
    """open_clip's ``HFTextEncoder``: a transformers model fed ``inputs_embeds`` and an attention mask."""

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self.context_length = int(encoder.context_length)

    @property
    def embedding(self) -> nn.Embedding:
        return self.encoder.transformer.get_input_embeddings()

    def text_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def can_truncate(self) -> bool:
        """Padding is masked out of the attention keys, so dropping trailing padding is exact for poolers
        that read real positions only (CLS, masked mean)."""
        return type(self.encoder.pooler).__name__ in ("ClsPooler", "ClsLastHiddenStatePooler", "MeanPooler")

    def can_pack(self) -> bool:
        """Packed rows (see the module docstring) need a BERT-type model (absolute positions that the
        caller can set, token type 0) whose SDPA attention takes the block-diagonal mask as given, and a
        pooler that reads the last hidden state only (not BERT's own pooler output)."""
        config = self.encoder.transformer.config
        pooler = type(self.encoder.pooler).__name__
        reads_hidden = pooler in ("ClsLastHiddenStatePooler", "MeanPooler") or (
            pooler == "ClsPooler" and not getattr(self.encoder.pooler, "use_pooler_output", True)
        )
        return (
            getattr(config, "model_type", None) == "bert"
            and getattr(config, "position_embedding_type", "absolute") == "absolute"
            and getattr(config, "_attn_implementation", None) == "sdpa"
            and not getattr(config, "is_decoder", False)
            and reads_hidden
        )

    def first_token_only(self) -> bool:
        """The pooler reads the first token's last hidden state alone and the model is BERT's stack of
        embeddings and encoder layers (self-attention, output, intermediate; no chunking, no cross-attention,
        eval mode): then the last layer needs to run only for the first token of each prompt
        (:meth:`_first_tokens`)."""
        bert, pooler = self.encoder.transformer, self.encoder.pooler
        layers = getattr(getattr(bert, "encoder", None), "layer", None)
        if getattr(pooler, "cls_token_position", None) != 0 or not layers or bert.training:
            return False
        if type(pooler).__name__ == "ClsPooler" and getattr(pooler, "use_pooler_output", True):
            return False
        last = layers[-1]
        sa = getattr(getattr(last, "attention", None), "self", None)
        return (
            hasattr(bert, "embeddings")
            and all(hasattr(sa, a) for a in ("query", "key", "value", "num_attention_heads", "scaling"))
            and all(hasattr(last, a) for a in ("intermediate", "output"))
            and hasattr(last.attention, "output")
            and not getattr(last, "chunk_size_feed_forward", 0)
            and not getattr(last, "add_cross_attention", False)
        )

    def _first_tokens(self, rows: torch.Tensor, pk: _Packing) -> torch.Tensor:
        """(P, H) last hidden states of each prompt's first token from packed rows (R, C, W): the model's
        embeddings and all layers but the last on the rows, then the last layer with the first tokens as its
        only queries (keys and values from all tokens, each prompt's own; the output, intermediate and
        output modules are per token). BERT's layer, written out for those queries: the same values."""
        bert = self.encoder.transformer
        *layers, last = bert.encoder.layer
        h = bert.embeddings(inputs_embeds=rows, position_ids=pk.positions)
        for layer in layers:
            out = layer(h, pk.mask)
            h = out[0] if isinstance(out, tuple) else out
        sa = last.attention.self
        R, C, H = h.shape
        heads = sa.num_attention_heads
        first = h.reshape(R * C, H)[pk.first]  # (R * S, H)
        q = sa.query(first).view(R, -1, heads, H // heads).transpose(1, 2)
        k = sa.key(h).view(R, C, heads, H // heads).transpose(1, 2)
        v = sa.value(h).view(R, C, heads, H // heads).transpose(1, 2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=pk.first_mask, scale=sa.scaling)
        att = last.attention.output(att.transpose(1, 2).reshape(-1, H), first)
        return last.output(last.intermediate(att), att)[pk.slot]

    def forward(self, x: torch.Tensor, prep: _Prepared) -> torch.Tensor:
        enc = self.encoder
        # the model's own mask is ``ids != pad_token_id``; context slots are always attended
        mask = torch.where(prep.ids < 0, True, prep.ids != enc.config.pad_token_id).long()
        x = x.to(self.embedding.weight.dtype)
        if prep.pack is None:
            out = enc.transformer(inputs_embeds=x, attention_mask=mask)
            return enc.proj(enc.pooler(out, mask))
        from transformers.modeling_outputs import BaseModelOutput

        pk, (P, T, W) = prep.pack, x.shape
        rows = x.new_zeros(pk.rows * pk.width, W).index_copy(0, pk.packed, x.reshape(P * T, W)[pk.padded])
        rows = rows.view(pk.rows, pk.width, W)
        if self.first_token_only():
            return enc.proj(self._first_tokens(rows, pk))
        out = enc.transformer(
            inputs_embeds=rows, attention_mask=pk.mask, position_ids=pk.positions
        ).last_hidden_state
        hidden = out.new_zeros(P * T, out.shape[-1]).index_copy(
            0, pk.padded, out.reshape(-1, out.shape[-1])[pk.packed]
        )
        return enc.proj(enc.pooler(BaseModelOutput(last_hidden_state=hidden.view(P, T, -1)), mask))


def _text_tower(model: nn.Module) -> _NativeTower | _HFTower | None:
    text = getattr(model, "text", None)
    if text is not None:
        if hasattr(text, "transformer") and hasattr(text, "pooler") and hasattr(text, "proj"):
            return _HFTower(text)
        if hasattr(text, "token_embedding"):
            return _NativeTower(text, clip_flat=False)
        raise UsageError(f"unsupported open_clip text tower {type(text).__name__}: no token embedding")
    if hasattr(model, "token_embedding") and hasattr(model, "transformer"):
        return _NativeTower(model, clip_flat=True)
    return None  # vision-only model


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
        self._tower = _text_tower(model) if tokenizer is not None else None
        self._layout: _Layout | None = None
        self.token_width = int(self._tower.embedding.weight.shape[1]) if self._tower is not None else 0
        self._ids: dict[str, torch.Tensor] = {}
        self._prepared: OrderedDict[tuple[tuple[str, ...], int, bool | str], _Prepared] = OrderedDict()
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

    def _text(self) -> _NativeTower | _HFTower:
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

    def _run_text(self, x: torch.Tensor, prep: _Prepared) -> torch.Tensor:
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

    def _prepare(self, texts: tuple[str, ...], n_ctx: int, keep: bool = True) -> _Prepared:
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
            _packing(lengths, length, self.device) if short and packed and rows and tower.can_pack() else None
        )
        if pack is not None and pack.rows * pack.width >= len(rows) * length:
            pack = None  # no padding to save
        prep = _Prepared(embeds=embeds, ids=all_ids, start=lay.start, n_ctx=n_ctx, pack=pack)
        if not keep:
            return prep
        self._prepared[key] = prep
        while len(self._prepared) > _CACHE_SIZE:
            self._prepared.popitem(last=False)
        return prep
