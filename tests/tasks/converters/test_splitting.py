"""Splitting a converted dataset: proportional quotas by largest remainder, both margins met exactly, and
groups (one patient's images) never straddling two splits."""

from __future__ import annotations

from collections import Counter

import pytest
from kmat.tasks.converters.splitting import assign_groups, proportional, quotas


@pytest.mark.parametrize("total", [0, 1, 7, 78, 780, 6432])
def test_proportional_sums_and_rounds_largest_remainder(total: int) -> None:
    sizes = proportional(total, (389, 155, 236))
    assert sum(sizes) == total
    assert all(abs(s - total * w / 780) < 1 for s, w in zip(sizes, (389, 155, 236), strict=True))
    if total == 780:
        assert sizes == [389, 155, 236]


def test_quotas_hit_both_margins_exactly() -> None:
    classes = {"benign": 437, "malignant": 210, "normal": 133}
    q = quotas(classes, [389, 155, 236])
    assert {k: sum(v) for k, v in q.items()} == classes
    assert [sum(q[k][s] for k in q) for s in range(3)] == [389, 155, 236]
    assert all(
        abs(q[k][s] - n * t / 780) < 1 for k, n in classes.items() for s, t in enumerate([389, 155, 236])
    )


def test_groups_never_straddle_and_singletons_meet_quotas() -> None:
    groups = {f"p{i}": Counter({"a": 1 + i % 3, "b": i % 2}) for i in range(60)}
    where = assign_groups(groups, (70, 15, 15), seed=5)
    assert set(where) == set(groups) and set(where.values()) == {"train", "val", "test"}
    assert where == assign_groups(groups, (70, 15, 15), seed=5)
    singles = {f"x{i}": Counter({"ab"[i % 2]: 1}) for i in range(100)}
    placed = assign_groups(singles, (70, 15, 15), seed=1)
    assert [sum(1 for s in placed.values() if s == split) for split in ("train", "val", "test")] == [
        70,
        15,
        15,
    ]
    per_class = Counter((next(iter(singles[g])), s) for g, s in placed.items())
    assert sorted([per_class[("a", "val")], per_class[("b", "val")]]) == [7, 8]  # 7.5 each, rounded
