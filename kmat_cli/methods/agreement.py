"""Label-free agreement of the low-end descriptions with the high-end class geometry (docs/defaults.md).

Text only: the low-end description prototypes P (K x D) and a high-end reference R (K x D, the high-end
description prototypes). Each side is centred on its own mean (the modality gap is a translation and
costs nothing) and its rows normalised; a row whose centred norm is below :data:`COLLAPSED` (a class whose
text equals the mean of all, e.g. every class the same text) is a zero row and matches nothing. With
S = normalize(P - mean P) @ normalize(R - mean R)^T / tau,

    a_k = 1/2 ( softmax_j(S[k, :])[k] + softmax_j(S[:, k])[k] )      in [0, 1]

is how surely low-end class k finds its own high-end class and high-end class k its own low-end class.
Permuted descriptions give a_k ~ 0; classes that share one text split the column (a_k <= 3/4 for a pair);
text that names nothing gives ~1/K; descriptions that agree give ~1. The disagreement of the whole task is

    delta = clip((1 - mean_k a_k) / (1 - 1/K), 0, 1)                  (0: all agree, 1: chance or worse).
"""

from __future__ import annotations

import torch

COLLAPSED = 1e-4  # centred row norm below which a prototype carries no class-specific direction


def _centred(x: torch.Tensor) -> torch.Tensor:
    c = x.double() - x.double().mean(0, keepdim=True)
    norms = c.norm(dim=-1, keepdim=True)
    return torch.where(norms > COLLAPSED, c / norms.clamp_min(COLLAPSED), torch.zeros_like(c))


def class_agreement(low: torch.Tensor, high: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """(K,) a_k of the module docstring for low-end prototypes ``low`` and high-end reference ``high``."""
    if low.shape != high.shape or low.dim() != 2:
        raise ValueError(
            f"class_agreement needs two (K, D) matrices, got {tuple(low.shape)}, {tuple(high.shape)}"
        )
    s = _centred(low) @ _centred(high).t() / tau
    return (0.5 * (torch.softmax(s, 1).diagonal() + torch.softmax(s, 0).diagonal())).float()


def disagreement(agreement: torch.Tensor) -> float:
    """delta = clip((1 - mean_k a_k) / (1 - 1/K), 0, 1) of per-class agreements (K,), K >= 2."""
    k = agreement.numel()
    return float(((1 - agreement.mean()) / (1 - 1 / k)).clamp(0, 1)) if k > 1 else 0.0
