"""CoCoOp: CoOp with an image-conditioned bias on the context (a small meta-network)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kmat_cli.limits import Range
from kmat_cli.methods.base import Method, MethodSetup
from kmat_cli.prompts import PromptLearner, encode


class CoCoOp(Method):
    """CoCoOp (Zhou et al., 2022): context C + pi(f(x)) per image, pi = Linear(D -> D/16) -> ReLU -> Linear(-> W).

    For image x the prompt of class k is ``[start] (C(1..L) + pi(f(x))) <class>. [end]`` (the bias is added
    to every context vector) and its logits are ``s * f(x) . t_k(x)``; loss = cross-entropy. The same
    prompts score both modalities.

    Exported / ``text_embeddings()``: the prompts with a **zero meta-net bias** (context C alone), one
    image-independent embedding per class; this is an approximation of the method, which conditions on
    every image. :meth:`logits` (used by ``kmat evaluate``) conditions on each image, as CoCoOp does.
    """

    meta_net: nn.Sequential

    reads_descriptions = False

    image_conditioned = True

    limits: ClassVar[dict[str, Range]] = {
        "n_ctx": (1, None),
        "hidden_ratio": (1, None),
        "chunk_size": (1, None),
    }

    def __init__(
        self,
        setup: MethodSetup,
        *,
        n_ctx: int = 4,
        init_words: str = "a photo of a",
        hidden_ratio: int = 16,
        chunk_size: int = 64,
    ) -> None:
        super().__init__(setup)
        self.prompts = PromptLearner(
            self.backbone, {"all": [f"{c}." for c in self.class_names]}, n_ctx=n_ctx, init_words=init_words
        )
        dim, width = self.backbone.embed_dim, self.backbone.token_width
        hidden = max(1, dim // hidden_ratio)
        self.meta_net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, width))
        self.chunk_size = chunk_size
        self._texts = self.prompts.texts["all"]

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        t = self.prompts()["all"]
        return {"hi": t, "lo": t}

    def conditioned_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, K) logits with per-image prompts: t_k(x_b) from context C + pi(f(x_b))."""
        f = F.normalize(features.float(), dim=-1)
        B, K = f.shape[0], self.num_classes
        ctx = self.prompts.contexts()[0]  # (K, L, W), the same unified context for every class
        bias = self.meta_net(f.to(next(self.meta_net.parameters()).dtype))  # (B, W)
        shifted = ctx.unsqueeze(0) + bias[:, None, None, :]  # (B, K, L, W)
        text = encode(self.backbone, shifted.reshape(B * K, *ctx.shape[1:]), self._texts * B)
        text = text.reshape(B, K, -1)
        return self.logit_scale * torch.einsum("bd,bkd->bk", f, text)

    def logits(self, features: torch.Tensor, modality: str) -> torch.Tensor:
        """Image-conditioned logits (the modality does not change CoCoOp's prompts), in chunks."""
        parts = [
            self.conditioned_logits(features[i : i + self.chunk_size])
            for i in range(0, features.shape[0], self.chunk_size)
        ]
        return torch.cat(parts) if parts else features.new_zeros(0, self.num_classes)

    def losses(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ce": F.cross_entropy(self.conditioned_logits(features), labels)}
