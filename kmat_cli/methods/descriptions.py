"""Classification by description: each class scored by its description prototype, no training."""

from __future__ import annotations

import torch

from kmat_cli.contracts import MODALITIES
from kmat_cli.methods.base import Method, MethodSetup, check_template, modality_prototypes


class Descriptions(Method):
    """Classification by description (Menon & Vondrick 2023; CuPL, Pratt et al. 2023), no training.

    t_{k,m} = p_{k,m} = normalize(mean_j normalize(E(d_{k,m,j}))),
    d_{k,m,j} = description_template.format(modality=<modality words of m>, description=desc_{k,m,j}):
    the same prototypes K-MaT's anchor pulls its prompts towards (same template, same code), so this
    method says what K-MaT's training adds over reading the descriptions.
    """

    prototypes: torch.Tensor  # (2, K, D), a buffer

    trainable = False

    def __init__(
        self, setup: MethodSetup, *, description_template: str = "{modality}: {description}"
    ) -> None:
        super().__init__(setup)
        check_template(description_template, "method.description_template")
        self.description_template = description_template
        self.register_buffer("prototypes", modality_prototypes(self, description_template), persistent=False)

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        return {m: self.prototypes[i] for i, m in enumerate(MODALITIES)}
