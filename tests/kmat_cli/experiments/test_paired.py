"""The paired bootstrap against scipy's percentile bootstrap and the closed form on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from kmat_cli.experiments.paired import Unit, correctness, paired_difference


def test_one_unit_is_the_percentile_bootstrap_of_the_paired_mean_over_images() -> None:
    rng = np.random.default_rng(5)
    a = (rng.random(300) < 0.65).astype(np.uint8)
    b = (rng.random(300) < 0.55).astype(np.uint8)
    got = paired_difference([Unit("w0", a, b)], replicates=4000)
    d = a.astype(float) - b.astype(float)
    assert got.mean == pytest.approx(100 * d.mean())
    ref = stats.bootstrap((d,), np.mean, method="percentile", n_resamples=4000, random_state=1)
    low, high = 100 * ref.confidence_interval.low, 100 * ref.confidence_interval.high
    assert got.low == pytest.approx(low, abs=0.8) and got.high == pytest.approx(high, abs=0.8)
    half = 100 * 1.96 * d.std() / np.sqrt(d.size)  # the normal closed form
    assert (got.high - got.low) / 2 == pytest.approx(half, rel=0.1)


def test_constant_differences_give_the_percentile_bootstrap_over_units() -> None:
    wins = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1]  # per unit: A right and B wrong on every image, or a tie
    units = [Unit(i, np.full(40, w, np.uint8), np.zeros(40, np.uint8)) for i, w in enumerate(wins)]
    got = paired_difference(units, replicates=4000)
    assert got.mean == pytest.approx(100 * np.mean(wins)) and got.n == 12 and got.wins == 8
    ref = stats.bootstrap(
        (np.array(wins, float),), np.mean, method="percentile", n_resamples=4000, random_state=1
    )
    assert got.low == pytest.approx(100 * ref.confidence_interval.low, abs=3)
    assert got.high == pytest.approx(100 * ref.confidence_interval.high, abs=3)


def test_zero_difference_has_a_zero_interval_and_n_is_reported() -> None:
    a = np.ones(50, np.uint8)
    got = paired_difference([Unit(0, a, a), Unit(1, a, a)])
    assert (got.mean, got.low, got.high, got.n, got.wins) == (0.0, 0.0, 0.0, 2, 0)


def test_units_of_a_group_must_share_their_images_and_correct_strings_parse() -> None:
    with pytest.raises(ValueError):
        paired_difference([Unit(0, np.ones(3), np.ones(3)), Unit(0, np.ones(4), np.ones(4))])
    np.testing.assert_array_equal(correctness("0110"), [0, 1, 1, 0])
