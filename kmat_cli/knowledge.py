"""Knowledge regimes: deterministic, seeded degradations of a task's low-end descriptions.

How much do the low-end descriptions carry? A run's ``knowledge`` config section rewrites the descriptions
of the low-end modality only (the high-end ones are returned untouched) before any method sees them:

- ``shipped``: as given (the task's own, or the ``descriptions`` file);
- ``partial``: ``round(fraction * K)`` classes get :data:`GENERIC` sentences, which name no class feature;
  the classes are taken one per group in turn (a shuffled order of groups, a shuffled order inside each),
  so with pairs and fraction 0.5 one class of every pair loses its text;
- ``pooled``: every class gets the pooled text of its group (the descriptions of all its members, in
  class order): which group is known, which class is not;
- ``generic``: every class gets :data:`GENERIC`;
- ``shuffled``: class k gets the text of class pi(k), pi a random derangement (no class keeps its own).

Groups: the task's ``class_groups`` when it declares them (the phantom task: its confusable pairs); else
the classes in a seeded random order cut into pairs (an odd class out joins the last pair). The random
draws use ``numpy.random.default_rng([seed, regime index])`` with ``seed`` = ``knowledge.seed``, or the
run's ``train.seed`` when that is null: the same seed gives the same texts on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kmat_cli.errors import UsageError, short_repr
from kmat_cli.limits import KNOWLEDGE_REGIMES as REGIMES

MODALITY = "lo"  # the modality whose descriptions are degraded
GENERIC = (
    "a lesion seen on the scan.",
    "an area that looks different from the background.",
    "a lesion is visible in this image.",
    "something is seen here on the scan.",
    "a lesion near the middle of the image.",
)
Descriptions = Mapping[str, Mapping[str, Sequence[str]]]


def _rng(seed: int, regime: str) -> np.random.Generator:
    return np.random.default_rng([seed, REGIMES.index(regime)])


def groups(
    class_names: Sequence[str], declared: Sequence[Sequence[str]] | None, seed: int
) -> list[list[str]]:
    """The class groups: ``declared`` (checked to cover every class once), else seeded random pairs."""
    names = list(class_names)
    if declared:
        flat = [c for g in declared for c in g]
        if sorted(flat) != sorted(names):
            raise UsageError(f"task class_groups {short_repr(declared)} must hold every class exactly once")
        return [list(g) for g in declared]
    order = [names[i] for i in np.random.default_rng([seed, 99]).permutation(len(names))]
    pairs = [order[i : i + 2] for i in range(0, len(order), 2)]
    if len(pairs) > 1 and len(pairs[-1]) == 1:
        odd = pairs.pop()
        pairs[-1] = pairs[-1] + odd
    return pairs


def derangement(k: int, rng: np.random.Generator) -> list[int]:
    """A uniformly drawn permutation of range(k) with no fixed point (k >= 2), by rejection."""
    if k < 2:
        raise UsageError("knowledge.regime shuffled needs at least 2 classes")
    while True:
        perm = rng.permutation(k)
        if not np.any(perm == np.arange(k)):
            return [int(i) for i in perm]


def partial_classes(
    group_list: Sequence[Sequence[str]], fraction: float, rng: np.random.Generator
) -> list[str]:
    """The ``round(fraction * K)`` classes that lose their text: one per group in turn (module docstring)."""
    shuffled = [[g[i] for i in rng.permutation(len(g))] for g in group_list]
    shuffled = [shuffled[i] for i in rng.permutation(len(shuffled))]
    order = [g[i] for i in range(max(map(len, shuffled))) for g in shuffled if i < len(g)]
    k = sum(map(len, group_list))
    return order[: round(fraction * k)]


def degrade(
    descriptions: Descriptions,
    class_names: Sequence[str],
    *,
    regime: str,
    fraction: float = 0.5,
    seed: int = 0,
    class_groups: Sequence[Sequence[str]] | None = None,
) -> dict[str, dict[str, list[str]]]:
    """``descriptions`` with the :data:`MODALITY` part rewritten by ``regime`` (module docstring); every
    other modality is copied unchanged."""
    if regime not in REGIMES:
        raise UsageError(f"knowledge.regime {short_repr(regime)} is not one of {', '.join(REGIMES)}")
    out = {m: {c: list(texts) for c, texts in per.items()} for m, per in descriptions.items()}
    if regime == "shipped":
        return out
    if MODALITY not in out:
        raise UsageError(f"knowledge.regime {regime} needs '{MODALITY}' descriptions; the task has none")
    names = list(class_names)
    own = {c: list(out[MODALITY][c]) for c in names}
    rng = _rng(seed, regime)
    if regime == "generic":
        new = {c: list(GENERIC) for c in names}
    elif regime == "shuffled":
        perm = derangement(len(names), rng)
        new = {c: own[names[perm[i]]] for i, c in enumerate(names)}
    elif regime == "pooled":
        new = {}
        for g in groups(names, class_groups, seed):
            pooled = [t for c in names if c in g for t in own[c]]
            new.update({c: list(pooled) for c in g})
    else:  # partial
        lost = set(partial_classes(groups(names, class_groups, seed), fraction, rng))
        new = {c: list(GENERIC) if c in lost else own[c] for c in names}
    out[MODALITY] = new
    return out


def apply(descriptions: Descriptions | None, task: Any, cfg: Mapping[str, Any]) -> Descriptions | None:
    """The run's descriptions under its ``knowledge`` section (seed: ``knowledge.seed``, else
    ``train.seed``); None stays None, and ``shipped`` returns ``descriptions`` itself."""
    section = cfg.get("knowledge") or {}
    regime = section.get("regime", "shipped")
    if descriptions is None or regime == "shipped":
        if regime not in REGIMES:
            raise UsageError(f"knowledge.regime {short_repr(regime)} is not one of {', '.join(REGIMES)}")
        return descriptions
    seed = section.get("seed")
    if seed is None:
        seed = cfg["train"]["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UsageError(
            f"config key 'knowledge.seed' must be null or an integer >= 0, got {short_repr(seed)}"
        )
    return degrade(
        descriptions,
        task.class_names,
        regime=regime,
        fraction=float(section.get("fraction", 0.5)),
        seed=seed,
        class_groups=getattr(task, "class_groups", None),
    )
