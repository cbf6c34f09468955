"""The envelope gradient in closed form against autograd through the same costs and value, at the same plan,
for every ground cost and option; the value comes back with its gradient attached."""

from __future__ import annotations

import pytest
import torch
from kmat.transports.costs import COSTS

from kmat_cli.registry import get


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
