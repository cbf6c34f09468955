"""Few-shot sampling: the labelled high-end images a run trains on."""

from __future__ import annotations

import random
from collections.abc import Sequence

from kmat_cli.api import Sample, UsageError


def few_shot(samples: Sequence[Sample], class_names: Sequence[str], shots: int, seed: int) -> list[Sample]:
    """``shots`` samples per class drawn without replacement with ``random.Random(seed)``.

    Deterministic for a given seed and split (samples are sorted by path first, so the order a task lists
    them in does not matter). Returned grouped by class, in class order. A class with fewer than ``shots``
    samples is a UsageError (exit code 2) naming the class and how many it has.
    """
    if shots < 1:
        raise UsageError(f"train.shots must be at least 1, got {shots}")
    by_class: list[list[Sample]] = [[] for _ in class_names]
    for s in samples:
        if not 0 <= s.label < len(class_names):
            raise UsageError(f"{s.path}: label {s.label} is outside the task's {len(class_names)} classes")
        by_class[s.label].append(s)
    rng = random.Random(seed)
    out: list[Sample] = []
    for k, pool in enumerate(by_class):
        if not pool:
            raise UsageError(
                f"class '{class_names[k]}' has no high-end training images; check the task's data"
            )
        if len(pool) < shots:
            raise UsageError(
                f"class '{class_names[k]}' has {len(pool)} high-end training images, fewer than "
                f"{shots} shots; pass --shots {len(pool)} or fewer"
            )
        pool = sorted(pool, key=lambda s: str(s.path))
        out.extend(rng.sample(pool, shots))
    return out
