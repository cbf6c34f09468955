"""open_clip's two kinds of text tower, run on prepared token embeddings exactly as ``encode_text`` runs them.

* :class:`NativeTower`, the native transformer (``CLIP`` or a ``TextTransformer`` inside ``CustomTextCLIP``):
  + positional embedding, transformer with its causal mask (and pad/CLS masks where configured), final
  LayerNorm, pooling (argmax/eos at the end token shifted by the L context tokens, first, last), projection;
* :class:`HFTower`, HF towers (``HFTextEncoder``, e.g. BiomedCLIP's PubMedBERT): ``inputs_embeds`` with the
  attention mask of the real tokens (context included, padding excluded), positions continuing after the
  context, the tower's pooler and projection; BERT-type towers with SDPA attention can run packed rows
  (:mod:`kmat.backbones.packing`) and, for a first-token pooler, the last layer on the first tokens only.

Each tower says whether running only the longest real prompt's length is exact (``can_truncate``) and
whether it can run packed rows (``can_pack``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kmat.backbones.packing import Packing
from torch import nn

from kmat_cli.api import UsageError


@dataclass
class Prepared:
    """A prompt batch ready to run: token embeddings with zeros where the context goes, the token ids
    (-1 at context positions; used for pooling and attention masks), the context offset/length and, for
    towers that run packed rows, where each real token goes (:class:`Packing`)."""

    embeds: torch.Tensor  # (P, T, W) frozen token embeddings, context slots zero
    ids: torch.Tensor  # (P, T) token ids, -1 at context positions
    start: int
    n_ctx: int
    pack: Packing | None = None


class NativeTower:
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

    def forward(self, x: torch.Tensor, prep: Prepared) -> torch.Tensor:
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


class HFTower:
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
        """Packed rows (:mod:`kmat.backbones.packing`) need a BERT-type model (absolute positions that the
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

    def _first_tokens(self, rows: torch.Tensor, pk: Packing) -> torch.Tensor:
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

    def forward(self, x: torch.Tensor, prep: Prepared) -> torch.Tensor:
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


def text_tower(model: nn.Module) -> NativeTower | HFTower | None:
    """The text tower of an open_clip model: an HF tower, a ``TextTransformer``, a flat ``CLIP``'s own
    transformer, or None for a vision-only model (:class:`UsageError` for a text tower of another kind)."""
    text = getattr(model, "text", None)
    if text is not None:
        if hasattr(text, "transformer") and hasattr(text, "pooler") and hasattr(text, "proj"):
            return HFTower(text)
        if hasattr(text, "token_embedding"):
            return NativeTower(text, clip_flat=False)
        raise UsageError(f"unsupported open_clip text tower {type(text).__name__}: no token embedding")
    if hasattr(model, "token_embedding") and hasattr(model, "transformer"):
        return NativeTower(model, clip_flat=True)
    return None  # vision-only model
