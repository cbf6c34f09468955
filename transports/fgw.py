r"""kmat's own transports: entropic fused Gromov-Wasserstein, Wasserstein and Gromov-Wasserstein in torch.

Between the K high-end embeddings ``H = X_hi`` and the K low-end ones ``Lo = X_lo`` (rows), with a ground
cost ``d`` (:mod:`transports.costs`), ``M_ij = d(H_i, Lo_j)``, ``C_hi = d(H, H)``, ``C_lo = d(Lo, Lo)``:

    FGW_eps = min_{T in U(a, b)} (1 - alpha) <M, T> + alpha sum_ijkl (C_hi_ik - C_lo_jl)^2 T_ij T_kl - eps H(T)

solved by the entropic fixed point of :mod:`transports.gromov` (Peyre, Cuturi & Solomon 2016; Vayer et
al. 2019) with log-domain Sinkhorn (:mod:`transports.sinkhorn`). ``alpha`` weights the structure term as
in POT and Vayer et al.; ``a``, ``b`` default to uniform ``1/K``. The loss is the objective at the plan
*without* the entropy term (POT's ``...2`` convention).

Options ``center`` (the feature cost between centred embeddings) and ``normalize`` (every cost matrix
divided by its mean) change the costs only; see :class:`FGW`. The ``pot-*`` references share them.

Gradients reach ``X_lo`` only (``X_hi`` is detached). ``grad="envelope"`` (default): the plan is computed
without autograd and the loss is differentiated through the costs at the fixed plan, which by the envelope
(Danskin) theorem is the gradient of the entropic optimum ``FGW_eps`` w.r.t. ``X_lo``; it costs one small
backward pass. ``grad="unrolled"``: autograd through every iteration, the exact derivative of the reported
value as computed (more memory and time).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from kmat_cli.api import Transport, UsageError

from .checks import LIMITS, SolveInfo, check_costs, check_embeddings, check_options, check_solution, marginals
from .costs import pairwise_cost
from .gromov import Costs, fgw_value, solve_fgw


@dataclass(frozen=True)
class TransportResult:
    """A solved transport: the loss (differentiable w.r.t. ``X_lo``), the plan (detached) and ``info``."""

    value: torch.Tensor
    plan: torch.Tensor
    info: SolveInfo


class FGW(Transport):
    r"""Entropic fused Gromov-Wasserstein loss between high-end and low-end class embeddings.

    ``min_T (1 - alpha) <M, T> + alpha sum (C_hi[i,k] - C_lo[j,l])^2 T_ij T_kl - epsilon H(T)`` over
    couplings of ``a`` and ``b`` (uniform by default), reported without the entropy (POT's convention),
    gradient to ``X_lo`` only. References: Vayer, Chapel, Flamary, Tavenard & Courty (ICML 2019);
    Peyre, Cuturi & Solomon (ICML 2016).

    Options: ``epsilon`` entropic regularisation; ``alpha`` weight of the structure term (POT's);
    ``max_iter``, ``tol``: outer (linearisation) iterations and stop on ``||T_t - T_{t-1}||_F``;
    ``inner_max_iter``, ``inner_tol``: Sinkhorn iterations and stop on the L1 marginal error;
    ``marginal_tol``: largest L1 marginal error accepted (else ``RuntimeFailure``); ``cost``: ground cost
    ``sqeuclidean | euclidean | cosine``; ``grad``: ``envelope | unrolled``; ``on_fail``: ``warn | raise``
    when a tolerance is not met.

    Two options change the costs (``center`` is on by default, chosen by the rule of docs/defaults.md;
    with both off the problem is exactly the one above, as POT states it):

    ``center``: the feature cost compares centred embeddings, ``M_ij = d(H_i - mean(H), Lo_j - mean(Lo))``.
    A translation between the two sets (a modality gap shared by every class) then costs nothing: the
    feature term aligns the low-end classes *relative to their own centre* with the high-end ones, instead
    of pulling each low-end embedding onto its high-end twin. The structure matrices are unchanged (for the
    Euclidean costs they do not see translations anyway).

    ``normalize``: each cost matrix is divided by the mean of its entries, ``M / mean(M)``,
    ``C_hi / mean(C_hi)``, ``C_lo / mean(C_lo)`` (a matrix whose mean is 0, or below 1e-12, is left as it
    is). The structure term then compares the *shapes* of the two sets, not their sizes: a low-end set
    that is a scaled copy of the high-end one (more compact, e.g.) costs nothing there, and the feature and
    structure terms are on the same scale whatever the spread, so ``alpha`` weighs them as it says. The
    feature term alone is invariant to scaling both sets together, not to scaling one of them.
    """

    name = "fgw"
    limits = LIMITS

    def __init__(
        self,
        *,
        epsilon: float = 0.1,
        alpha: float = 0.1,  # alpha and center chosen by the rule of docs/defaults.md (docs/benchmark-phantom)
        max_iter: int = 100,
        tol: float = 1e-6,
        inner_max_iter: int = 1000,
        inner_tol: float = 1e-7,
        marginal_tol: float = 1e-3,
        cost: str = "sqeuclidean",
        grad: str = "envelope",
        on_fail: str = "warn",
        center: bool = True,
        normalize: bool = False,
    ) -> None:
        options = dict(
            epsilon=epsilon,
            alpha=alpha,
            max_iter=max_iter,
            tol=tol,
            inner_max_iter=inner_max_iter,
            inner_tol=inner_tol,
            marginal_tol=marginal_tol,
            cost=cost,
            grad=grad,
            on_fail=on_fail,
            center=center,
            normalize=normalize,
        )
        check_options(self.name, self.limits, **options)
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.max_iter = max_iter
        self.tol = float(tol)
        self.inner_max_iter = inner_max_iter
        self.inner_tol = float(inner_tol)
        self.marginal_tol = float(marginal_tol)
        self.cost = cost
        self.grad = grad
        self.on_fail = on_fail
        self.center = center
        self.normalize = normalize

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(alpha={self.alpha}, epsilon={self.epsilon}, max_iter={self.max_iter}, "
            f"tol={self.tol}, cost={self.cost!r}, grad={self.grad!r}, center={self.center}, "
            f"normalize={self.normalize})"
        )

    # ------------------------------------------------------------------------------- engine (overridable)
    def _solve_plan(self, costs: Costs, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, SolveInfo]:
        """The plan for ``costs = (M, C_hi, C_lo)``; differentiable when grad mode is on (unrolled)."""
        return solve_fgw(
            costs,
            a,
            b,
            alpha=self.alpha,
            epsilon=self.epsilon,
            max_iter=self.max_iter,
            tol=self.tol,
            inner_max_iter=self.inner_max_iter,
            inner_tol=self.inner_tol,
        )

    def _value(self, costs: Costs, plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The reported value at ``plan`` (no entropy), differentiable through ``costs``."""
        return fgw_value(costs, plan, a, b, self.alpha)

    # ------------------------------------------------------------------------------------------ contract
    def _costs(self, X_hi: torch.Tensor, X_lo: torch.Tensor) -> Costs:
        """``(M, C_hi, C_lo)`` with ``center`` and ``normalize`` applied (class docstring); ``X_hi`` detached."""
        H = X_hi.detach()
        M = None
        if self.alpha < 1.0:
            if self.center:
                M = pairwise_cost(H - H.mean(0), X_lo - X_lo.mean(0), self.cost)
            else:
                M = pairwise_cost(H, X_lo, self.cost)
        C_hi = C_lo = None
        if self.alpha > 0.0:
            C_hi, C_lo = pairwise_cost(H, H, self.cost), pairwise_cost(X_lo, X_lo, self.cost)
        if self.normalize:
            M, C_hi, C_lo = (None if c is None else _by_mean(c) for c in (M, C_hi, C_lo))
        return M, C_hi, C_lo

    def solve(
        self,
        X_hi: torch.Tensor,
        X_lo: torch.Tensor,
        a: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
    ) -> TransportResult:
        """Solve once: the loss (scalar, differentiable w.r.t. ``X_lo``), the plan and the solve info.

        Raises ``UsageError`` for bad shapes or marginals, ``RuntimeFailure`` for non-finite inputs or a
        plan that misses its marginals; warns with ``ConvergenceWarning`` when a tolerance is not met
        (or raises, with ``on_fail="raise"``). Half-precision inputs (e.g. under autocast) are solved in
        float32, with autocast off: the value and plan are then float32."""
        check_embeddings(self.name, X_hi, X_lo)
        with torch.autocast(X_lo.device.type, enabled=False):
            work = torch.promote_types(X_lo.dtype, torch.float32)
            return self._solve(X_hi.to(work), X_lo.to(work), a, b)

    def _solve(
        self, X_hi: torch.Tensor, X_lo: torch.Tensor, a: torch.Tensor | None, b: torch.Tensor | None
    ) -> TransportResult:
        a, b = marginals(self.name, a, b, X_hi.shape[0], X_lo.shape[0], X_hi)
        costs = self._costs(X_hi, X_lo)
        check_costs(self.name, X_hi, X_lo, *costs)
        unrolled = self.grad == "unrolled" and torch.is_grad_enabled() and X_lo.requires_grad
        if unrolled:
            plan, info = self._solve_plan(costs, a, b)
        else:
            with torch.no_grad():
                detached = tuple(None if c is None else c.detach() for c in costs)
                plan, info = self._solve_plan(detached, a, b)  # type: ignore[arg-type]
        check_solution(
            self.name,
            plan,
            info,
            tol=self.tol,
            inner_tol=self.inner_tol,
            marginal_tol=self.marginal_tol,
            on_fail=self.on_fail,
        )
        return TransportResult(self._value(costs, plan, a, b), plan.detach(), info)

    def __call__(
        self,
        X_hi: torch.Tensor,
        X_lo: torch.Tensor,
        a: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The transport loss (scalar), differentiable w.r.t. ``X_lo``."""
        return self.solve(X_hi, X_lo, a, b).value

    def plan(
        self,
        X_hi: torch.Tensor,
        X_lo: torch.Tensor,
        a: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The (K_hi, K_lo) coupling; rows sum to ``a`` (1/K by default), columns to ``b`` within tolerance."""
        with torch.no_grad():
            return self.solve(X_hi, X_lo, a, b).plan


MEAN_FLOOR = 1e-12


def _by_mean(C: torch.Tensor) -> torch.Tensor:
    """``C / mean(C)``; ``C`` itself when its mean is below :data:`MEAN_FLOOR` (e.g. all rows equal)."""
    mean = C.mean()
    return C / mean if float(mean.detach()) > MEAN_FLOOR else C


FIXED_ALPHA_LIMITS = {k: v for k, v in LIMITS.items() if k != "alpha"}  # limits of the alpha = 0 and 1 cases


def fixed_alpha_init(base_init: Callable[..., None], alpha: float) -> Callable[..., None]:
    """An ``__init__`` that calls ``base_init`` with ``alpha`` fixed and exposes its options without
    ``alpha`` (the signature is what the config system reads), for the alpha = 0 and alpha = 1 cases."""

    def __init__(self: FGW, **options: Any) -> None:
        if "alpha" in options:
            raise UsageError(
                f"transport '{self.name}' has no option 'alpha' (it is FGW with alpha = {alpha:g}); use 'fgw'"
            )
        base_init(self, alpha=alpha, **options)

    sig = inspect.signature(base_init)
    __init__.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in sig.parameters.values() if p.name != "alpha"]
    )
    return __init__


class Wasserstein(FGW):
    r"""Entropic Wasserstein loss between high-end and low-end class embeddings (FGW at alpha = 0).

    ``min_T <M, T> - epsilon H(T)``: one log-domain Sinkhorn solve (Cuturi 2013) on ``M_ij = d(H_i, Lo_j)``; the value is ``<M, T*>``
    (as ``ot.sinkhorn2``). ``max_iter`` and ``tol`` are accepted for a uniform interface (there is no
    outer loop); ``inner_max_iter`` and ``inner_tol`` govern the solve. Other options as :class:`FGW`.
    """

    name = "wasserstein"
    limits = FIXED_ALPHA_LIMITS
    __init__ = fixed_alpha_init(FGW.__init__, 0.0)


class GW(FGW):
    r"""Entropic Gromov-Wasserstein loss between high-end and low-end class embeddings (FGW at alpha = 1).

    ``min_T sum (C_hi[i,k] - C_lo[j,l])^2 T_ij T_kl - epsilon H(T)`` (Peyre, Cuturi & Solomon 2016),
    value as ``ot.gromov.entropic_gromov_wasserstein2``. Options as :class:`FGW`, without ``alpha``.
    """

    name = "gw"
    limits = FIXED_ALPHA_LIMITS
    __init__ = fixed_alpha_init(FGW.__init__, 1.0)
