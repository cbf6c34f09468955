"""BiomedCoOp: CoOp with LLM-description consistency and knowledge distillation from selected prompts."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from kmat_cli.limits import Range
from kmat_cli.methods.base import LOSS_WEIGHT_MAX, MethodSetup, description_embeddings
from kmat_cli.methods.coop import CoOp


class BiomedCoOp(CoOp):
    """BiomedCoOp (Koleilat et al., 2025): L = CE + lambda_sccm * L_sccm + lambda_kdsp * L_kdsp.

    e_{k,j}: normalised embeddings of the descriptions of class k (of modality ``descriptions_modality``,
    the training one; the first N = min_k N_k per class so that index j is defined for every class).
    * L_sccm = MSE(t_k, normalize(mean_j e_{k,j})), the mean over the K x D entries.
    * L_kdsp = KL(p_teacher || p_student) summed over the batch and the classes, divided by B x K. Teacher:
      s_j = mean over the batch of max_k s * f(x) . e_{k,j}; z_j = (s_j - median s) / MAD(s); keep the j
      with |(z_j - mean z) / std z| <= tau (all of them when that leaves none or the spread is zero);
      teacher logits = s * f(x) . normalize(mean over kept j of e_{k,j}).
    """

    desc: torch.Tensor  # (K, N, D), a buffer
    desc_mean: torch.Tensor  # (K, D), a buffer

    limits: ClassVar[dict[str, Range]] = {
        **CoOp.limits,
        "lambda_sccm": (0, LOSS_WEIGHT_MAX),
        "lambda_kdsp": (0, LOSS_WEIGHT_MAX),
        "tau": (0, None),
    }
    reads_descriptions = True

    def __init__(
        self,
        setup: MethodSetup,
        *,
        n_ctx: int = 4,
        init_words: str = "a photo of a",
        csc: bool = False,
        lambda_sccm: float = 1.0,
        lambda_kdsp: float = 1.0,
        tau: float = 1.5,
        descriptions_modality: str = "hi",
    ) -> None:
        super().__init__(setup, n_ctx=n_ctx, init_words=init_words, csc=csc)
        self.lambda_sccm, self.lambda_kdsp, self.tau = lambda_sccm, lambda_kdsp, tau
        per_class = description_embeddings(self.backbone, self.descriptions_for(descriptions_modality))
        n = min(e.shape[0] for e in per_class)
        self.register_buffer("desc", torch.stack([e[:n] for e in per_class]), persistent=False)  # (K, N, D)
        means = torch.stack([F.normalize(e.mean(0), dim=-1) for e in per_class])
        self.register_buffer("desc_mean", means, persistent=False)  # (K, D)

    def selected(self, f: torch.Tensor) -> torch.Tensor:
        """Boolean (N,) mask of the description indices the teacher keeps for the batch features f (B, D)."""
        s = (self.logit_scale * torch.einsum("bd,knd->bkn", f, self.desc)).max(dim=1).values.mean(0)  # (N,)
        if s.numel() < 3:
            return torch.ones_like(s, dtype=torch.bool)
        med = s.median()
        mad = (s - med).abs().median()
        z = (s - med) / mad if mad > 0 else torch.zeros_like(s)
        spread = z.std()
        if not spread > 0:
            return torch.ones_like(s, dtype=torch.bool)
        keep = ((z - z.mean()) / spread).abs() <= self.tau
        return keep if keep.any() else torch.ones_like(keep)

    def losses(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.class_embeddings()
        f = F.normalize(features.float(), dim=-1)
        student = self.logit_scale * f @ t.t()
        with torch.no_grad():
            keep = self.selected(f)
            teacher_text = F.normalize(self.desc[:, keep].mean(1), dim=-1)
            teacher = self.logit_scale * f @ teacher_text.t()
        kl = F.kl_div(
            F.log_softmax(student, -1), F.log_softmax(teacher, -1), reduction="sum", log_target=True
        )
        return {
            "ce": F.cross_entropy(student, labels),
            "sccm": self.lambda_sccm * F.mse_loss(t, self.desc_mean),
            "kdsp": self.lambda_kdsp * kl / student.numel(),
        }
