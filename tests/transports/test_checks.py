"""The transport contract (DESIGN.md "Contracts"), checked on all six registered transports."""

from __future__ import annotations

import warnings

import pytest
import torch
from kmat.transports.checks import ConvergenceWarning

from kmat_cli.api import Transport
from kmat_cli.config import plugin_options
from kmat_cli.errors import UsageError
from kmat_cli.registry import get, names

ALL = ["fgw", "wasserstein", "gw", "pot-fgw", "pot-wasserstein", "pot-gw"]
OPTIONS = {
    "epsilon",
    "max_iter",
    "tol",
    "inner_max_iter",
    "inner_tol",
    "marginal_tol",
    "cost",
    "grad",
    "on_fail",
    "center",
    "normalize",
    "warm_start",
}


def test_registry_resolves_all_six() -> None:
    assert set(ALL) <= set(names("transports"))
    for name in ALL:
        cls = get("transports", name)
        assert cls.name == name and cls.__doc__
        assert issubclass(cls, Transport)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conformance(name: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    K, D = 5, 32
    H = torch.randn(K, D, dtype=dtype)
    X_hi = torch.nn.functional.normalize(H, dim=1).requires_grad_()
    X_lo = torch.nn.functional.normalize(H + torch.randn(K, D, dtype=dtype), dim=1).requires_grad_()
    kwargs = {"alpha": 0.1} if name.endswith("fgw") else {}
    T = get("transports", name)(epsilon=0.1, max_iter=100, **kwargs)
    with warnings.catch_warnings():
        # Ours converge silently here; POT's kernel Sinkhorn may need more than its 1000 iterations.
        warnings.simplefilter("ignore" if name.startswith("pot-") else "error", ConvergenceWarning)
        loss = T(X_hi, X_lo)
        plan = T.plan(X_hi, X_lo)
    assert loss.dim() == 0 and loss.dtype == dtype and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert X_lo.grad is not None and torch.isfinite(X_lo.grad).all() and X_lo.grad.abs().sum() > 0
    assert X_hi.grad is None  # the high-end side is fixed
    assert plan.shape == (K, K) and plan.dtype == dtype and not plan.requires_grad
    torch.testing.assert_close(plan.sum(1), torch.full((K,), 1 / K, dtype=dtype), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plan.sum(0), torch.full((K,), 1 / K, dtype=dtype), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_given_marginals_and_rectangular_plans(name: str) -> None:
    torch.manual_seed(1)
    X_hi, X_lo = torch.randn(4, 8, dtype=torch.float64) / 3, torch.randn(6, 8, dtype=torch.float64) / 3
    a = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    b = torch.full((6,), 1 / 6, dtype=torch.float64)
    plan = get("transports", name)(epsilon=0.5).plan(X_hi, X_lo, a, b)
    assert plan.shape == (4, 6)
    torch.testing.assert_close(plan.sum(1), a, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(plan.sum(0), b, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_options_are_config_keys(name: str) -> None:
    options = plugin_options(get("transports", name))
    expected = OPTIONS | ({"alpha"} if name.endswith("fgw") else set())
    assert set(options) == expected
    assert options["epsilon"] == 0.1 and options["max_iter"] == 100 and options["cost"] == "sqeuclidean"
    # chosen by the rule of docs/defaults.md: centred feature cost, plain structure, the literal alpha 0.1
    assert options["center"] is True and options["normalize"] is False
    if "alpha" in options:
        assert options["alpha"] == 0.1


@pytest.mark.parametrize("name", ["wasserstein", "gw", "pot-wasserstein", "pot-gw"])
def test_fixed_alpha_transports_reject_alpha(name: str) -> None:
    with pytest.raises(UsageError, match="alpha"):
        get("transports", name)(alpha=0.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"epsilon": 0.0},
        {"alpha": 1.5},
        {"max_iter": 0},
        {"cost": "manhattan"},
        {"grad": "implicit"},
        {"on_fail": "ignore"},
    ],
)
def test_bad_options_are_usage_errors(bad: dict) -> None:
    key = next(iter(bad))
    with pytest.raises(UsageError, match=key):
        get("transports", "fgw")(**bad)


def test_wasserstein_and_gw_are_fgw_at_alpha_0_and_1() -> None:
    torch.manual_seed(2)
    X_hi, X_lo = torch.randn(5, 16, dtype=torch.float64), torch.randn(5, 16, dtype=torch.float64)
    for name, alpha in (("wasserstein", 0.0), ("gw", 1.0)):
        ours = get("transports", name)(epsilon=0.5)(X_hi, X_lo)
        fgw = get("transports", "fgw")(epsilon=0.5, alpha=alpha)(X_hi, X_lo)
        torch.testing.assert_close(ours, fgw)


@pytest.mark.parametrize("name", ["fgw", "pot-fgw"])
def test_half_precision_and_autocast_are_solved_in_float32(name: str) -> None:
    torch.manual_seed(3)
    H = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
    L = torch.nn.functional.normalize(H + torch.randn(5, 16), dim=1)
    T = get("transports", name)(epsilon=0.5)
    reference = T(H, L)
    X = L.half().requires_grad_()
    loss = T(H.half(), X)
    loss.backward()
    assert loss.dtype == torch.float32 and X.grad.dtype == torch.float16 and torch.isfinite(X.grad).all()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert T(H, L).item() == pytest.approx(reference.item(), rel=1e-5)


def test_a_single_class_transports_all_mass() -> None:
    X_hi, X_lo = torch.randn(1, 4, dtype=torch.float64), torch.randn(1, 4, dtype=torch.float64)
    T = get("transports", "fgw")(alpha=0.5, center=False)
    assert T.plan(X_hi, X_lo).item() == pytest.approx(1.0)
    assert T(X_hi, X_lo).item() == pytest.approx(0.5 * float(((X_hi - X_lo) ** 2).sum()))


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["fgw", "wasserstein", "gw", "pot-fgw"])
def test_cuda_matches_cpu(name: str) -> None:
    torch.manual_seed(4)
    H = torch.nn.functional.normalize(torch.randn(6, 512), dim=1)
    L = torch.nn.functional.normalize(H + torch.randn(6, 512), dim=1)
    T = get("transports", name)()
    X = L.cuda().requires_grad_()
    loss = T(H.cuda(), X)
    loss.backward()
    assert loss.device.type == "cuda" and X.grad.device.type == "cuda"
    cpu = T(H, L)
    assert loss.item() == pytest.approx(cpu.item(), rel=1e-4)
    torch.testing.assert_close(T.plan(H.cuda(), L.cuda()).cpu(), T.plan(H, L), rtol=1e-3, atol=1e-5)
