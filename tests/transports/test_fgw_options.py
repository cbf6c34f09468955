"""Transport options ``center`` and ``normalize``: against POT fed the centred / normalised costs, the
invariances they exist for, gradient flow, config and validation."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from transport_truth import TIGHT, pot_solve_costs

from kmat_cli import config
from kmat_cli.errors import UsageError
from kmat_cli.registry import get


def _truth_costs(H: torch.Tensor, L: torch.Tensor, cost: str, center: bool, normalize: bool):
    """M, C_hi, C_lo by POT's ``ot.dist`` on the centred features, divided by their means, in numpy."""
    Hn, Ln = H.numpy(), L.numpy()
    Mf = (Hn - Hn.mean(0), Ln - Ln.mean(0)) if center else (Hn, Ln)
    mats = [ot.dist(*Mf, metric=cost), ot.dist(Hn, Hn, metric=cost), ot.dist(Ln, Ln, metric=cost)]
    return [m / m.mean() for m in mats] if normalize else mats


def _transport(name: str, **options):
    if name != "fgw":
        options.pop("alpha", None)
    return get("transports", name)(**options, **TIGHT)


# (name, K, D, normalised, alpha, epsilon, cost, center, normalize)
CASES = [
    ("fgw", 5, 64, True, 0.1, 0.5, "sqeuclidean", True, False),
    ("fgw", 5, 64, True, 0.5, 0.2, "sqeuclidean", False, True),
    ("fgw", 8, 512, True, 0.1, 0.2, "sqeuclidean", True, True),
    ("fgw", 6, 16, False, 0.9, 0.5, "sqeuclidean", True, True),
    ("fgw", 6, 16, False, 0.5, 0.5, "cosine", True, True),
    ("wasserstein", 6, 64, True, None, 0.5, "sqeuclidean", True, True),
    ("wasserstein", 4, 16, False, None, 0.5, "euclidean", True, False),
    ("gw", 6, 64, True, None, 0.5, "sqeuclidean", False, True),
    ("gw", 5, 16, False, None, 0.5, "euclidean", True, True),
]


@pytest.mark.parametrize("name, K, D, normalised, alpha, epsilon, cost, center, normalize", CASES)
def test_options_equal_pot_on_prepared_costs(
    name, K, D, normalised, alpha, epsilon, cost, center, normalize, make_embeddings
) -> None:
    H, L = make_embeddings(K, D, normalised=normalised, seed=K * 31 + D)
    a_ = {"fgw": alpha, "wasserstein": 0.0, "gw": 1.0}[name]
    T = _transport(name, alpha=alpha, epsilon=epsilon, cost=cost, center=center, normalize=normalize)
    ours = T.solve(H, L)
    truth = pot_solve_costs(*_truth_costs(H, L, cost, center, normalize), alpha=a_, epsilon=epsilon)
    assert truth.converged, "POT did not converge at the test's tolerance; pick another case"
    assert float(ours.value) == pytest.approx(truth.value, rel=1e-6, abs=1e-12)
    np.testing.assert_allclose(ours.plan.numpy(), truth.plan, rtol=1e-6, atol=1e-6 / K**2)


def _value(T, H: torch.Tensor, L: torch.Tensor) -> float:
    return float(T.solve(H, L).value)


@pytest.mark.parametrize("name", ["fgw", "wasserstein"])
def test_center_makes_a_translation_of_the_low_end_free(name, make_embeddings) -> None:
    H, L = make_embeddings(6, 32, normalised=True, seed=5)
    shift = 0.7 * torch.randn(32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    on = _transport(name, alpha=0.5, epsilon=0.1, center=True)
    assert _value(on, H, L + shift) == pytest.approx(_value(on, H, L), rel=1e-9)
    off = _transport(name, alpha=0.5, epsilon=0.1, center=False)
    assert abs(_value(off, H, L + shift) - _value(off, H, L)) > 1e-2  # the option is what makes it free


def test_normalize_makes_a_scaled_low_end_structure_free(make_embeddings) -> None:
    """sqeuclidean: C_lo of s * X_lo is s^2 C_lo, so the normalised structure (GW) term does not change."""
    H, L = make_embeddings(6, 32, normalised=True, seed=6)
    on = _transport("gw", epsilon=0.1, normalize=True)
    assert _value(on, H, 0.3 * L) == pytest.approx(_value(on, H, L), rel=1e-9)
    off = _transport("gw", epsilon=0.1)
    assert abs(_value(off, H, 0.3 * L) - _value(off, H, L)) > 1e-2


@pytest.mark.parametrize("center", [False, True])
def test_normalized_fgw_is_invariant_to_a_common_scale(center, make_embeddings) -> None:
    """The feature term is normalised too: scaling both sets together changes nothing (not one alone)."""
    H, L = make_embeddings(6, 32, normalised=True, seed=7)
    on = _transport("fgw", alpha=0.5, epsilon=0.1, normalize=True, center=center)
    assert _value(on, 2.5 * H, 2.5 * L) == pytest.approx(_value(on, H, L), rel=1e-9)


@pytest.mark.parametrize("name", ["fgw", "wasserstein", "gw", "pot-fgw"])
@pytest.mark.parametrize("grad", ["envelope", "unrolled"])
def test_gradients_reach_the_low_end_only(name, grad, make_embeddings) -> None:
    H, L = make_embeddings(5, 16, normalised=True, seed=8)
    H, L = H.clone().requires_grad_(), L.clone().requires_grad_()
    options = dict(epsilon=0.2, center=True, normalize=True, grad=grad, max_iter=200, inner_max_iter=2000)
    if name.endswith("fgw"):
        options["alpha"] = 0.5
    get("transports", name)(**options).solve(H, L).value.backward()
    assert H.grad is None
    assert L.grad is not None and torch.isfinite(L.grad).all() and L.grad.abs().max() > 0


def test_zero_mean_costs_are_left_as_they_are() -> None:
    """Identical rows: every cost is 0; normalize must not divide by that zero."""
    X = torch.ones(4, 8, dtype=torch.float64)
    for name in ("fgw", "wasserstein", "gw"):
        result = _transport(name, alpha=0.5, epsilon=0.1, normalize=True, center=True).solve(X, X.clone())
        assert float(result.value) == 0.0 and torch.isfinite(result.plan).all()


@pytest.mark.parametrize("name", ["fgw", "wasserstein", "gw"])
def test_options_are_config_keys_with_the_rules_defaults(name) -> None:
    cfg = config.build(flags={"transport.name": name})  # docs/defaults.md: centred, not normalised
    assert cfg["transport"]["center"] is True and cfg["transport"]["normalize"] is False
    cfg = config.build(
        flags={"transport.name": name}, sets=["transport.center=true", "transport.normalize=true"]
    )
    T = get("transports", name)(**{k: v for k, v in cfg["transport"].items() if k != "name"})
    assert T.center is True and T.normalize is True


def test_non_boolean_option_is_a_usage_error_naming_the_key() -> None:
    with pytest.raises(UsageError, match=r"transport\.center"):
        get("transports", "fgw")(center="yes")
