"""Failure is never silent: bad input -> UsageError, non-finite -> RuntimeFailure, non-convergence ->
ConvergenceWarning with the residual (or RuntimeFailure with on_fail="raise")."""

from __future__ import annotations

import warnings

import pytest
import torch
from kmat.transports.checks import ConvergenceWarning

from kmat_cli.errors import RuntimeFailure, UsageError
from kmat_cli.registry import get

ALL = ["fgw", "wasserstein", "gw", "pot-fgw", "pot-wasserstein", "pot-gw"]


def _pair(K: int = 4, D: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    H = torch.nn.functional.normalize(torch.randn(K, D, generator=g, dtype=torch.float64), dim=1)
    return H, torch.nn.functional.normalize(H + torch.randn(K, D, generator=g, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("where, bad", [("X_lo", float("nan")), ("X_hi", float("inf"))])
def test_non_finite_input_is_an_error_naming_it(name: str, where: str, bad: float) -> None:
    H, L = _pair()
    (L if where == "X_lo" else H)[1, 2] = bad
    with pytest.raises(RuntimeFailure, match=where):
        get("transports", name)()(H, L)


def test_overflowing_costs_are_an_error() -> None:
    H, L = _pair()
    with pytest.raises(RuntimeFailure, match="overflow"):
        get("transports", "fgw")()(H.float() * 1e20, L.float())


@pytest.mark.parametrize("name", ["fgw", "gw", "pot-fgw", "pot-gw"])
def test_outer_non_convergence_warns_with_the_residual(name: str) -> None:
    H, L = _pair()
    with pytest.warns(ConvergenceWarning, match=r"outer residual [0-9.e+-]+ > tol .* max_iter=1"):
        loss = get("transports", name)(max_iter=1)(H, L)
    assert torch.isfinite(loss) and loss.item() != 0


def test_outer_non_convergence_raises_when_asked() -> None:
    H, L = _pair()
    with pytest.raises(RuntimeFailure, match="did not converge: outer residual"):
        get("transports", "fgw")(max_iter=1, on_fail="raise")(H, L)


def test_inner_non_convergence_warns_with_the_marginal_error() -> None:
    H, L = _pair()
    with pytest.warns(ConvergenceWarning, match=r"Sinkhorn marginal error [0-9.e+-]+ > inner_tol"):
        get("transports", "wasserstein")(epsilon=0.01, inner_max_iter=2, marginal_tol=1.0)(H, L)


@pytest.mark.parametrize("name", ["wasserstein", "pot-wasserstein"])
def test_a_plan_missing_its_marginals_is_an_error(name: str) -> None:
    H, L = _pair()
    with pytest.raises(RuntimeFailure, match=r"misses its marginals \(L1 error [0-9.e+-]+ > marginal_tol"):
        get("transports", name)(epsilon=0.001, inner_max_iter=1)(H, L)


def test_converged_solves_are_silent() -> None:
    H, L = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("fgw", "wasserstein", "gw"):
            get("transports", name)()(H, L)
            get("transports", name)()(H.float(), L.float())


@pytest.mark.parametrize(
    "args, match",
    [
        ((torch.zeros(3), torch.zeros(3, 2)), "X_hi must be a floating"),
        ((torch.zeros(3, 2), torch.zeros(3, 4)), "share D"),
        ((torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.float64)), "share D, dtype"),
        (
            (torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([0.5, 0.5])),
            r"marginal a must have shape \(3,\)",
        ),
        ((torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([1.0, 0.0, 0.0])), "finite and > 0"),
        ((torch.zeros(3, 2), torch.zeros(3, 2), None, torch.tensor([0.5, 0.5, 0.5])), "equal mass"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        get("transports", "fgw")()(*args)
