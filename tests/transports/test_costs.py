"""Ground costs against scipy's cdist, their closed-form gradients against autograd, and their gradients where
a distance is 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kmat.transports.costs import COSTS, pairwise_cost, pairwise_cost_grad
from scipy.spatial.distance import cdist


def _seeded(*shapes: tuple[int, int]) -> list[torch.Tensor]:
    """Standard-normal float64 matrices of these shapes, drawn in order from one generator seeded 0."""
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) for shape in shapes]


@pytest.mark.parametrize("cost", COSTS)
def test_costs_equal_scipy(cost: str) -> None:
    X, Y = _seeded((5, 64), (7, 64))
    ours = pairwise_cost(X, Y, cost).numpy()
    np.testing.assert_allclose(ours, cdist(X.numpy(), Y.numpy(), metric=cost), rtol=1e-10, atol=1e-12)
    C = pairwise_cost(X, X, cost)
    torch.testing.assert_close(C, C.T, rtol=1e-12, atol=1e-12)
    assert C.diagonal().abs().max() < 1e-12


@pytest.mark.parametrize("cost", COSTS)
def test_structure_matrix_gradient_is_finite_on_the_diagonal(cost: str) -> None:
    X = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    pairwise_cost(X, X, cost).sum().backward()
    assert torch.isfinite(X.grad).all()


def test_unknown_cost_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown cost"):
        pairwise_cost(torch.zeros(2, 2), torch.zeros(2, 2), "manhattan")


@pytest.mark.parametrize("cost", COSTS)
def test_cost_gradients_equal_autograd(cost: str) -> None:
    X, Y, G, S = _seeded((5, 7), (4, 7), (5, 4), (5, 5))
    Yg, Xg = Y.clone().requires_grad_(), X.clone().requires_grad_()
    ((pairwise_cost(X, Yg, cost) * G).sum() + (pairwise_cost(Xg, Xg, cost) * S).sum()).backward()
    torch.testing.assert_close(pairwise_cost_grad(X, Y, pairwise_cost(X, Y, cost), G, cost), Yg.grad)
    C = pairwise_cost(X, X, cost)
    torch.testing.assert_close(pairwise_cost_grad(X, X, C, S + S.T, cost), Xg.grad)
