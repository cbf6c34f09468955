"""Argument checks and failure reporting shared by every transport in this package.

Failure is never silent: bad arguments raise :class:`UsageError`; non-finite embeddings, costs or plans,
and plans that miss their marginals by more than ``marginal_tol`` raise :class:`RuntimeFailure`;
non-convergence (outer or Sinkhorn tolerance not reached within the iteration limits) warns with
:class:`ConvergenceWarning` or raises, as ``on_fail`` says, always with the residuals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from kmat_cli.api import Above, Range, RuntimeFailure, UsageError, outside

from .costs import COSTS

GRADS = ("envelope", "unrolled")
ON_FAIL = ("warn", "raise")


class ConvergenceWarning(RuntimeWarning):
    """A transport solver stopped at its iteration limit before reaching its tolerance."""


@dataclass(frozen=True)
class SolveInfo:
    """How a solve went: outer (linearisation) iterations and Sinkhorn steps done (-1: not reported), the
    last outer residual ``||T_t - T_{t-1}||_F``, the final L1 column-marginal error (rows are exact) and
    whether the outer and inner tolerances were met."""

    n_iter: int
    inner_iter: int
    residual: float
    marginal_error: float
    converged: bool
    inner_converged: bool


# option: (least, most), the ranges of every transport of this package (``FGW.limits``)
LIMITS: dict[str, Range] = {
    "epsilon": (Above(0), None),
    "alpha": (0, 1),
    "max_iter": (1, None),
    "tol": (Above(0), None),
    "inner_max_iter": (1, None),
    "inner_tol": (Above(0), None),
    "marginal_tol": (Above(0), None),
}
INTEGERS = ("max_iter", "inner_max_iter")


def check_options(owner: str, limits: Mapping[str, Range], **opts: Any) -> None:
    """Validate constructor options against the transport's ``limits`` and types; ``owner`` names the
    transport in the one-line error."""
    for key, bounds in limits.items():
        if key not in opts:
            continue
        value = opts[key]
        kind = int if key in INTEGERS else (int, float)
        bound = (
            outside(value, bounds) if isinstance(value, kind) and not isinstance(value, bool) else "a number"
        )
        if bound is not None:
            what = f"an integer {bound}" if key in INTEGERS else bound
            raise UsageError(
                f"transport '{owner}': option '{key}' (config key transport.{key}) must be {what}, got {value!r}"
            )
    for key in ("center", "normalize", "warm_start"):
        if key in opts and not isinstance(opts[key], bool):
            raise UsageError(
                f"transport '{owner}': option '{key}' (config key transport.{key}) must be true or false, "
                f"got {opts[key]!r}"
            )
    for key, known in (("cost", COSTS), ("grad", GRADS), ("on_fail", ON_FAIL)):
        if key in opts and opts[key] not in known:
            raise UsageError(
                f"transport '{owner}': option '{key}' (config key transport.{key}) must be one of "
                f"{', '.join(known)}, got {opts[key]!r}"
            )


def _count_bad(x: torch.Tensor) -> int:
    return int((~torch.isfinite(x)).sum().item())


def check_embeddings(owner: str, X_hi: torch.Tensor, X_lo: torch.Tensor) -> None:
    """Shapes and dtypes of the two (K, D) embedding matrices (finiteness is checked on the costs)."""
    for name, X in (("X_hi", X_hi), ("X_lo", X_lo)):
        if not isinstance(X, torch.Tensor) or X.dim() != 2 or X.shape[0] < 1 or not X.is_floating_point():
            what = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
            raise UsageError(f"transport '{owner}': {name} must be a floating (K, D) tensor, got {what}")
    if X_hi.shape[1] != X_lo.shape[1] or X_hi.dtype != X_lo.dtype or X_hi.device != X_lo.device:
        raise UsageError(
            f"transport '{owner}': X_hi {tuple(X_hi.shape)} {X_hi.dtype} {X_hi.device} and X_lo "
            f"{tuple(X_lo.shape)} {X_lo.dtype} {X_lo.device} must share D, dtype and device"
        )


def marginals(
    owner: str, a: torch.Tensor | None, b: torch.Tensor | None, n: int, m: int, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The marginals as detached tensors of ``like``'s dtype and device; uniform where ``None``.

    Given marginals must be 1-D of the right length, finite, strictly positive and of equal mass (to 1e-6
    relative; ``b`` is rescaled to the exact mass of ``a``)."""
    out = []
    for name, w, k in (("a", a, n), ("b", b, m)):
        if w is None:
            out.append(torch.full((k,), 1.0 / k, dtype=like.dtype, device=like.device))
            continue
        w = torch.as_tensor(w).detach().to(dtype=like.dtype, device=like.device)
        if w.shape != (k,):
            raise UsageError(
                f"transport '{owner}': marginal {name} must have shape ({k},), got {tuple(w.shape)}"
            )
        if not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
            raise UsageError(f"transport '{owner}': marginal {name} must be finite and > 0, got {w.tolist()}")
        out.append(w)
    if a is None and b is None:
        return out[0], out[1]
    ma, mb = float(out[0].sum()), float(out[1].sum())
    if abs(ma - mb) > 1e-6 * max(ma, mb):
        raise UsageError(
            f"transport '{owner}': marginals a and b must have equal mass, got {ma:.8g} and {mb:.8g}"
        )
    if b is not None:  # remove the round-off mismatch of the masses: a floor under the marginal error
        out[1] = out[1] * (out[0].sum() / out[1].sum())
    return out[0], out[1]


def check_costs(owner: str, X_hi: torch.Tensor, X_lo: torch.Tensor, *costs: torch.Tensor | None) -> None:
    """Raise :class:`RuntimeFailure` if a cost matrix is not finite, naming the input that caused it."""
    if all(c is None or bool(torch.isfinite(c).all()) for c in costs):
        return
    for name, X in (("X_hi", X_hi), ("X_lo", X_lo)):
        bad = _count_bad(X.detach())
        if bad:
            raise RuntimeFailure(
                f"transport '{owner}': {name} has {bad} non-finite entries (NaN or inf); the embeddings "
                "diverged: lower the learning rate or check the inputs"
            )
    raise RuntimeFailure(
        f"transport '{owner}': the cost matrices overflow in {X_hi.dtype} (embeddings too large, "
        f"max |x| = {max(float(X_hi.detach().abs().max()), float(X_lo.detach().abs().max())):.3g}); "
        "normalise the embeddings or use float64"
    )


def check_solution(
    owner: str,
    plan: torch.Tensor,
    info: SolveInfo,
    *,
    tol: float,
    inner_tol: float,
    marginal_tol: float,
    on_fail: str,
) -> None:
    """Judge a finished solve: non-finite plan or marginal error > ``marginal_tol`` -> RuntimeFailure;
    tolerances not met -> ConvergenceWarning (``on_fail="warn"``) or RuntimeFailure (``"raise"``)."""
    if not math.isfinite(info.marginal_error) or not bool(torch.isfinite(plan).all()):
        raise RuntimeFailure(
            f"transport '{owner}': the solver produced a non-finite plan; increase 'epsilon' or check the inputs"
        )
    if info.marginal_error > marginal_tol:
        after = f" after {info.inner_iter} Sinkhorn iterations" if info.inner_iter >= 0 else ""
        raise RuntimeFailure(
            f"transport '{owner}': the plan misses its marginals (L1 error {info.marginal_error:.3g} > "
            f"marginal_tol {marginal_tol:g}){after}; increase "
            "'inner_max_iter' or 'epsilon'"
        )
    if info.converged and info.inner_converged:
        return
    parts = []
    if not info.converged:
        parts.append(f"outer residual {info.residual:.3g} > tol {tol:g} after max_iter={info.n_iter}")
    if not info.inner_converged:
        parts.append(f"Sinkhorn marginal error {info.marginal_error:.3g} > inner_tol {inner_tol:g}")
    msg = f"transport '{owner}' did not converge: {'; '.join(parts)}"
    if on_fail == "raise":
        raise RuntimeFailure(msg + "; raise the iteration limits or 'epsilon'")
    warnings.warn(msg, ConvergenceWarning, stacklevel=5)  # the caller of T(...) or T.plan(...)
