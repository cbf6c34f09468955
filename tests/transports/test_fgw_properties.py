"""Properties with independent truth: permutation equivariance, float32 stability where POT's kernel
solver fails, and the gradients (envelope theorem and unrolled) against finite differences."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch
from transport_truth import TIGHT

from kmat_cli.errors import RuntimeFailure
from kmat_cli.registry import get


@pytest.mark.parametrize(
    "name, kwargs", [("fgw", {"alpha": 0.1}), ("fgw", {"alpha": 0.7}), ("wasserstein", {}), ("gw", {})]
)
def test_permuting_low_end_classes_permutes_the_plan(name, kwargs, make_embeddings) -> None:
    H, L = make_embeddings(7, 64, normalised=True, seed=5)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    # Two unrelated problems in a row: each solved cold (a warm start would carry the first plan over).
    T = get("transports", name)(epsilon=0.1, warm_start=False, **kwargs, **TIGHT)
    r, r_perm = T.solve(H, L), T.solve(H, L[perm])
    torch.testing.assert_close(r_perm.plan, r.plan[:, perm], rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(r_perm.value, r.value, rtol=1e-10, atol=0)


@pytest.mark.parametrize("name", ["wasserstein", "fgw", "gw"])
def test_float32_small_epsilon_large_costs_stays_finite_and_close(name, make_embeddings) -> None:
    """epsilon 0.01 with costs scaled x100 (C / eps up to 4e4): float32 matches our float64 answer, while
    POT's kernel-domain Sinkhorn underflows to a zero plan on the same problem."""
    H, L = make_embeddings(5, 64, normalised=True, seed=1)
    H, L = 10 * H, 10 * L
    T = get("transports", name)(epsilon=0.01)
    r64 = T.solve(H, L)
    r32 = T.solve(H.float(), L.float())
    assert torch.isfinite(r32.value) and torch.isfinite(r32.plan).all()
    assert float(r32.value) == pytest.approx(float(r64.value), rel=1e-4)
    torch.testing.assert_close(r32.plan.double(), r64.plan, rtol=1e-3, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = ot.dist(H.float().numpy(), L.float().numpy())
        pot_plan = ot.sinkhorn(ot.unif(5), ot.unif(5), M, 0.01)
    assert not (np.isfinite(pot_plan).all() and abs(pot_plan.sum() - 1) < 1e-3)  # POT: zeros or NaN
    with pytest.raises(RuntimeFailure):
        get("transports", f"pot-{name}")(epsilon=0.01).solve(H.float(), L.float())


def _entropic_objective(T, H: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """FGW_eps(X) = value + eps sum T (log T - 1) at the optimal plan: what the envelope gradient is the
    gradient of (the plan enters without gradient: its derivative vanishes at the optimum)."""
    r = T.solve(H, X)
    P = r.plan
    return r.value + T.epsilon * (P * (P.log() - 1)).sum()


@pytest.mark.parametrize(
    "name, kwargs", [("fgw", {"alpha": 0.1}), ("fgw", {"alpha": 0.6}), ("wasserstein", {}), ("gw", {})]
)
@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean", "cosine"])
def test_envelope_gradient_is_the_gradient_of_the_entropic_optimum(
    name, kwargs, cost, make_embeddings
) -> None:
    H, L = make_embeddings(4, 3, normalised=False, seed=2)
    T = get("transports", name)(epsilon=0.2, cost=cost, **kwargs, **TIGHT)
    X = L.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda Y: _entropic_objective(T, H, Y), (X,), eps=1e-6, atol=1e-6, rtol=1e-5
    )


@pytest.mark.parametrize("name, kwargs", [("fgw", {"alpha": 0.3}), ("wasserstein", {}), ("gw", {})])
def test_envelope_gradient_in_high_dimension_by_directional_differences(
    name, kwargs, make_embeddings
) -> None:
    H, L = make_embeddings(6, 512, normalised=True, seed=4)
    T = get("transports", name)(epsilon=0.1, **kwargs, **TIGHT)
    X = L.clone().requires_grad_()
    T(H, X).backward()
    g = torch.Generator().manual_seed(1)
    h = 1e-5
    for _ in range(3):
        V = torch.randn(L.shape, generator=g, dtype=L.dtype)
        fd = (_entropic_objective(T, H, L + h * V) - _entropic_objective(T, H, L - h * V)) / (2 * h)
        assert float((X.grad * V).sum()) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("name, kwargs", [("fgw", {"alpha": 0.4}), ("wasserstein", {}), ("gw", {})])
def test_unrolled_gradient_is_the_gradient_of_the_reported_value(name, kwargs, make_embeddings) -> None:
    H, L = make_embeddings(4, 3, normalised=False, seed=3)
    T = get("transports", name)(epsilon=0.2, grad="unrolled", **kwargs, **TIGHT)
    X = L.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda Y: T(H, Y), (X,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_envelope_and_unrolled_differ_by_the_entropy_term_only(make_embeddings) -> None:
    """The two gradients differ (the reported value omits the entropy), yet both point the same way."""
    H, L = make_embeddings(5, 32, normalised=True, seed=6)
    grads = []
    for grad in ("envelope", "unrolled"):
        X = L.clone().requires_grad_()
        get("transports", "fgw")(epsilon=0.1, grad=grad, **TIGHT)(H, X).backward()
        grads.append(X.grad)
    cos = torch.nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0)
    assert cos > 0.5 and not torch.allclose(grads[0], grads[1])
