"""Paired differences between two configurations with a bootstrap 95 % interval.

A *unit* is one (world, seed) pair run under both configurations A and B: the same task data, the same
few-shot draw and initialisation, the same test images. Its per-image correctness vectors a, b (0/1, in
test-split order) give the unit's difference d_u = mean(a) - mean(b); the estimate is the mean of d_u over
the n units.

The interval is a two-level percentile bootstrap (``replicates`` draws, seeded): each replicate draws n
units with replacement and, for every image group (units that share their test images, e.g. one world
under every seed), one resample of its test images with replacement, applied to every unit of the group;
the replicate's value is the mean over the drawn units of mean(a[idx]) - mean(b[idx]). The 2.5 and 97.5
percentiles of the replicates bound the interval, so it covers both the spread between seeds and worlds and
the sampling of test images. With one unit it is the ordinary percentile bootstrap of a paired mean over
images; with constant per-image differences it is the percentile bootstrap of the mean over units.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

REPLICATES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Unit:
    """One paired unit: its image ``group`` and the correctness of A and B on the same test images."""

    group: Hashable
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class Difference:
    """mean of A - B over ``n`` units (percent points), with the bootstrap interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int
    wins: int  # units where A - B > 0

    def markdown(self) -> str:
        if self.n == 0:
            return "—"
        return f"{self.mean:+.1f} [{self.low:+.1f}, {self.high:+.1f}] ({self.wins}/{self.n})"


def correctness(text: str) -> np.ndarray:
    """The 0/1 vector of a ``metrics.json`` ``correct`` string."""
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")


def paired_difference(
    units: Sequence[Unit], *, replicates: int = REPLICATES, level: float = LEVEL, seed: int = 0
) -> Difference:
    """The mean paired difference (percent) of ``units`` and its two-level bootstrap interval."""
    if not units:
        return Difference(float("nan"), float("nan"), float("nan"), 0, 0)
    for u in units:
        if u.a.shape != u.b.shape or u.a.ndim != 1 or u.a.size == 0:
            raise ValueError("a paired unit needs two correctness vectors of one length")
    diffs = np.array([u.a.mean() - u.b.mean() for u in units])
    groups = list(dict.fromkeys(u.group for u in units))
    sizes = {g: next(u.a.size for u in units if u.group == g) for g in groups}
    if any(u.a.size != sizes[u.group] for u in units):
        raise ValueError("units of one image group must share their test images")
    rng = np.random.default_rng(seed)
    delta = [(u.a.astype(float) - u.b.astype(float)) for u in units]
    values = np.empty(replicates)
    for r in range(replicates):
        picks = rng.integers(0, len(units), len(units))
        images = {g: rng.integers(0, sizes[g], sizes[g]) for g in groups}
        values[r] = np.mean([delta[i][images[units[i].group]].mean() for i in picks])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return Difference(
        100 * float(diffs.mean()), 100 * float(low), 100 * float(high), len(units), int((diffs > 0).sum())
    )
