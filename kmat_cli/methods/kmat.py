"""K-MaT: knowledge-anchored manifold transport (the flagship method)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kmat_cli.api import MODALITIES
from kmat_cli.methods.base import Method, MethodSetup, prototypes
from kmat_cli.prompts import PromptLearner


class KMaT(Method):
    """K-MaT: modality- and class-specific prompts, anchored to descriptions, aligned by transport.

    Prompt of class k under modality m: ``[start] M_m(1..L) C_k(1..L) <modality words> <class>. [end]``
    (``msc``: M_m; ``csc``: C_k, else one context shared by all classes; ``independent``: a separate
    context per (k, m)); t_{k,m} its normalised embedding. Loss on a batch of high-end images only:

        L = L_ce + lambda1 * L_anchor + lambda2 * L_FGW
        L_ce     = CE(s * cos(f(x), t_{k,hi}) over k)
        L_anchor = mean_{k,m} || t_{k,m} - p_{k,m} ||_2,   p_{k,m} = normalize(mean_j normalize(E(desc_{k,m,j})))
        L_FGW    = T(stop_grad(t_{.,hi}), t_{.,lo})        T: the run's transport (fgw, wasserstein, gw, ...)

    The transport is solved in float64 (K x D is small), so that its solver's tolerances are reachable.

    Ablation switches: ``anchor`` and ``transport`` drop their term; ``csc``/``msc`` as above. The
    prototypes are computed once (no gradient). Low-end images are never used.
    """

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
    ) -> None:
        super().__init__(setup)
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
        self.lambda1, self.lambda2 = lambda1, lambda2
        self.use_anchor = anchor and lambda1 != 0
        self.use_transport = transport and lambda2 != 0 and setup.transport is not None
        if self.use_anchor:
            protos = torch.stack([prototypes(self.backbone, self.descriptions_for(m)) for m in MODALITIES])
            self.register_buffer("prototypes", protos, persistent=False)  # (2, K, D)

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        return self.prompts()

    def anchor_loss(self, text: dict[str, torch.Tensor]) -> torch.Tensor:
        """mean over (k, m) of || t_{k,m} - p_{k,m} ||_2."""
        t = torch.stack([text[m] for m in MODALITIES])
        return (t - self.prototypes).norm(dim=-1).mean()

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
        if self.use_transport:
            hi, lo = text["hi"].detach().double(), text["lo"].double()  # K x D is tiny; float64 lets the
            out["transport"] = (
                self.lambda2 * self.setup.transport(hi, lo).float()
            )  # solver meet its tolerances
        return out
