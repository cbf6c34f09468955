"""Allowed values of run-config keys beyond their types, as data: number ranges, choices, patterns.

:func:`kmat_cli.config.resolve` checks every resolved config against these tables (and
:func:`kmat_cli.train.check_settings` a saved one before it is resumed), so a value no command can run
with (``--set train.eval_batch_size=0``, a negative learning rate, a seed torch cannot take) is a one-line
UsageError before any run folder exists, not a failure after training.

Plugin options have ranges too: a plugin class states them as data in its ``limits`` attribute
(``limits = {"lambda1": (0, 1e6), "epsilon": (Above(0), None)}``), and :func:`check_plugin` (called by
:func:`kmat_cli.config.resolve` for every plugin section) enforces them with the same one-line errors. A
range is ``(least, most)``, both inclusive, ``None`` for unbounded; :class:`Above` makes the least exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kmat_cli.errors import UsageError, shown


class Above(float):
    """A lower bound a value must exceed, not reach: ``(Above(0), None)`` means "greater than 0"."""


Range = tuple[float | None, float | None]

KNOWLEDGE_REGIMES = ("shipped", "partial", "pooled", "generic", "shuffled")  # see kmat_cli.knowledge
SEED_MAX = 2**32 - 1  # numpy's limit; torch's generators and the per-epoch seeds take it too

# key: (least, most); None: unbounded on that side
RANGES: dict[str, Range] = {
    "train.shots": (1, None),
    "train.seed": (0, SEED_MAX),
    "train.epochs": (0, None),
    "train.batch_size": (1, None),
    "train.lr": (0, None),
    "train.momentum": (0, 1),
    "train.weight_decay": (0, None),
    "train.warmup_epochs": (0, None),
    "train.warmup_lr": (0, None),
    "train.augment_views": (0, None),
    "train.eval_batch_size": (1, None),
    "train.num_workers": (0, None),
    "train.threads": (0, None),
    "knowledge.fraction": (0, 1),
    "knowledge.seed": (0, SEED_MAX),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "train.optimizer": ("sgd",),
    "train.scheduler": ("cosine", "constant"),
    "knowledge.regime": KNOWLEDGE_REGIMES,
}
# key: (pattern the whole value must match, what to write instead)
PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "train.device": (re.compile(r"auto|cpu|mps|cuda(:\d+)?"), "auto, cpu, cuda, cuda:N or mps"),
}


def _lookup(cfg: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{float(x):g}"


def _bound(least: float | None, most: float | None) -> str:
    low = (
        None
        if least is None
        else f"{'greater than' if isinstance(least, Above) else 'at least'} {_num(least)}"
    )
    if most is None:
        return low or "any number"
    if least is None:
        return f"at most {_num(most)}"
    if isinstance(least, Above):
        return f"{low} and at most {_num(most)}"
    return f"between {_num(least)} and {_num(most)}"


def outside(value: Any, bounds: Range) -> str | None:
    """What ``value`` must be when it is a number outside ``bounds`` (e.g. ``"at least 0"``), else None;
    values that are not numbers are left to the type checks."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    least, most = bounds
    below = least is not None and (value <= least if isinstance(least, Above) else value < least)
    if below or (most is not None and value > most):
        return _bound(least, most)
    return None


def check_plugin(section: str, plugin: Any, options: Mapping[str, Any]) -> None:
    """The options of a ``section`` (``method``, ``transport``, ...) within the ranges its ``plugin`` class
    states in ``limits``; a one-line UsageError naming ``section.option`` otherwise."""
    for key, bounds in (getattr(plugin, "limits", None) or {}).items():
        bound = outside(options.get(key), bounds)
        if bound is not None:
            raise UsageError(f"config key '{section}.{key}' must be {bound}, got {shown(options[key])}")


def check(cfg: Mapping[str, Any]) -> None:
    """Raise a one-line UsageError naming the first key of ``cfg`` outside its range, choices or pattern;
    keys absent from ``cfg`` are skipped (their types are checked elsewhere)."""
    for key, bounds in RANGES.items():
        found, value = _lookup(cfg, key)
        bound = outside(value, bounds) if found else None
        if bound is not None:
            raise UsageError(f"config key '{key}' must be {bound}, got {shown(value)}")
    for key, allowed in CHOICES.items():
        found, value = _lookup(cfg, key)
        if found and value not in allowed:
            raise UsageError(f"config key '{key}' must be one of {', '.join(allowed)}, got {shown(value)}")
    for key, (pattern, hint) in PATTERNS.items():
        found, value = _lookup(cfg, key)
        if found and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise UsageError(f"config key '{key}' must be {hint}, got {shown(value)}")
