"""The warm start: along a training path it answers as the cold solve does, with fewer iterations, and
its state survives a checkpoint, so that a resumed run continues exactly."""

from __future__ import annotations

import warnings

import pytest
import torch

from kmat_cli import checkpoint
from kmat_cli.registry import get


def _path(K: int, D: int, steps: int, seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """High-end embeddings and a sequence of low-end ones moving as prompts do in training: unit rows,
    each step a small move (about 1e-3) from the previous one."""
    g = torch.Generator().manual_seed(seed)
    H = torch.nn.functional.normalize(torch.randn(K, D, generator=g, dtype=torch.float64), dim=1)
    X = torch.nn.functional.normalize(H + torch.randn(K, D, generator=g, dtype=torch.float64), dim=1)
    path = [X]
    for _ in range(steps - 1):
        move = torch.randn(K, D, generator=g, dtype=torch.float64) * (1e-3 / D**0.5)
        path.append(torch.nn.functional.normalize(path[-1] + move, dim=1))
    return H, path


CASES = [  # (transport, options, K, D): the defaults, the plain problem, a stronger structure term, Wasserstein
    *(("fgw", {}, K, D) for K, D in ((3, 512), (8, 128), (16, 512))),
    *(("fgw", {"center": False}, K, D) for K, D in ((3, 512), (8, 128), (16, 512))),
    *(("fgw", {"alpha": 0.5}, K, D) for K, D in ((3, 512), (8, 128))),
    *(("wasserstein", {}, K, D) for K, D in ((3, 512), (8, 128), (16, 512))),
]


@pytest.mark.parametrize("name, options, K, D", CASES)
def test_warm_start_answers_as_the_cold_solve_in_fewer_iterations(name, options, K, D) -> None:
    """Value within 1e-6 relative and plan within the outer tolerance's reach (the solves stop on
    ``||T_t+1 - T_t||_F <= 1e-6``, not on the distance to the fixed point)."""
    H, path = _path(K, D, steps=12, seed=K)
    warm = get("transports", name)(**options)
    cold = get("transports", name)(warm_start=False, **options)
    steps = {"warm": 0, "cold": 0}
    for X in path:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # both meet their tolerances
            w, c = warm.solve(H, X.clone().requires_grad_()), cold.solve(H, X.clone().requires_grad_())
        assert float(w.value.detach()) == pytest.approx(float(c.value.detach()), rel=1e-6)
        torch.testing.assert_close(w.plan, c.plan, rtol=0, atol=1e-5)
        steps["warm"] += w.info.n_iter + w.info.inner_iter
        steps["cold"] += c.info.n_iter + c.info.inner_iter
    assert steps["warm"] < steps["cold"]


def test_the_warm_start_is_the_previous_solution() -> None:
    """A second solve of the same problem starts at its fixed point: one outer iteration, no Sinkhorn step."""
    H, (X, *_) = _path(6, 64, steps=1, seed=0)
    T = get("transports", "fgw")()
    first = T.solve(H, X)
    again = T.solve(H, X)
    assert first.info.n_iter > 1 and (again.info.n_iter, again.info.inner_iter) == (1, 0)
    torch.testing.assert_close(again.plan, first.plan, rtol=0, atol=1e-6)
    torch.testing.assert_close(T.solver_state()["plan"], again.plan)


def test_solver_state_survives_a_checkpoint(tmp_path) -> None:
    """gw has several fixed points: warm-started from the plan of a neighbouring problem (the classes in
    another order), the solve stays on that plan's branch, where a cold start lands on another. The
    restored state continues on the same branch, bit for bit."""
    H, (X, *_) = _path(7, 64, steps=1, seed=5)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    T = get("transports", "gw")(epsilon=0.1)
    T.solve(H, X[perm])
    checkpoint.save(tmp_path, epoch=1, method={}, solver=T.solver_state())
    restored = get("transports", "gw")(epsilon=0.1)
    restored.load_solver_state(checkpoint.load(tmp_path).solver)
    expected, again = T.solve(H, X), restored.solve(H, X)
    assert torch.equal(again.plan, expected.plan) and torch.equal(again.value, expected.value)
    cold = get("transports", "gw")(epsilon=0.1, warm_start=False).solve(H, X)
    assert (cold.plan - expected.plan).abs().max() > 0.01


@pytest.mark.parametrize(
    "state",
    [
        {"plan": torch.full((4, 4), 1 / 16, dtype=torch.float64)},  # another shape
        {"plan": torch.full((6, 6), float("nan"), dtype=torch.float64)},
        {"plan": torch.full((6, 6), 1 / 36, dtype=torch.float64), "g": torch.zeros(5, dtype=torch.float64)},
        {"g": torch.zeros(6, dtype=torch.float64)},
        {},
    ],
)
def test_a_state_that_does_not_fit_is_dropped(state) -> None:
    H, (X, *_) = _path(6, 64, steps=1, seed=1)
    T = get("transports", "gw")()
    T.load_solver_state(state)
    cold = get("transports", "gw")(warm_start=False).solve(H, X)
    assert torch.equal(T.solve(H, X).plan, cold.plan)


def test_warm_start_off_keeps_no_state() -> None:
    H, (X, *_) = _path(3, 16, steps=1, seed=2)
    T = get("transports", "fgw")(warm_start=False)
    T.solve(H, X)
    T.load_solver_state({"plan": torch.full((3, 3), 1 / 9, dtype=torch.float64)})
    assert T.solver_state() == {}
