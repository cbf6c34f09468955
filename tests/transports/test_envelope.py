"""The envelope gradient in closed form against autograd through the same costs and value, at the same plan,
for every ground cost and option; the value comes back with its gradient attached."""

from __future__ import annotations

import pytest
import torch
from kmat.transports.costs import COSTS, pairwise_cost, pairwise_cost_grad

from kmat_cli.registry import get


@pytest.mark.parametrize("cost", COSTS)
def test_cost_gradients_equal_autograd(cost: str) -> None:
    g = torch.Generator().manual_seed(0)
    X, Y = (
        torch.randn(5, 7, generator=g, dtype=torch.float64),
        torch.randn(4, 7, generator=g, dtype=torch.float64),
    )
    G, S = (
        torch.randn(5, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 5, generator=g, dtype=torch.float64),
    )
    Yg, Xg = Y.clone().requires_grad_(), X.clone().requires_grad_()
    ((pairwise_cost(X, Yg, cost) * G).sum() + (pairwise_cost(Xg, Xg, cost) * S).sum()).backward()
    torch.testing.assert_close(pairwise_cost_grad(X, Y, pairwise_cost(X, Y, cost), G, cost), Yg.grad)
    C = pairwise_cost(X, X, cost)
    torch.testing.assert_close(pairwise_cost_grad(X, X, C, S + S.T, cost), Xg.grad)


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("center, normalize", [(False, False), (True, False), (False, True), (True, True)])
def test_envelope_gradient_equals_autograd_at_the_plan(
    cost, alpha, center, normalize, make_embeddings
) -> None:
    H, L = make_embeddings(5, 24, normalised=False, seed=3)
    T = get("transports", "fgw")(alpha=alpha, cost=cost, center=center, normalize=normalize, epsilon=0.2)
    X = L.clone().requires_grad_()
    result = T.solve(H, X)
    result.value.backward()
    a = b = torch.full((5,), 0.2, dtype=torch.float64)
    Y = L.clone().requires_grad_()
    expected = T._value(T._costs(H, Y), result.plan, a, b)
    (truth,) = torch.autograd.grad(expected, Y)
    assert float(result.value.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(X.grad, truth, rtol=1e-9, atol=1e-12)


def test_the_gradient_scales_with_the_upstream_gradient(make_embeddings) -> None:
    H, L = make_embeddings(4, 16, normalised=True, seed=1)
    T = get("transports", "fgw")()
    grads = []
    for scale in (1.0, -3.0):
        X = L.clone().requires_grad_()
        (scale * T(H, X)).backward()
        grads.append(X.grad)
    torch.testing.assert_close(grads[1], -3.0 * grads[0])
