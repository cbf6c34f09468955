"""Every registered transport honours the Transport contract (``kmat_cli.api.Transport``).

Parametrised over ``kmat_cli.registry.names("transports")``, so a new transport is checked as soon as it
is registered: built with its default options, its loss is a finite scalar whose gradient reaches
``X_lo`` only, and its plan is a coupling of the marginals. Transports that state an FGW ``alpha`` (kmat's
own and the POT references) are also compared with POT itself.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from transport_truth import embeddings, pot_solve

from kmat_cli.api import Transport
from kmat_cli.config import plugin_options
from kmat_cli.registry import get, names

K, D = 5, 16


@pytest.fixture(params=names("transports"))
def transport(request: pytest.FixtureRequest) -> Transport:
    return get("transports", request.param)()


def test_is_a_documented_transport_with_data_options(transport: Transport) -> None:
    assert isinstance(transport, Transport) and type(transport).__doc__
    json.dumps(plugin_options(type(transport)))  # its options are configuration as data


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_is_a_finite_scalar_with_a_gradient_to_the_low_end_only(transport: Transport, dtype) -> None:
    H, L = embeddings(K, D, normalised=True, seed=0, dtype=dtype)
    X_hi, X_lo = H.clone().requires_grad_(), L.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence at default tolerances is the solvers' own tests'
        loss = transport(X_hi, X_lo)
    assert loss.dim() == 0 and loss.dtype == dtype and torch.isfinite(loss)
    loss.backward()
    assert X_lo.grad is not None and torch.isfinite(X_lo.grad).all() and X_lo.grad.abs().sum() > 0
    assert X_hi.grad is None or not X_hi.grad.any()


def test_plan_is_a_coupling_of_the_marginals(transport: Transport) -> None:
    H, L = embeddings(K, D, normalised=True, seed=1)
    a = torch.tensor([0.1, 0.3, 0.2, 0.25, 0.15], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uniform, weighted = transport.plan(H, L), transport.plan(H, L, a=a)
    for plan, rows in ((uniform, torch.full((K,), 1 / K, dtype=torch.float64)), (weighted, a)):
        assert plan.shape == (K, K) and not plan.requires_grad and (plan >= 0).all()
        torch.testing.assert_close(plan.sum(1), rows, atol=1e-3, rtol=0)
        torch.testing.assert_close(
            plan.sum(0), torch.full((K,), 1 / K, dtype=torch.float64), atol=1e-3, rtol=0
        )


@pytest.mark.slow  # POT at tight tolerance: about 10 s per structured transport
def test_value_matches_pot_where_the_problem_is_fgw(transport: Transport) -> None:
    alpha, epsilon, cost = (getattr(transport, k, None) for k in ("alpha", "epsilon", "cost"))
    if alpha is None or getattr(transport, "center", False) or getattr(transport, "normalize", False):
        pytest.skip(f"{type(transport).__name__} states no plain FGW problem")
    H, L = embeddings(K, D, normalised=True, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value, plan = float(transport(H, L)), transport.plan(H, L)
    truth = pot_solve(H.numpy(), L.numpy(), alpha=alpha, epsilon=epsilon, cost=cost)
    assert value == pytest.approx(truth.value, rel=1e-3, abs=1e-6)
    assert float((plan - torch.from_numpy(truth.plan)).abs().max()) < 1e-3
