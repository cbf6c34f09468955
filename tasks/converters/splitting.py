"""Seeded, class-stratified, group-level (patient-level) train/val/test splits.

Sizes follow a ratio (Table 1 of the K-MaT paper per task): the grand total N is divided into split
totals by largest remainder, then into a class x split quota matrix whose row sums are the class totals
and whose column sums are the split totals (proportional allocation ``n_k T_s / N``, rounded so both
margins hold exactly). Groups (patients) are then placed one at a time, largest first, ties in seeded
random order, each into the split where its classes are most wanted (largest summed quota deficit). With
single-item groups this meets the quotas exactly; with larger groups it is close, and no group is split.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence

from kmat_cli.api import SPLITS

from .layout import Item


def proportional(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` divided in proportion to ``weights`` by largest remainder (sums to ``total``)."""
    wsum = float(sum(weights))
    if total <= 0 or wsum <= 0:
        return [0] * len(weights)
    raw = [total * w / wsum for w in weights]
    out = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def quotas(class_totals: Mapping[str, int], split_totals: Sequence[int]) -> dict[str, list[int]]:
    """Integer matrix ``q[class][split]``: rows sum to ``class_totals``, columns to ``split_totals``.

    Starts from ``floor(n_k T_s / N)`` and adds the remaining units to the cells with the largest
    fractional parts while both the row and the column still lack units (controlled rounding).
    """
    n = sum(class_totals.values())
    if sum(split_totals) != n:
        raise ValueError("split totals must sum to the class totals")
    classes = list(class_totals)
    raw = {k: [class_totals[k] * t / n if n else 0.0 for t in split_totals] for k in classes}
    q = {k: [math.floor(v) for v in raw[k]] for k in classes}
    row_left = {k: class_totals[k] - sum(q[k]) for k in classes}
    col_left = [t - sum(q[k][s] for k in classes) for s, t in enumerate(split_totals)]
    cells = sorted(
        ((k, s) for k in classes for s in range(len(split_totals))),
        key=lambda ks: (-(raw[ks[0]][ks[1]] - q[ks[0]][ks[1]]), classes.index(ks[0]), ks[1]),
    )
    for k, s in cells:
        if row_left[k] > 0 and col_left[s] > 0:
            q[k][s] += 1
            row_left[k] -= 1
            col_left[s] -= 1
    for k in classes:  # whatever greedy rounding left: any (row, column) pair that both lack a unit
        for s in range(len(split_totals)):
            add = min(row_left[k], col_left[s])
            q[k][s] += add
            row_left[k] -= add
            col_left[s] -= add
    return q


def assign_groups(groups: Mapping[str, Counter], ratio: Sequence[float], seed: int) -> dict[str, str]:
    """Group key -> split name, stratified by class and sized by ``ratio`` (see the module docstring).

    ``groups[g]`` counts group g's items per class. Deterministic for a given seed and input.
    """
    class_totals: Counter = Counter()
    for counts in groups.values():
        class_totals.update(counts)
    split_totals = proportional(sum(class_totals.values()), ratio)
    q = quotas(dict(sorted(class_totals.items())), split_totals)
    current = {k: [0] * len(SPLITS) for k in q}
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sum(groups[g].values()))  # stable: equal sizes keep the seeded order
    out = {}
    for g in order:
        counts = groups[g]

        def score(s: int, counts: Counter = counts) -> tuple[int, int]:
            need = sum(n * (q[k][s] - current[k][s]) for k, n in counts.items())
            total_need = sum(q[k][s] - current[k][s] for k in q)
            return need, total_need

        best = max(range(len(SPLITS)), key=score)
        for k, n in counts.items():
            current[k][best] += n
        out[g] = SPLITS[best]
    return out


def split_items(
    items: Mapping[str, Sequence[Item]], ratio: Sequence[float], seed: int
) -> dict[str, dict[str, list[Item]]]:
    """``{modality: items}`` -> ``{modality: {split: items}}``, all modalities split together.

    Items sharing a non-empty ``group`` land in the same split whatever their modality (a patient's
    dermoscopy and clinical photos alike); an item without a group is a group of its own.
    """

    def key(modality: str, i: int, item: Item) -> str:
        return item.group or f"\0{modality}:{i}"

    groups: dict[str, Counter] = {}
    for modality, listed in items.items():
        for i, item in enumerate(listed):
            groups.setdefault(key(modality, i, item), Counter())[item.classname] += 1
    where = assign_groups(groups, ratio, seed)
    out: dict[str, dict[str, list[Item]]] = {}
    for modality, listed in items.items():
        out[modality] = {s: [] for s in SPLITS}
        for i, item in enumerate(listed):
            out[modality][where[key(modality, i, item)]].append(item)
    return out
