"""Shared truth for the transport tests: POT (numpy backend, its own cost matrices) and random cases."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import ot
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

#: Tight tolerances for both solvers when their answers are compared.
TIGHT = dict(max_iter=20000, tol=1e-13, inner_max_iter=20000, inner_tol=1e-15)
# The problem exactly as POT states it (kmat's fgw centres the feature cost by default).
PLAIN = dict(center=False, normalize=False)


@dataclass
class PotAnswer:
    value: float
    plan: np.ndarray
    converged: bool


def pot_costs(X_hi: np.ndarray, X_lo: np.ndarray, cost: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M, C_hi, C_lo by POT's own ``ot.dist`` (scipy for cosine), independent of kmat's costs."""
    return (
        ot.dist(X_hi, X_lo, metric=cost),
        ot.dist(X_hi, X_hi, metric=cost),
        ot.dist(X_lo, X_lo, metric=cost),
    )


def pot_solve(
    X_hi: np.ndarray,
    X_lo: np.ndarray,
    *,
    alpha: float,
    epsilon: float,
    cost: str = "sqeuclidean",
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
) -> PotAnswer:
    """The POT answer at tight tolerance (column error 1e-12, outer residual 1e-11): ``ot.sinkhorn2`` (alpha 0), ``entropic_gromov_wasserstein2``
    (alpha 1) or ``entropic_fused_gromov_wasserstein2``."""
    M, C1, C2 = pot_costs(X_hi, X_lo, cost)
    return pot_solve_costs(M, C1, C2, alpha=alpha, epsilon=epsilon, a=a, b=b)


def pot_solve_costs(
    M: np.ndarray,
    C1: np.ndarray,
    C2: np.ndarray,
    *,
    alpha: float,
    epsilon: float,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
) -> PotAnswer:
    """:func:`pot_solve` on given cost matrices (cross cost ``M``, structures ``C1``, ``C2``)."""
    a = ot.unif(len(C1)) if a is None else a
    b = ot.unif(len(C2)) if b is None else b
    inner = dict(numItermax=20000, stopThr=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if alpha == 0.0:
            value = float(ot.sinkhorn2(a, b, M, epsilon, **inner))
            plan = ot.sinkhorn(a, b, M, epsilon, **inner)
            converged = np.abs(plan.sum(0) - b).sum() < 1e-11
            return PotAnswer(value, plan, bool(converged))
        outer = dict(
            loss_fun="square_loss", epsilon=epsilon, symmetric=True, max_iter=2000, tol=1e-11, log=True
        )
        if alpha == 1.0:
            value, log = ot.gromov.entropic_gromov_wasserstein2(C1, C2, a, b, **outer, **inner)
        else:
            value, log = ot.gromov.entropic_fused_gromov_wasserstein2(
                M, C1, C2, a, b, alpha=alpha, **outer, **inner
            )
    plan = log["T"]
    converged = log["err"][-1] <= 1e-11 and np.abs(plan.sum(0) - b).sum() < 1e-11
    return PotAnswer(float(value), plan, bool(converged))


def embeddings(
    K: int, D: int, *, normalised: bool, seed: int, dtype=torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """High-end and low-end (K, D) embeddings: the low end a noisy copy of the high end, either unit rows
    (as K-MaT's prompts) or raw rows of norms in [0.5, 2]."""
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(K, D, generator=g, dtype=torch.float64)
    L = H + 0.8 * torch.randn(K, D, generator=g, dtype=torch.float64)
    if normalised:
        H, L = torch.nn.functional.normalize(H, dim=1), torch.nn.functional.normalize(L, dim=1)
    else:
        H = H / H.norm(dim=1, keepdim=True) * (0.5 + 1.5 * torch.rand(K, 1, generator=g, dtype=torch.float64))
        L = L / L.norm(dim=1, keepdim=True) * (0.5 + 1.5 * torch.rand(K, 1, generator=g, dtype=torch.float64))
    return H.to(dtype), L.to(dtype)
