"""Ground costs against scipy's cdist, and their gradients where a distance is 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kmat.transports.costs import COSTS, pairwise_cost
from scipy.spatial.distance import cdist


@pytest.mark.parametrize("cost", COSTS)
def test_costs_equal_scipy(cost: str) -> None:
    g = torch.Generator().manual_seed(0)
    X, Y = (
        torch.randn(5, 64, generator=g, dtype=torch.float64),
        torch.randn(7, 64, generator=g, dtype=torch.float64),
    )
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
