"""CoOp: one learnable context shared by all classes; the same class embeddings score both modalities."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from kmat_cli.limits import Range
from kmat_cli.methods.base import Method, MethodSetup
from kmat_cli.prompts import PromptLearner


class CoOp(Method):
    """CoOp (Zhou et al., 2022): one learned context C(1..L) before "<class>.", loss = cross-entropy.

    Prompt ``[start] C(1..L) <class>. [end]``.

    One unified context (``csc: true`` for CoOp's class-specific variant), initialised from ``init_words``
    ("a photo of a", as BiomedCoOp's re-runs) or N(0, 0.02) when empty. Trained on high-end images only;
    the same K embeddings are used for the high-end and the low-end modality.
    """

    limits: ClassVar[dict[str, Range]] = {"n_ctx": (1, None)}
    reads_descriptions = False

    def __init__(
        self, setup: MethodSetup, *, n_ctx: int = 4, init_words: str = "a photo of a", csc: bool = False
    ) -> None:
        super().__init__(setup)
        self.prompts = PromptLearner(
            self.backbone,
            {"all": [f"{c}." for c in self.class_names]},
            n_ctx=n_ctx,
            csc=csc,
            init_words=init_words,
        )

    def class_embeddings(self) -> torch.Tensor:
        """(K, D) normalised class embeddings (shared by both modalities)."""
        return self.prompts()["all"]

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        t = self.class_embeddings()
        return {"hi": t, "lo": t}

    def ce(self, features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``s * normalize(f) @ text^T``."""
        logits = self.logit_scale * F.normalize(features.float(), dim=-1) @ text.t()
        return F.cross_entropy(logits, labels)

    def losses(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ce": self.ce(features, labels, self.class_embeddings())}
