"""K-MaT: knowledge-anchored manifold transport (the flagship method)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from kmat_cli.contracts import MODALITIES
from kmat_cli.limits import Above, Range
from kmat_cli.methods.agreement import class_agreement, disagreement
from kmat_cli.methods.base import (
    LOSS_WEIGHT_MAX,
    Method,
    MethodSetup,
    check_template,
    mean_cosine,
    modality_prototypes,
)
from kmat_cli.prompts import PromptLearner


class KMaT(Method):
    """K-MaT: modality- and class-specific prompts, anchored to descriptions, aligned by transport.

    Prompt of class k under modality m: ``[start] M_m(1..L) C_k(1..L) <modality words> <class>. [end]``
    (``msc``: M_m; ``csc``: C_k, else one context shared by all classes; ``independent``: a separate
    context per (k, m)); t_{k,m} its normalised embedding. Loss on a batch of high-end images only:

        L = L_ce + lambda1 * L_anchor + lambda2 * L_FGW
        L_ce     = CE(s * cos(f(x), t_{k,hi}) over k)
        L_anchor = mean_{k,m} || t_{k,m} - p_{k,m} ||_2 (split as below under ``agreement``),   p_{k,m} = normalize(mean_j normalize(E(d_{k,m,j})))
        d_{k,m,j} = description_template.format(modality=<modality words of m>, description=desc_{k,m,j})
        L_FGW    = T(stop_grad(t_{.,hi}), t_{.,lo})        T: the run's transport (fgw, wasserstein, gw, ...)

    ``description_template`` (default ``"{modality}: {description}"``) writes each description with the
    same modality words as the prompt it anchors, so that p_{k,hi} and p_{k,lo} differ by modality as the
    prompts do; ``"{description}"`` is the literal reading (bare descriptions). The transport is solved
    in float64 (K x D is small), so that its solver's tolerances are reachable.

    ``agreement`` (default on; the label-free rule of docs/defaults.md, :mod:`kmat_cli.methods.agreement`):
    from the prototypes alone, a_k = how surely the low-end prototype of class k and the high-end
    prototype of class k find each other (centred cosines, softmax temperature ``agreement_tau``). The
    low-end anchor is split into the modality's location and the classes' offsets from it, the latter
    weighted by a_k (the centred transport places offsets, never the location):

        L_anchor = 1/2 [ mean_k ||t_{k,hi} - p_{k,hi}|| + ||tbar_lo - pbar_lo||
                         + mean_k a_k ||(t_{k,lo} - tbar_lo) - (p_{k,lo} - pbar_lo)|| ],  xbar = mean_k x_k

    and the transport weight becomes ``lambda2 * agreement_lambda2 * delta``, delta = clip((1 - mean_k
    a_k) / (1 - 1/K), 0, 1): agreeing low-end descriptions keep the low end on their anchor, weak or
    permuted ones hand the class geometry to the transport. With ``agreement`` off, L_anchor = mean_{k,m}
    ||t_{k,m} - p_{k,m}|| and the transport weight is ``lambda2``; so it is for a K-MaT with the anchor off and
    no descriptions at all (nothing for the rule to read).

    Ablation switches: ``anchor`` and ``transport`` drop their term; ``csc``/``msc`` as above. The
    prototypes are computed once (no gradient). Low-end images are never used.
    """

    prototypes: torch.Tensor  # (2, K, D), a buffer

    limits: ClassVar[dict[str, Range]] = {
        "n_ctx": (1, None),
        "lambda1": (0, LOSS_WEIGHT_MAX),
        "lambda2": (0, LOSS_WEIGHT_MAX),
        "agreement_tau": (Above(0), None),
        "agreement_lambda2": (0, LOSS_WEIGHT_MAX),
    }

    def __init__(
        self,
        setup: MethodSetup,
        *,
        n_ctx: int = 4,
        init_words: str = "",
        csc: bool = True,
        msc: bool = True,
        independent: bool = False,
        anchor: bool = True,
        transport: bool = True,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        description_template: str = "{modality}: {description}",
        agreement: bool = True,
        agreement_tau: float = 0.1,
        agreement_lambda2: float = 3.0,
    ) -> None:
        super().__init__(setup)
        check_template(description_template, "method.description_template")
        self.description_template = description_template
        words = setup.modalities
        texts = {m: [f"{words[m]} {c}." for c in self.class_names] for m in MODALITIES}
        self.prompts = PromptLearner(
            self.backbone,
            texts,
            n_ctx=n_ctx,
            csc=csc,
            msc=msc,
            independent=independent,
            init_words=init_words,
        )
        self._unanchored: torch.Tensor | None = None  # the prototypes of text_checks, without an anchor
        self.agreement: torch.Tensor | None = None  # (K,) a_k of the low-end descriptions, when ``agreement``
        # The rule of docs/defaults.md reads the descriptions: a transport-only K-MaT without any keeps its
        # lambda2 (with the anchor on, missing descriptions are the anchor's one-line error).
        if agreement and (anchor or setup.descriptions):
            p = self._prototypes()
            self.agreement = class_agreement(
                p[MODALITIES.index("lo")], p[MODALITIES.index("hi")], agreement_tau
            )
            lambda2 = lambda2 * agreement_lambda2 * disagreement(self.agreement)
        self.lambda1, self.lambda2 = lambda1, lambda2
        self.use_anchor = anchor and lambda1 != 0
        self.use_transport = transport and lambda2 != 0 and setup.transport is not None
        if self.use_anchor:
            self.register_buffer("prototypes", self._prototypes(), persistent=False)  # (2, K, D)

    def _prototypes(self) -> torch.Tensor:
        """(2, K, D): p_{k,m} of every modality m in MODALITIES order (see the class docstring)."""
        return modality_prototypes(self, self.description_template)

    def text_checks(self) -> dict[str, Any] | None:
        """At the current prompts: ``cos_p_hi_lo`` = mean_k cos(p_hi,k, p_lo,k), ``cos_t_hi_lo`` = mean_k
        cos(t_hi,k, t_lo,k) and ``cos_t_p`` = {m: mean_k cos(t_m,k, p_m,k)}, with the template used; None
        when there are no descriptions. Text only: no image, no label."""
        if not self.setup.descriptions:
            return None
        if self.use_anchor:
            p = self.prototypes
        else:
            if self._unanchored is None:
                self._unanchored = self._prototypes()
            p = self._unanchored
        with torch.no_grad():
            t = self.prompts()
        t = {m: t[m].to(p.device) for m in MODALITIES}
        extra = {}
        if self.agreement is not None:
            extra = {"agreement": self.agreement.tolist(), "lambda2": self.lambda2}
        return {
            **extra,
            "description_template": self.description_template,
            "cos_p_hi_lo": mean_cosine(p[0], p[1]),
            "cos_t_hi_lo": mean_cosine(t["hi"], t["lo"]),
            "cos_t_p": {m: mean_cosine(t[m], p[i]) for i, m in enumerate(MODALITIES)},
        }

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        return self.prompts()

    def anchor_loss(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_anchor of the class docstring: mean_{k,m} ||t_{k,m} - p_{k,m}||, or its split form under
        ``agreement``."""
        hi, lo = MODALITIES.index("hi"), MODALITIES.index("lo")
        if self.agreement is None:
            t = torch.stack([text[m] for m in MODALITIES])
            return (t - self.prototypes).norm(dim=-1).mean()
        t_lo, p_lo = text["lo"], self.prototypes[lo]
        t_mean, p_mean = t_lo.mean(0), p_lo.mean(0)
        offsets = ((t_lo - t_mean) - (p_lo - p_mean)).norm(dim=-1)
        high = (text["hi"] - self.prototypes[hi]).norm(dim=-1).mean()
        return 0.5 * (high + (t_mean - p_mean).norm() + (self.agreement.to(offsets) * offsets).mean())

    def losses(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.loss_terms(self.prompts(), features, labels)

    def loss_terms(
        self, text: dict[str, torch.Tensor], features: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The weighted loss terms given the prompt embeddings ``text`` ({"hi", "lo"}: (K, D) each)."""
        logits = self.logit_scale * F.normalize(features.float(), dim=-1) @ text["hi"].t()
        out = {"ce": F.cross_entropy(logits, labels)}
        if self.use_anchor:
            out["anchor"] = self.lambda1 * self.anchor_loss(text)
        transport = self.setup.transport
        if self.use_transport and transport is not None:
            hi, lo = text["hi"].detach().double(), text["lo"].double()  # K x D is tiny; float64 lets the
            out["transport"] = self.lambda2 * transport(hi, lo).float()  # solver meet its tolerances
        return out
