"""kmat's own solvers against POT (independent truth): values and plans to 1e-6 relative in float64."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from transport_truth import PLAIN, TIGHT

from kmat_cli.registry import get

# (K, D, normalised, alpha, epsilon, cost): K from 2 to 64, D up to 512, unit and raw rows, all three
# costs. Epsilon is chosen per case where POT (the truth here) converges to 1e-11 within a second: POT's
# kernel Sinkhorn underflows or crawls in between (e.g. epsilon 0.1 at K = 3), where ours does not.
CASES = [
    (2, 3, True, 0.9, 0.05, "sqeuclidean"),
    (3, 512, True, 0.1, 0.5, "sqeuclidean"),
    (3, 16, False, 0.1, 0.5, "sqeuclidean"),
    (3, 16, False, 0.5, 0.2, "cosine"),
    (5, 512, True, 0.9, 0.05, "sqeuclidean"),
    (5, 512, True, 0.5, 0.2, "euclidean"),
    (8, 512, True, 0.5, 0.02, "sqeuclidean"),
    (8, 512, True, 0.9, 0.2, "cosine"),
    (8, 32, False, 0.1, 1.0, "sqeuclidean"),
    (8, 32, False, 0.5, 0.5, "euclidean"),
    (16, 512, True, 0.5, 0.5, "sqeuclidean"),
    (16, 512, True, 0.1, 0.2, "euclidean"),
    (16, 8, False, 0.1, 1.0, "sqeuclidean"),
    (33, 128, True, 0.9, 0.2, "sqeuclidean"),
    (64, 512, True, 0.1, 0.2, "sqeuclidean"),
    (64, 512, True, 0.5, 0.2, "cosine"),
    (64, 16, False, 0.5, 0.5, "euclidean"),
    (64, 16, False, 0.1, 1.0, "sqeuclidean"),
]


def _check_close(ours_value: float, ours_plan: torch.Tensor, truth, K: int) -> None:
    assert truth.converged, "POT did not converge at the test's tolerance; pick another case"
    assert ours_value == pytest.approx(truth.value, rel=1e-6, abs=1e-12)
    np.testing.assert_allclose(ours_plan.numpy(), truth.plan, rtol=1e-6, atol=1e-6 / K**2)


@pytest.mark.parametrize("K, D, normalised, alpha, epsilon, cost", CASES)
def test_fgw_equals_pot(K, D, normalised, alpha, epsilon, cost, pot_truth, make_embeddings) -> None:
    H, L = make_embeddings(K, D, normalised=normalised, seed=K * 1000 + D)
    T = get("transports", "fgw")(alpha=alpha, epsilon=epsilon, cost=cost, **TIGHT, **PLAIN)
    result = T.solve(H, L)
    truth = pot_truth(H.numpy(), L.numpy(), alpha=alpha, epsilon=epsilon, cost=cost)
    _check_close(float(result.value), result.plan, truth, K)


@pytest.mark.parametrize(
    "K, D, normalised, epsilon",
    [(2, 4, True, 0.1), (5, 512, True, 0.01), (16, 64, False, 0.5), (64, 512, True, 0.5)],
)
def test_wasserstein_equals_sinkhorn2(K, D, normalised, epsilon, make_embeddings) -> None:
    H, L = make_embeddings(K, D, normalised=normalised, seed=K + D)
    M = ot.dist(H.numpy(), L.numpy())
    value = float(ot.sinkhorn2(ot.unif(K), ot.unif(K), M, epsilon, numItermax=20000, stopThr=1e-12))
    plan = ot.sinkhorn(ot.unif(K), ot.unif(K), M, epsilon, numItermax=20000, stopThr=1e-12)
    assert np.abs(plan.sum(0) - 1 / K).sum() < 1e-11, "POT did not converge; pick another case"
    ours = get("transports", "wasserstein")(epsilon=epsilon, **TIGHT, **PLAIN).solve(H, L)
    assert float(ours.value) == pytest.approx(value, rel=1e-6)
    np.testing.assert_allclose(ours.plan.numpy(), plan, rtol=1e-6, atol=1e-6 / K**2)


@pytest.mark.parametrize(
    "K, D, normalised, epsilon",
    [(3, 512, True, 0.2), (4, 8, False, 5.0), (6, 128, True, 1.0), (12, 512, True, 0.5)],
)
def test_gw_equals_entropic_gromov_wasserstein2(
    K, D, normalised, epsilon, pot_truth, make_embeddings
) -> None:
    H, L = make_embeddings(K, D, normalised=normalised, seed=7 * K + D)
    ours = get("transports", "gw")(epsilon=epsilon, **TIGHT, **PLAIN).solve(H, L)
    _check_close(float(ours.value), ours.plan, pot_truth(H.numpy(), L.numpy(), alpha=1.0, epsilon=epsilon), K)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_given_marginals_equal_pot(alpha, pot_truth, make_embeddings) -> None:
    K_hi, K_lo = 5, 5
    H, L = make_embeddings(K_hi, 64, normalised=True, seed=3)
    g = np.random.default_rng(0)
    a, b = g.uniform(0.5, 2, K_hi), g.uniform(0.5, 2, K_lo)
    a, b = a / a.sum(), b / b.sum()
    T = get("transports", "fgw")(alpha=alpha, epsilon=0.1, **TIGHT, **PLAIN)
    result = T.solve(H, L, torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(result.plan.sum(1).numpy(), a, rtol=1e-12)
    _check_close(
        float(result.value),
        result.plan,
        pot_truth(H.numpy(), L.numpy(), alpha=alpha, epsilon=0.1, a=a, b=b),
        5,
    )


@pytest.mark.parametrize("name", ["fgw", "wasserstein", "gw"])
def test_pot_reference_transports_agree_with_ours(name, make_embeddings) -> None:
    """The registered ``pot-*`` wrappers give the same value, plan and (envelope) gradient as ours."""
    H, L = make_embeddings(6, 128, normalised=True, seed=11)
    answers = []
    for full in (name, f"pot-{name}"):
        X = L.clone().requires_grad_()
        options = dict(max_iter=2000, tol=1e-11, inner_max_iter=20000, inner_tol=1e-12)
        result = get("transports", full)(epsilon=0.5, **options, **PLAIN).solve(H, X)
        result.value.backward()
        answers.append((result.value.item(), result.plan, X.grad))
    (v0, p0, g0), (v1, p1, g1) = answers
    assert v0 == pytest.approx(v1, rel=1e-6)
    torch.testing.assert_close(p0, p1, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(g0, g1, rtol=1e-5, atol=1e-9)
