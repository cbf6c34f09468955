"""KgCoOp: CoOp kept close to the hand-crafted prompt embeddings."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from kmat_cli.limits import Range
from kmat_cli.methods.base import LOSS_WEIGHT_MAX, MethodSetup, encode_texts
from kmat_cli.methods.coop import CoOp


class KgCoOp(CoOp):
    """KgCoOp (Yao et al., 2023): L = CE + w * mean_k (1 - cos(t_k, t_k^zs)).

    t_k^zs = normalize(TextEncoder(template with class k)), template "a photo of a {classname}.", computed
    once. ``weight`` w = 8 as in the KgCoOp paper (BiomedCoOp's re-run used 1.0).
    """

    text_zeroshot: torch.Tensor  # (K, D), a buffer

    limits: ClassVar[dict[str, Range]] = {**CoOp.limits, "weight": (0, LOSS_WEIGHT_MAX)}

    def __init__(
        self,
        setup: MethodSetup,
        *,
        n_ctx: int = 4,
        init_words: str = "a photo of a",
        csc: bool = False,
        weight: float = 8.0,
        template: str = "a photo of a {classname}.",
    ) -> None:
        super().__init__(setup, n_ctx=n_ctx, init_words=init_words, csc=csc)
        self.weight = weight
        zs = encode_texts(self.backbone, [template.format(classname=c) for c in self.class_names])
        self.register_buffer("text_zeroshot", zs, persistent=False)

    def losses(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.class_embeddings()
        kg = 1.0 - F.cosine_similarity(t, self.text_zeroshot, dim=-1).mean()
        return {"ce": self.ce(features, labels, t), "kg": self.weight * kg}
