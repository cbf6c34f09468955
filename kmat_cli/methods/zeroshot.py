"""Zero-shot: hand-crafted prompts, no training."""

from __future__ import annotations

import torch

from kmat_cli.methods.base import Method, MethodSetup, encode_texts


class ZeroShot(Method):
    """Zero-shot baseline: the template "a <modality words> image of <class>." per modality, no training.

    t_{k,m} = normalize(TextEncoder(template.format(modality=words_m, classname=class_k))).
    """

    trainable = False
    reads_descriptions = False

    def __init__(self, setup: MethodSetup, *, template: str = "a {modality} image of {classname}.") -> None:
        super().__init__(setup)
        self.template = template
        for m, words in setup.modalities.items():
            texts = [template.format(modality=words, classname=c) for c in self.class_names]
            self.register_buffer(f"text_{m}", encode_texts(self.backbone, texts), persistent=False)

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        return {m: getattr(self, f"text_{m}") for m in self.setup.modalities}
