r"""Entropic fused Gromov-Wasserstein: the fixed point and the value, in torch.

Problem (Vayer et al. 2019, "Optimal transport for structured data with application on graphs"; entropic
form of Peyre, Cuturi & Solomon 2016, "Gromov-Wasserstein averaging of kernel and distance matrices"),
for a cross cost ``M`` (n, m), structure matrices ``C1`` (n, n), ``C2`` (m, m), marginals ``a``, ``b``:

    T* = argmin_{T in U(a, b)}  (1 - alpha) <M, T> + alpha * sum_{ijkl} (C1_ik - C2_jl)^2 T_ij T_kl - eps H(T)

with ``H(T) = -sum T_ij (log T_ij - 1)``. As in POT's ``entropic_fused_gromov_wasserstein`` (projected
gradient / mirror descent with unit step in the KL geometry, Peyre et al. 2016, Prop. 2):

    T_0 = a b^T,      T_{t+1} = Sinkhorn(a, b, tens(T_t), eps),
    tens(T) = (1 - alpha) M + alpha * 2 (constC - 2 C1 T C2^T),
    constC_ij = sum_k C1_ik^2 a_k + sum_l C2_jl^2 b_l

(the square loss decomposed as ``(x - y)^2 = x^2 + y^2 - 2 x y``, so the O(n^2 m^2) tensor is never formed),
stopped when ``||T_{t+1} - T_t||_F <= tol`` or after ``max_iter`` iterations. Each Sinkhorn solve is warm
started from the previous potentials (the same fixed point, far fewer iterations). A :class:`WarmStart`
(where an earlier solve ended: its plan and column potential) replaces ``T_0 = a b^T`` and the zero
potential: a training step's problem differs little from the previous step's, so the iteration starts next
to its fixed point and meets the same tolerances in one or two steps. The reported value is POT's, without
the entropy:

    value(T) = (1 - alpha) <M, T> + alpha * <constC - 2 C1 T C2^T, T>,

equal to the FGW objective at ``T`` when ``T`` meets its marginals. ``alpha = 0`` is entropic Wasserstein
(one Sinkhorn solve, value ``<M, T>`` as ``ot.sinkhorn2``); ``alpha = 1`` is entropic Gromov-Wasserstein
(``ot.gromov.entropic_gromov_wasserstein2``). ``C1`` and ``C2`` are assumed symmetric (they are built from
symmetric costs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import SolveInfo
from .sinkhorn import Marginals, SinkhornState, marginal_floor, sinkhorn_potentials

Costs = tuple["torch.Tensor | None", "torch.Tensor | None", "torch.Tensor | None"]  # (M, C1, C2)


@dataclass(frozen=True)
class WarmStart:
    """Where a solve ended, the start of the next: the (n, m) plan and the column potential ``g`` (m) of
    its last Sinkhorn solve (``None``: start Sinkhorn from zero)."""

    plan: torch.Tensor
    g: torch.Tensor | None = None

    def fits(self, n: int, m: int) -> bool:
        """Whether it can start an (n, m) problem."""
        return self.plan.shape == (n, m) and (self.g is None or self.g.shape == (m,))

    def to(self, device: torch.device, dtype: torch.dtype | None = None) -> WarmStart:
        """Detached, on ``device`` (and in ``dtype`` if given)."""

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.detach().to(device=device, dtype=dtype or x.dtype)

        return WarmStart(move(self.plan), None if self.g is None else move(self.g))


def const_c(C1: torch.Tensor, C2: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``constC_ij = sum_k C1_ik^2 a_k + sum_l C2_jl^2 b_l`` (POT's ``init_matrix`` for the square loss)."""
    return ((C1 * C1) @ a)[:, None] + ((C2 * C2) @ b)[None, :]


def fgw_value(costs: Costs, T: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - alpha) <M, T> + alpha <constC - 2 C1 T C2^T, T>`` for ``costs = (M, C1, C2)`` (terms with a
    zero weight are skipped, and their cost matrices may be None)."""
    M, C1, C2 = costs
    value = None
    if alpha < 1.0:
        assert M is not None
        value = (1.0 - alpha) * (M * T).sum()
    if alpha > 0.0:
        assert C1 is not None and C2 is not None
        gw = ((const_c(C1, C2, a, b) - 2.0 * (C1 @ T @ C2.T)) * T).sum()
        value = alpha * gw if value is None else value + alpha * gw
    assert value is not None
    return value


def fgw_value_grads(
    costs: Costs, T: torch.Tensor, b: torch.Tensor, alpha: float
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The gradients of :func:`fgw_value` w.r.t. ``M`` and ``C2`` at a fixed plan ``T`` (None for a term of
    zero weight): ``(1 - alpha) T`` and ``2 alpha (diag(T^T 1) C2 diag(b) - T^T C1 T)``."""
    _, C1, C2 = costs
    G_M = (1.0 - alpha) * T if alpha < 1.0 else None
    G_C2 = None
    if alpha > 0.0:
        assert C1 is not None and C2 is not None
        G_C2 = (2.0 * alpha) * (T.sum(0)[:, None] * C2 * b[None, :] - T.T @ C1 @ T)
    return G_M, G_C2


def solve_fgw(
    costs: Costs,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    alpha: float,
    epsilon: float,
    max_iter: int,
    tol: float,
    inner_max_iter: int,
    inner_tol: float,
    start: WarmStart | None = None,
) -> tuple[torch.Tensor, SolveInfo, WarmStart]:
    """Run the fixed point of the module docstring on ``costs = (M, C1, C2)`` from ``start`` (``None``:
    ``T_0 = a b^T``, zero potential); returns the plan, how the solve went and where it ended.

    Differentiable through the iterations when the inputs require grad and grad mode is on (that is the
    ``unrolled`` gradient); run it under ``torch.no_grad()`` for the envelope gradient. ``tol`` and
    ``inner_tol`` are raised to a few units of round-off of the dtype (:func:`marginal_floor`).
    """
    M, C1, C2 = costs
    dtype = a.dtype
    floor = marginal_floor(dtype, a.shape[0], b.shape[0])
    inner_tol, tol = max(inner_tol, floor), max(tol, floor)
    state = None if start is None or start.g is None else SinkhornState(start.g)
    if alpha == 0.0:
        assert M is not None
        logK = M * (-1.0 / epsilon)
        state, plan, n, err = sinkhorn_potentials(logK, a, b, state, inner_max_iter, inner_tol)
        return plan, SolveInfo(1, n, 0.0, err, True, err <= inner_tol), WarmStart(plan, state.g)
    assert C1 is not None and C2 is not None
    # logK(T) = -tens(T) / eps = base + (4 alpha / eps) C1 T C2^T
    base = const_c(C1, C2, a, b) * (-2.0 * alpha / epsilon)
    if alpha < 1.0:
        assert M is not None
        base = base - M * ((1.0 - alpha) / epsilon)
    C1s = C1 * (4.0 * alpha / epsilon)
    C2t = C2.T
    T = a[:, None] * b[None, :] if start is None else start.plan
    marg = Marginals.of(a, b)
    inner = 0
    resid = math.inf
    err = math.inf
    it = 0
    while it < max_iter:
        it += 1
        logK = torch.addmm(base, C1s @ T, C2t)
        state, T_new, n, err = sinkhorn_potentials(logK, marg, None, state, inner_max_iter, inner_tol)
        inner += n
        resid = torch.dist(T_new, T).item()
        T = T_new
        if resid <= tol or not math.isfinite(resid):
            break
    assert state is not None
    return T, SolveInfo(it, inner, resid, err, resid <= tol, err <= inner_tol), WarmStart(T, state.g)
