"""The shared learnable-context machinery of every prompt-learning method.

A :class:`PromptLearner` holds learnable context vectors and, for each group ``g`` (a modality, or one
shared group) and class ``k``, builds the prompt

    [start] ctx_{g,k}(1..L') <words_{g,k}> [end]

and encodes it with the frozen text tower (``Backbone.encode_prompts``); ``words_{g,k}`` is fixed text
(e.g. ``"clinical photograph melanoma."``). The context of (g, k) is the concatenation

    ctx_{g,k} = [M_g ; C_k]

of an optional modality-specific part ``M_g`` (L vectors per group, shared by all classes; ``msc``) and a
class part ``C_k`` that is either class-specific (L vectors per class, shared by all groups; ``csc``) or
one unified context ``C`` shared by all classes. ``independent`` replaces both by a separate context of L
vectors per (g, k). All vectors start as N(0, std^2) (std 0.02) or, given ``init_words``, as copies of the
frozen token embeddings of those words (then L is their token count, as CoOp does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar

import torch
from torch import nn

from kmat_cli.contracts import Backbone
from kmat_cli.errors import UsageError

INIT_STD = 0.02
_AMP: ContextVar[torch.dtype | None] = ContextVar("kmat_text_amp", default=None)


@contextlib.contextmanager
def mixed_precision(dtype: torch.dtype | None) -> Iterator[None]:
    """Within this block :func:`encode` runs the text tower under CUDA autocast with ``dtype`` (None: off).

    Only the frozen text tower runs in reduced precision; embeddings come back as float32, so logits,
    losses and transports stay in float32 (a bfloat16 logit at scale 100 would be off by up to 0.5)."""
    token = _AMP.set(dtype)
    try:
        yield
    finally:
        _AMP.reset(token)


def encode(backbone: Backbone, ctx: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """``backbone.encode_prompts(ctx, texts)`` as float32, under autocast inside :func:`mixed_precision`."""
    dtype = _AMP.get()
    device = torch.device(getattr(backbone, "device", "cpu"))
    if dtype is None or device.type != "cuda":
        return backbone.encode_prompts(ctx, texts).float()
    with torch.autocast(device_type="cuda", dtype=dtype):
        out = backbone.encode_prompts(ctx, texts)
    return torch.nn.functional.normalize(out.float(), dim=-1)


class PromptLearner(nn.Module):
    """Learnable contexts for ``groups`` x K classes; :meth:`forward` returns ``{group: (K, D)}``.

    ``texts[group]`` lists the K fixed texts that follow the context for that group. Only the context
    vectors are parameters; the backbone stays outside the module (it is frozen and not trained).
    """

    def __init__(
        self,
        backbone: Backbone,
        texts: Mapping[str, Sequence[str]],
        *,
        n_ctx: int = 4,
        csc: bool = False,
        msc: bool = False,
        independent: bool = False,
        init_words: str = "",
        std: float = INIT_STD,
    ) -> None:
        super().__init__()
        self.groups = list(texts)
        if not self.groups:
            raise UsageError("a prompt learner needs at least one group of texts")
        sizes = {len(v) for v in texts.values()}
        if len(sizes) != 1:
            raise UsageError(f"every prompt group needs the same number of classes, got {sorted(sizes)}")
        self.num_classes = sizes.pop()
        self.texts = {g: list(texts[g]) for g in self.groups}
        self._flat_texts = [t for g in self.groups for t in self.texts[g]]
        self.backbone = [backbone]  # a list keeps the frozen backbone out of this module's parameters
        width = backbone.token_width
        init = backbone.token_embeddings(init_words).detach().float().cpu() if init_words.strip() else None
        if init is not None:
            n_ctx = int(init.shape[0])
        if n_ctx < 1:
            raise UsageError(f"n_ctx must be at least 1, got {n_ctx}")
        self.n_ctx = n_ctx
        self.csc, self.msc, self.independent = csc, msc, independent
        G, K, L = len(self.groups), self.num_classes, n_ctx

        def make(*shape: int) -> nn.Parameter:
            if init is not None:
                return nn.Parameter(init.expand(*shape, L, width).clone())
            return nn.Parameter(torch.randn(*shape, L, width) * std)

        if independent:
            self.ctx_independent = make(G, K)
        else:
            if msc:
                self.ctx_modality = make(G)
            if csc:
                self.ctx_class = make(K)
            else:
                self.ctx_shared = make()

    @property
    def context_length(self) -> int:
        """L' = number of context vectors in each prompt."""
        return self.n_ctx * (2 if (self.msc and not self.independent) else 1)

    def contexts(self) -> torch.Tensor:
        """The (G, K, L', W) context of every prompt."""
        G, K = len(self.groups), self.num_classes
        if self.independent:
            return self.ctx_independent
        part = self.ctx_class if self.csc else self.ctx_shared.unsqueeze(0).expand(K, -1, -1)
        part = part.unsqueeze(0).expand(G, -1, -1, -1)
        if self.msc:
            mod = self.ctx_modality.unsqueeze(1).expand(-1, K, -1, -1)
            part = torch.cat([mod, part], dim=2)
        return part

    def forward(self) -> dict[str, torch.Tensor]:
        """``{group: (K, D)}`` normalised text embeddings of the prompts (float32)."""
        ctx = self.contexts()
        G, K = len(self.groups), self.num_classes
        flat = ctx.reshape(G * K, *ctx.shape[2:])
        emb = encode(self.backbone[0], flat, self._flat_texts)
        emb = emb.reshape(G, K, -1)
        return {g: emb[i] for i, g in enumerate(self.groups)}
