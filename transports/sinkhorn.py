r"""Entropic optimal transport in the log domain: Sinkhorn iterations accelerated by Newton steps.

Solves, for a log-kernel ``logK = -C / eps`` (n, m) and marginals ``a`` (n), ``b`` (m) of equal mass,

    P* = argmin_{P >= 0, P 1 = a, P^T 1 = b}  <C, P> + eps * sum_ij P_ij (log P_ij - 1),

whose solution is ``P*_ij = exp(f_i + g_j + logK_ij)`` for dimensionless dual potentials ``f``, ``g``.
With ``f`` eliminated (``f_i = log a_i - LSE_j(logK_ij + g_j)``: rows exact) the dual is the smooth concave
function ``J(g) = <g, b> - sum_i a_i LSE_j(logK_ij + g_j)``, with gradient ``b - P^T 1`` (the column
marginal error) and Hessian ``-(diag(P^T 1) - P^T diag(1/a) P)``. Two kinds of ascent steps on ``J``:

- Newton (Brauer, Clason, Lorenz & Wirth 2017, "A Sinkhorn-Newton method for entropic optimal
  transport"): ``g <- g + d`` with ``(H + delta I) d = b - P^T 1``, the gauge direction ``1`` fixed, and a
  Levenberg-Marquardt damping ``delta`` proportional to the residual, adapted by an Armijo test on ``J``;
  quadratic near the solution, and cheap here since the K of prompt learning are small (3 to 64);
- Sinkhorn (Cuturi 2013): ``g_j <- g_j + log b_j - LSE_i(log P_ij)``, the column update of Sinkhorn-Knopp,
  always an ascent step, taken when no damped Newton step passes the test.

The solver stops as soon as the L1 column error is within ``tol`` (rows are exact by construction).

Numerics: everything is computed with ``logsumexp`` from logs, never from the kernel ``exp(-C / eps)``
that underflows at small ``eps`` or in float32. The iterate is the log-plan ``log P = logK + f + g``
itself, and each step is a small correction to it, so the entries that carry mass stay of size
``O(log K)`` and keep full precision in float32 even when ``C / eps`` is in the ten thousands. The
solution is the unique one of plain Sinkhorn-Knopp (``ot.sinkhorn``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Levenberg-Marquardt trials (each with a 4x larger damping) before a Newton step gives way to Sinkhorn.
MAX_TRIALS = 6
#: Within 1000x the round-off floor, stop after this many steps without a 1% decrease of the best error.
STALL = 30


@dataclass
class SinkhornState:
    """The column potential ``g`` (m) of a solve, relative to its ``logK``: a warm start for the next."""

    g: torch.Tensor


def marginal_floor(dtype: torch.dtype, n: int, m: int) -> float:
    """The smallest L1 marginal error worth asking for in ``dtype`` for an (n, m) plan: the round-off of
    its column sums, ``16 eps (n + m)`` (float32, K = 6: 2.3e-5; float64: below 5e-13 up to K = 64)."""
    return 16.0 * torch.finfo(dtype).eps * (n + m)


class _Point:
    """The row-normalised log-plan ``log P = L + f + g`` for a column shift ``g`` of a log-kernel ``L``,
    with ``f = log a - LSE_j(L + g)``; its plan, column sums, column residual and L1 error."""

    __slots__ = ("c", "err", "f", "g", "log_plan", "plan", "r")

    def __init__(self, L: torch.Tensor, log_a: torch.Tensor, b: torch.Tensor, g: torch.Tensor) -> None:
        Lg = L + g[None, :]
        self.g = g
        self.f = log_a - torch.logsumexp(Lg, dim=1)
        self.log_plan = Lg + self.f[:, None]
        self.plan = torch.exp(self.log_plan)
        self.c = self.plan.sum(0)
        self.r = b - self.c
        self.err = self.r.abs().sum().item()


def _newton_step(
    a: torch.Tensor,
    log_a: torch.Tensor,
    b: torch.Tensor,
    x: _Point,
    lam: float,
    c_mean: float,
    eye: torch.Tensor,
    off: torch.Tensor,
) -> tuple[_Point | None, float, int]:
    """A Levenberg-Marquardt-damped Newton ascent step on ``J`` from ``x`` (shifts relative to x's plan).

    Solves ``(H + lam * err * mean(c) * I) d = b - c`` and accepts the shift ``d`` when it satisfies the
    Armijo condition ``J(d) - J(0) >= 1e-4 <r, d>`` or halves the error; otherwise retries with ``lam`` x 4,
    up to :data:`MAX_TRIALS` times. Returns the new point (``None`` if every trial failed), the damping
    factor for the next step (halved after a success) and the number of trials. ``c_mean`` is the mean
    column mass (total mass / m), ``eye`` the (m, m) identity and ``off = 1 - eye``."""
    P = x.plan
    m = b.shape[0]
    eps = torch.finfo(P.dtype).eps
    # H = diag(c) - P^T diag(1/a) P, plus the gauge direction 1 1^T (H 1 = 0, and 1^T r = 0). Its diagonal
    # sum_i P_ij (a_i - P_ij) / a_i is formed from the *other* entries of each row, sum_{k != j} P_ik, so
    # that it does not cancel when the plan is close to a permutation.
    Q = P / a[:, None]
    H = -(P.T @ Q)
    H.diagonal().copy_(((Q @ off) * P).sum(0))
    H = H + c_mean / m
    for trial in range(1, MAX_TRIALS + 1):
        d, info = torch.linalg.solve_ex(torch.add(H, eye, alpha=(lam * x.err + 1e3 * eps) * c_mean), x.r)
        slope, failed = torch.stack((torch.dot(x.r, d), info.to(d.dtype))).tolist()
        if not failed and math.isfinite(slope) and slope > 0:
            y = _Point(x.log_plan, log_a, b, d)
            # J(d) - J(0) = <d, b> - <a, LSE(log P + d)> + <a, log a> = <d, b> + <a, f(d)>
            gain_b, gain_a = torch.stack((torch.dot(d, b), torch.dot(a, y.f))).tolist()
            noise = 16 * eps * (abs(gain_b) + abs(gain_a))
            # Armijo on J; near the solution J's gains drown in round-off, and a halved error decides.
            if math.isfinite(y.err) and (gain_b + gain_a >= 1e-4 * slope - noise or y.err < 0.5 * x.err):
                return y, lam / 2, trial
        lam *= 4
    return None, lam, MAX_TRIALS


@dataclass(frozen=True)
class Marginals:
    """The marginals ``a`` (n), ``b`` (m) with what every solve on them uses, computed once: their logs,
    the mean column mass ``sum(a) / m``, the (m, m) identity and its complement ``1 - I``."""

    a: torch.Tensor
    b: torch.Tensor
    log_a: torch.Tensor
    log_b: torch.Tensor
    c_mean: float
    eye: torch.Tensor
    off: torch.Tensor

    @classmethod
    def of(cls, a: torch.Tensor, b: torch.Tensor) -> Marginals:
        eye = torch.eye(b.shape[0], dtype=b.dtype, device=b.device)
        return cls(a, b, a.log(), b.log(), float(a.detach().sum()) / b.shape[0], eye, 1.0 - eye)


def sinkhorn_potentials(
    logK: torch.Tensor,
    a: torch.Tensor | Marginals,
    b: torch.Tensor | None,
    state: SinkhornState | None,
    max_iter: int,
    tol: float,
) -> tuple[SinkhornState, torch.Tensor, int, float]:
    """Solve from ``state`` (warm start; ``None``: zero potentials), for marginals ``a``, ``b`` (or ``a``
    a :class:`Marginals` and ``b`` None), until the L1 column-marginal error is
    within ``tol``, or ``max_iter`` steps (Newton trials and Sinkhorn steps both count) are done, or
    :data:`STALL` steps in a row brought no progress (round-off floor: the caller sees ``err > tol``).

    Returns the column potential (for a warm start), the plan, the number of steps and the final L1
    column error (``nan`` or ``inf`` when the problem is not finite). Differentiable through the steps
    when grad mode is on.
    """
    marg = a if isinstance(a, Marginals) else Marginals.of(a, b)  # type: ignore[arg-type]
    a, b, log_a, log_b = marg.a, marg.b, marg.log_a, marg.log_b
    g = torch.zeros_like(b) if state is None else state.g
    x = _Point(logK, log_a, b, g)
    n = 0
    lam = 1.0
    best, since_best = x.err, 0
    near_floor = 1e3 * marginal_floor(a.dtype, a.shape[0], b.shape[0])
    while x.err > tol and n < max_iter and math.isfinite(x.err) and since_best < STALL:
        y, lam, trials = _newton_step(a, log_a, b, x, lam, marg.c_mean, marg.eye, marg.off)
        n += trials
        if y is None:  # Newton failed: one Sinkhorn column update instead
            y = _Point(x.log_plan, log_a, b, log_b - torch.logsumexp(x.log_plan, dim=0))
            n += 1
        g = g + y.g
        x = y
        progress = x.err < 0.99 * best or x.err > near_floor
        best, since_best = (min(x.err, best), 0) if progress else (best, since_best + 1)
    return SinkhornState(g), x.plan, n, x.err
