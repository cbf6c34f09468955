r"""Reference transports backed by POT (Python Optimal Transport, Flamary et al. 2021, JMLR 22(78)).

``pot-fgw``, ``pot-wasserstein`` and ``pot-gw`` solve the same problems as ``fgw``, ``wasserstein`` and
``gw`` (:mod:`kmat.transports.fgw`, same options and value convention), with POT's solvers on its torch
backend: ``ot.gromov.entropic_fused_gromov_wasserstein`` (``0 < alpha < 1``),
``ot.gromov.entropic_gromov_wasserstein`` (``alpha = 1``) and ``ot.sinkhorn`` (``alpha = 0``). The value is POT's: ``(1 - alpha) <M, T> + alpha * gwloss(init_matrix(C_hi, C_lo), T)``.

Gradients: ``grad="envelope"`` takes POT's plan on detached costs and differentiates the value through
the costs at that plan; ``grad="unrolled"`` lets autograd run through POT's own iterations.
``warm_start`` passes the previous plan as POT's ``G0`` (fgw and gw; POT's Sinkhorn starts cold).

Differences to the built-in solver that users should know: POT's Sinkhorn works on the kernel
``exp(-C / eps)``, which underflows for ``C / eps`` above ~700 (float64) or ~85 (float32), giving zero or
NaN plans (reported here as a ``RuntimeFailure``); POT stops its Sinkhorn on the L2 (not L1) norm of the
column error, and checks its tolerances every 10 iterations only.
"""

from __future__ import annotations

import warnings

import ot
import torch

from .checks import SolveInfo
from .fgw import FGW, FIXED_ALPHA_LIMITS, Costs, fixed_alpha_init
from .gromov import WarmStart
from .sinkhorn import marginal_floor


def _marginal_error(T: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """L1 error of both marginals of ``T``."""
    return float((T.sum(1) - a).abs().sum() + (T.sum(0) - b).abs().sum())


class PotFGW(FGW):
    r"""Entropic fused Gromov-Wasserstein by POT's ot.gromov.entropic_fused_gromov_wasserstein ('fgw' reference).

    Same problem, options and value as ``fgw``; see the module docstring for how POT differs.
    """

    name = "pot-fgw"
    closed_form_grad = False  # autograd through POT's own value: an independent reference for ours

    def _solve_plan(
        self, costs: Costs, a: torch.Tensor, b: torch.Tensor, start: WarmStart | None
    ) -> tuple[torch.Tensor, SolveInfo, WarmStart]:
        M, C1, C2 = costs
        floor = marginal_floor(a.dtype, a.shape[0], b.shape[0])  # as the built-in solver does
        inner_tol, tol = max(self.inner_tol, floor), max(self.tol, floor)
        with warnings.catch_warnings():
            # POT warns per inner solve; the outcome is judged once, on the final plan, by the caller.
            warnings.simplefilter("ignore")
            if self.alpha == 0.0:
                T = ot.sinkhorn(
                    a, b, M, self.epsilon, numItermax=self.inner_max_iter, stopThr=inner_tol, warn=False
                )
                n_iter, resid, converged = 1, 0.0, True
            else:
                common = dict(
                    loss_fun="square_loss",
                    epsilon=self.epsilon,
                    symmetric=True,
                    max_iter=self.max_iter,
                    tol=tol,
                    log=True,
                    numItermax=self.inner_max_iter,
                    stopThr=inner_tol,
                    G0=None if start is None else start.plan,
                )
                if self.alpha == 1.0:
                    T, log = ot.gromov.entropic_gromov_wasserstein(C1, C2, a, b, **common)
                else:
                    T, log = ot.gromov.entropic_fused_gromov_wasserstein(
                        M, C1, C2, a, b, alpha=self.alpha, **common
                    )
                resid = float(log["err"][-1])
                converged = resid <= tol
                # POT measures its residual at iterations 0, 10, 20, ... and stops at the first one <= tol.
                n_iter = 10 * (len(log["err"]) - 1) + 1 if converged else self.max_iter
        err = _marginal_error(T.detach(), a, b)
        col_l2 = float(torch.linalg.vector_norm(T.detach().sum(0) - b))
        return T, SolveInfo(n_iter, -1, resid, err, converged, col_l2 <= inner_tol), WarmStart(T)

    def _value(self, costs: Costs, plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        M, C1, C2 = costs
        value = None
        if self.alpha < 1.0:
            value = (1.0 - self.alpha) * (M * plan).sum()
        if self.alpha > 0.0:
            constC, hC1, hC2 = ot.gromov.init_matrix(C1, C2, a, b, "square_loss")
            gw = self.alpha * ot.gromov.gwloss(constC, hC1, hC2, plan)
            value = gw if value is None else value + gw
        assert value is not None
        return value


class PotWasserstein(PotFGW):
    r"""Entropic Wasserstein by POT's ot.sinkhorn, the reference for 'wasserstein'.

    Value ``<M, T>`` as ``ot.sinkhorn2``; same problem, options and value as ``wasserstein``."""

    name = "pot-wasserstein"
    limits = FIXED_ALPHA_LIMITS
    __init__ = fixed_alpha_init(FGW.__init__, 0.0)


class PotGW(PotFGW):
    r"""Entropic Gromov-Wasserstein by POT's ot.gromov.entropic_gromov_wasserstein, the reference for 'gw'.

    Value as ``entropic_gromov_wasserstein2``; same problem, options and value as ``gw``."""

    name = "pot-gw"
    limits = FIXED_ALPHA_LIMITS
    __init__ = fixed_alpha_init(FGW.__init__, 1.0)
