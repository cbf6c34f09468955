r"""kmat's own transports: entropic fused Gromov-Wasserstein, Wasserstein and Gromov-Wasserstein in torch.

Between the K high-end embeddings ``H = X_hi`` and the K low-end ones ``Lo = X_lo`` (rows), with a ground
cost ``d`` (:mod:`kmat.transports.costs`), ``M_ij = d(H_i, Lo_j)``, ``C_hi = d(H, H)``, ``C_lo = d(Lo, Lo)``:

    FGW_eps = min_{T in U(a, b)} (1 - alpha) <M, T> + alpha sum_ijkl (C_hi_ik - C_lo_jl)^2 T_ij T_kl - eps H(T)

solved by the entropic fixed point of :mod:`kmat.transports.gromov` (Peyre, Cuturi & Solomon 2016; Vayer et
al. 2019) with log-domain Sinkhorn (:mod:`kmat.transports.sinkhorn`). ``alpha`` weights the structure term as
in POT and Vayer et al.; ``a``, ``b`` default to uniform ``1/K``. The loss is the objective at the plan
*without* the entropy term (POT's ``...2`` convention).

Options ``center`` (the feature cost between centred embeddings) and ``normalize`` (every cost matrix
divided by its mean) change the costs only; see :class:`FGW`. The ``pot-*`` references share them.

Gradients reach ``X_lo`` only (``X_hi`` is detached). ``grad="envelope"`` (default): the plan is computed
without autograd and the loss is differentiated through the costs at the fixed plan, which by the envelope
(Danskin) theorem is the gradient of the entropic optimum ``FGW_eps`` w.r.t. ``X_lo`` (the reported value
omits the entropy, so this is not the derivative of the reported value itself; :mod:`kmat.transports.envelope`).
The whole solve, value and gradient run on the CPU whatever the inputs' device (K x D is tiny: a GPU would
spend the time launching kernels), in the same call, and the value comes back on the inputs' device with
its gradient attached. ``grad="unrolled"``: autograd through every iteration on the inputs' device, the
exact derivative of the reported value as computed (more memory and time).

``warm_start`` (default on): each solve starts from where the previous solve of the same shape ended (its
plan and Sinkhorn potential, :class:`~kmat.transports.gromov.WarmStart`) instead of from ``a b^T``: in training
consecutive problems differ little, so one or two iterations meet the same tolerances. Where the fixed
point is unique (Wasserstein always; FGW and GW for ``epsilon`` large enough against the structure costs)
the answer is the cold solve's within those tolerances; where GW has several fixed points, a warm start
follows the one training is on. :meth:`FGW.solver_state` and :meth:`FGW.load_solver_state` carry the warm
start through checkpoints, so a resumed run continues exactly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from kmat_cli.api import Transport, UsageError

from .checks import LIMITS, SolveInfo, check_costs, check_embeddings, check_options, check_solution, marginals
from .costs import pairwise_cost, pairwise_cost_grad
from .envelope import attach_gradient
from .gromov import Costs, WarmStart, fgw_value, fgw_value_grads, solve_fgw

CPU = torch.device("cpu")


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
    when a tolerance is not met; ``warm_start``: start each solve where the previous one ended (module
    docstring; off: every solve starts from ``a b^T``).

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
        warm_start: bool = True,
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
            warm_start=warm_start,
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
        self.warm_start = warm_start
        self._warm: WarmStart | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(alpha={self.alpha}, epsilon={self.epsilon}, max_iter={self.max_iter}, "
            f"tol={self.tol}, cost={self.cost!r}, grad={self.grad!r}, center={self.center}, "
            f"normalize={self.normalize}, warm_start={self.warm_start})"
        )

    # ------------------------------------------------------------------------------- engine (overridable)
    def _solve_plan(
        self, costs: Costs, a: torch.Tensor, b: torch.Tensor, start: WarmStart | None
    ) -> tuple[torch.Tensor, SolveInfo, WarmStart]:
        """The plan for ``costs = (M, C_hi, C_lo)`` from ``start`` (None: cold), how the solve went and
        where it ended; differentiable when grad mode is on (unrolled)."""
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
            start=start,
        )

    def _value(self, costs: Costs, plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The reported value at ``plan`` (no entropy), differentiable through ``costs``."""
        return fgw_value(costs, plan, a, b, self.alpha)

    # ------------------------------------------------------------------------------------------ contract
    def _raw_costs(self, H: torch.Tensor, X_lo: torch.Tensor) -> Costs:
        """``(M, C_hi, C_lo)`` with ``center`` applied, before ``normalize``."""
        M = C_hi = C_lo = None
        if self.alpha < 1.0:
            M = pairwise_cost(H - H.mean(0), X_lo - X_lo.mean(0), self.cost) if self.center else None
            M = pairwise_cost(H, X_lo, self.cost) if M is None else M
        if self.alpha > 0.0:
            C_hi, C_lo = pairwise_cost(H, H, self.cost), pairwise_cost(X_lo, X_lo, self.cost)
        return M, C_hi, C_lo

    def _normalized(self, raw: Costs) -> Costs:
        """``raw`` with ``normalize`` applied (each matrix divided by its mean), or ``raw`` itself."""
        if not self.normalize:
            return raw
        M, C_hi, C_lo = (None if c is None else _by_mean(c) for c in raw)
        return M, C_hi, C_lo

    def _costs(self, X_hi: torch.Tensor, X_lo: torch.Tensor) -> Costs:
        """``(M, C_hi, C_lo)`` with ``center`` and ``normalize`` applied (class docstring); ``X_hi`` detached."""
        return self._normalized(self._raw_costs(X_hi.detach(), X_lo))

    def _envelope_grad(
        self,
        H: torch.Tensor,
        X_lo: torch.Tensor,
        raw: Costs,
        costs: Costs,
        plan: torch.Tensor,
        b: torch.Tensor,
    ) -> torch.Tensor:
        """d value / d ``X_lo`` at the fixed ``plan``, in closed form: :func:`fgw_value_grads` through
        ``normalize`` (``(G - mean(G * C')) / mean(C)`` for ``C' = C / mean(C)``), the ground cost
        (:func:`pairwise_cost_grad`) and ``center`` (minus the mean over rows)."""
        G_M, G_C = fgw_value_grads(costs, plan, b, self.alpha)
        grad = torch.zeros_like(X_lo)
        if G_M is not None:
            assert raw[0] is not None and costs[0] is not None
            G_M = _by_mean_grad(raw[0], costs[0], G_M) if self.normalize else G_M
            if self.center:
                grad = pairwise_cost_grad(H - H.mean(0), X_lo - X_lo.mean(0), raw[0], G_M, self.cost)
                grad = grad - grad.mean(0)
            else:
                grad = pairwise_cost_grad(H, X_lo, raw[0], G_M, self.cost)
        if G_C is not None:
            assert raw[2] is not None and costs[2] is not None
            G_C = _by_mean_grad(raw[2], costs[2], G_C) if self.normalize else G_C
            grad = grad + pairwise_cost_grad(X_lo, X_lo, raw[2], G_C + G_C.T, self.cost)
        return grad

    #: Envelope gradients in closed form (``False``: autograd through ``_costs`` and ``_value``).
    closed_form_grad = True

    def solve(
        self,
        X_hi: torch.Tensor,
        X_lo: torch.Tensor,
        a: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
    ) -> TransportResult:
        """Solve once: the loss (scalar, differentiable w.r.t. ``X_lo``), the plan and the solve info, on
        ``X_lo``'s device (solved on the CPU unless ``grad="unrolled"`` and a gradient is wanted).

        Raises ``UsageError`` for bad shapes or marginals, ``RuntimeFailure`` for non-finite inputs or a
        plan that misses its marginals; warns with ``ConvergenceWarning`` when a tolerance is not met
        (or raises, with ``on_fail="raise"``). Half-precision inputs (e.g. under autocast) are solved in
        float32, with autocast off: the value and plan are then float32."""
        check_embeddings(self.name, X_hi, X_lo)
        device = X_lo.device
        want_grad = torch.is_grad_enabled() and X_lo.requires_grad
        with torch.autocast(device.type, enabled=False):
            work = torch.promote_types(X_lo.dtype, torch.float32)
            if want_grad and self.grad == "unrolled":  # autograd through the iterations, on the device
                hi, lo = X_hi.detach().to(work), X_lo.to(work)
                a, b = marginals(self.name, a, b, hi.shape[0], lo.shape[0], hi)
                costs = self._costs(hi, lo)
                plan, info = self._plan(hi, lo, costs, a, b)
                return TransportResult(self._value(costs, plan, a, b), plan.detach(), info)
            hi = X_hi.detach().to(device=CPU, dtype=work)
            lo = X_lo.detach().to(device=CPU, dtype=work)
            a, b = marginals(self.name, a, b, hi.shape[0], lo.shape[0], hi)
            if want_grad and not self.closed_form_grad:
                with torch.enable_grad():
                    lo.requires_grad_()
                    costs = self._costs(hi, lo)
                    with torch.no_grad():
                        M, C_hi, C_lo = (None if c is None else c.detach() for c in costs)
                        plan, info = self._plan(hi, lo, (M, C_hi, C_lo), a, b)
                    value = self._value(costs, plan, a, b)
                (grad,) = torch.autograd.grad(value, lo)
            else:
                with torch.no_grad():
                    raw = self._raw_costs(hi, lo)
                    costs = self._normalized(raw)
                    plan, info = self._plan(hi, lo, costs, a, b)
                    value = self._value(costs, plan, a, b)
                    grad = self._envelope_grad(hi, lo, raw, costs, plan, b) if want_grad else None
        value = value.detach().to(device)
        if grad is not None:
            value = attach_gradient(X_lo, value, grad)
        return TransportResult(value, plan.to(device), info)

    def _plan(
        self, X_hi: torch.Tensor, X_lo: torch.Tensor, costs: Costs, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, SolveInfo]:
        """The checked plan of ``costs`` from the warm start (kept for the next solve); differentiable
        when the costs carry a graph and grad mode is on (unrolled)."""
        check_costs(self.name, X_hi, X_lo, *costs)
        warm = self._warm
        start = warm.to(a.device, a.dtype) if warm is not None and warm.fits(len(a), len(b)) else None
        plan, info, end = self._solve_plan(costs, a, b, start)
        check_solution(
            self.name,
            plan,
            info,
            tol=self.tol,
            inner_tol=self.inner_tol,
            marginal_tol=self.marginal_tol,
            on_fail=self.on_fail,
        )
        if self.warm_start:
            self._warm = end.to(CPU)
        return plan, info

    # ------------------------------------------------------------------------------------- warm start
    def solver_state(self) -> dict[str, torch.Tensor]:
        """The warm start for the next solve (``plan`` and, when known, ``g``); ``{}`` before any solve
        or with ``warm_start`` off."""
        if self._warm is None:
            return {}
        state = {"plan": self._warm.plan}
        if self._warm.g is not None:
            state["g"] = self._warm.g
        return state

    def load_solver_state(self, state: dict[str, torch.Tensor]) -> None:
        """Start the next solve from ``state`` (as :meth:`solver_state` returned it). A state that is not
        a finite 2-D plan with a matching potential is dropped: the next solve then starts cold."""
        plan, g = state.get("plan"), state.get("g")
        fits = (
            self.warm_start
            and isinstance(plan, torch.Tensor)
            and plan.dim() == 2
            and plan.is_floating_point()
            and (
                g is None
                or (isinstance(g, torch.Tensor) and g.shape == plan.shape[1:] and g.is_floating_point())
            )
        )
        warm = WarmStart(plan, g) if fits else None  # type: ignore[arg-type]
        if warm is not None and not all(bool(torch.isfinite(x).all()) for x in (plan, g) if x is not None):
            warm = None
        self._warm = None if warm is None else warm.to(CPU)

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


def _by_mean_grad(C: torch.Tensor, normalised: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The gradient w.r.t. ``C`` of ``<G, normalised>`` for ``normalised = _by_mean(C)``."""
    mean = float(C.mean())
    return (G - (G * normalised).mean()) / mean if mean > MEAN_FLOOR else G


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
