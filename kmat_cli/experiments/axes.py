"""Extra axes of a benchmark grid: config keys that take several values, crossed with the tasks.

``kmat benchmark --knowledge shipped,partial`` is the axis ``knowledge.regime``; ``--vary task.seed=0,1``
any other key. A :class:`Block` is one task under one value of every axis; it is a report block (its own
Table 2 block) and its values are ``--set`` items of every cell in it, applied after the user's ``--set``
and before a row's own overrides. Without axes a block is the task alone, named by the task.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kmat_cli.errors import UsageError, short_repr

KNOWLEDGE = "knowledge.regime"
Axes = tuple[tuple[str, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class Block:
    """One task under one value of each axis: ``values`` = ((key, value), ...) in axis order."""

    task: str
    values: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """``task`` alone, or ``task (key=value, ...)``."""
        if not self.values:
            return self.task
        return f"{self.task} (" + ", ".join(f"{k}={v}" for k, v in self.values) + ")"

    @property
    def sets(self) -> tuple[str, ...]:
        return tuple(f"{k}={v}" for k, v in self.values)

    def value(self, key: str) -> Any:
        return dict(self.values).get(key)


def parse_vary(items: Sequence[str]) -> Axes:
    """``["task.seed=0,1,11"]`` -> ``(("task.seed", (0, 1, 11)),)``; values as YAML scalars."""
    from kmat_cli import safeyaml

    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise UsageError(
                f"--vary {short_repr(item)}: expected key=v1,v2,..., e.g. --vary task.seed=0,1,11"
            )
        out.append((key.strip(), tuple(safeyaml.load(v, f"--vary {short_repr(item)}") for v in values)))
    keys = [k for k, _ in out]
    if len(set(keys)) != len(keys):
        raise UsageError(f"--vary names a key twice: {', '.join(keys)}")
    return tuple(out)


def blocks(tasks: Sequence[str], axes: Axes) -> list[Block]:
    """Every combination of axis values (first axis slowest) crossed with every task (fastest)."""
    keys = [k for k, _ in axes]
    combos = itertools.product(*(values for _, values in axes))
    return [Block(t, tuple(zip(keys, combo, strict=True))) for combo in combos for t in tasks]


def to_json(axes: Axes) -> list[list[Any]]:
    return [[k, list(v)] for k, v in axes]


def from_json(data: Sequence[Sequence[Any]]) -> Axes:
    return tuple((str(k), tuple(v)) for k, v in data)
