"""The base of every method: a prompt learner plus its loss terms; the trainer is shared.

A method is built as ``Method(setup, **options)``: ``setup`` (:class:`MethodSetup`) carries what a run
provides (the frozen backbone, class names, modality words, descriptions, the transport loss); the
keyword-only ``options`` are the method's config section (``method.<option>`` in the run config).

The trainer only calls :meth:`Method.losses` (a dict of already weighted scalar terms; it sums them,
back-propagates and logs each term); evaluation calls :meth:`Method.logits` and export calls
:meth:`Method.text_embeddings`. Constant tensors (description prototypes, hand-crafted prompt embeddings)
are computed once at construction, without gradients, and stored as non-persistent buffers: a checkpoint
holds only what is learned.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kmat_cli.contracts import MODALITIES, Backbone, Transport
from kmat_cli.errors import UsageError
from kmat_cli.limits import Range

LOSS_WEIGHT_MAX = 1e6  # loss terms are O(1) to O(100): weighted, they stay far from float32's 3.4e38


@dataclass
class MethodSetup:
    """What a run gives a method: the frozen backbone, the K class names, the modality words
    (``{"hi": ..., "lo": ...}``), descriptions ``[modality][class] -> list[str]`` (or None) and the
    transport loss built from the run config (None for ``--transport none``)."""

    backbone: Backbone
    class_names: list[str]
    modalities: dict[str, str]
    descriptions: Mapping[str, Mapping[str, Sequence[str]]] | None = None
    transport: Transport | None = None


class Method(nn.Module):
    """Base of methods. Subclasses implement :meth:`text_embeddings` and, if ``trainable``, :meth:`losses`.

    ``trainable``: False for methods without parameters (zero-shot): the trainer skips the epochs.
    ``image_conditioned``: True when :meth:`logits` depends on each image beyond ``text_embeddings``
    (CoCoOp); exported embeddings are then an image-independent approximation (see the method).
    ``limits``: the ranges of the constructor's options (:mod:`kmat_cli.limits`); a loss weight lies in
    ``[0, LOSS_WEIGHT_MAX]`` (a negative one rewards the loss it weighs, a huge one overflows it).
    ``reads_descriptions``: False for methods that never read class descriptions (then the run's
    ``knowledge`` section cannot change what they compute, and a benchmark shares their cells across it).
    """

    trainable: ClassVar[bool] = True
    image_conditioned: ClassVar[bool] = False
    limits: ClassVar[dict[str, Range]] = {}  # option -> (least, most), checked with the config
    reads_descriptions: ClassVar[bool] = True

    def __init__(self, setup: MethodSetup) -> None:
        super().__init__()
        self.setup = setup
        self.class_names = list(setup.class_names)
        self.num_classes = len(self.class_names)

    @property
    def backbone(self) -> Backbone:
        return self.setup.backbone

    @property
    def logit_scale(self) -> float:
        """s: the backbone's own logit scale (exp of its learned log-scale; 100 if it has none)."""
        return float(self.backbone.logit_scale)

    @property
    def device(self) -> torch.device:
        return torch.device(getattr(self.backbone, "device", "cpu"))

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        """``{"hi": (K, D), "lo": (K, D)}``: normalised float32 class embeddings per modality."""
        raise NotImplementedError

    def logits(self, features: torch.Tensor, modality: str) -> torch.Tensor:
        """(N, K) logits ``s * normalize(f) @ t_{., modality}^T`` of image features (N, D)."""
        text = self.text_embeddings()[modality]
        return self.logit_scale * F.normalize(features.float(), dim=-1) @ text.t()

    def text_checks(self) -> dict[str, Any] | None:
        """Label-free, text-only checks of the current prompts (methods with description prototypes per
        modality report ``mean_k cos(p_hi,k, p_lo,k)`` and ``mean_k cos(t_hi,k, t_lo,k)``, see
        docs/defaults.md); None for methods without such prototypes."""
        return None

    def losses(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms of one batch of high-end image features (B, D) with labels (B,)."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable")

    def solver_state(self) -> dict[str, torch.Tensor]:
        """State carried from one training step to the next outside the parameters (the transport's warm
        start), as named tensors; a checkpoint saves it and :meth:`load_solver_state` restores it."""
        transport = self.setup.transport
        return {} if transport is None else transport.solver_state()

    def load_solver_state(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from what :meth:`solver_state` returned."""
        if self.setup.transport is not None:
            self.setup.transport.load_solver_state(state)

    # ------------------------------------------------------------------------------------------ helpers
    def descriptions_for(self, modality: str) -> list[list[str]]:
        """The descriptions of every class under ``modality`` (K lists); a UsageError when missing."""
        desc = self.setup.descriptions
        name = type(self).__name__
        if not desc or modality not in desc:
            raise UsageError(
                f"method {name} needs class descriptions for modality '{modality}'; "
                "give the task descriptions or pass --descriptions FILE"
            )
        out = []
        for cls in self.class_names:
            texts = list(desc[modality].get(cls, []))
            if not texts:
                raise UsageError(f"method {name}: no '{modality}' descriptions for class '{cls}'")
            out.append(texts)
        return out


def encode_texts(backbone: Backbone, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """(N, D) normalised float32 embeddings of ``texts`` (no gradient), in batches."""
    chunks = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            chunks.append(F.normalize(backbone.encode_text(list(texts[i : i + batch_size])).float(), dim=-1))
    return torch.cat(chunks)


def description_embeddings(backbone: Backbone, per_class: Sequence[Sequence[str]]) -> list[torch.Tensor]:
    """e_{k,j}: the normalised embedding of every description j of every class k (list of (N_k, D))."""
    flat = [t for texts in per_class for t in texts]
    emb = encode_texts(backbone, flat)
    out, start = [], 0
    for texts in per_class:
        out.append(emb[start : start + len(texts)])
        start += len(texts)
    return out


def prototypes(backbone: Backbone, per_class: Sequence[Sequence[str]]) -> torch.Tensor:
    """p_k = normalize(mean_j normalize(TextEncoder(desc_{k,j}))): (K, D), no gradient."""
    return torch.stack([F.normalize(e.mean(0), dim=-1) for e in description_embeddings(backbone, per_class)])


TEMPLATE_FIELDS = ("modality", "description")


def check_template(template: str, key: str) -> None:
    """Reject a description template (config key ``key``) that lacks ``{description}``, uses a placeholder
    other than ``{modality}`` and ``{description}``, or does not parse: a one-line ``UsageError``."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise UsageError(
            f"{key} '{template}' is not a valid template ({exc}); use e.g. '{{modality}}: {{description}}'"
        ) from exc
    unknown = sorted({f for f in fields if f not in TEMPLATE_FIELDS})
    if unknown:
        raise UsageError(
            f"{key} '{template}' has unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; "
            "use only {modality} and {description}"
        )
    if "description" not in fields:
        raise UsageError(f"{key} '{template}' needs the placeholder {{description}}")


def templated(per_class: Sequence[Sequence[str]], template: str, modality: str) -> list[list[str]]:
    """Every description of every class written through ``template`` with ``{modality}`` = ``modality``
    (the modality words) and ``{description}`` = the description (see :func:`check_template`)."""
    return [[template.format(modality=modality, description=d) for d in texts] for texts in per_class]


def modality_prototypes(method: Method, template: str) -> torch.Tensor:
    """(M, K, D): p_{k,m} = normalize(mean_j normalize(E(template(words_m, desc_{k,m,j})))) of every
    modality m in ``MODALITIES`` order, from ``method``'s descriptions and backbone; no gradient."""
    words = method.setup.modalities
    return torch.stack(
        [
            prototypes(method.backbone, templated(method.descriptions_for(m), template, words[m]))
            for m in MODALITIES
        ]
    )


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """mean_k cos(a_k, b_k) of two (K, D) matrices."""
    return float(F.cosine_similarity(a.float(), b.float(), dim=-1).mean())
