"""Number ranges of config values and their one-line errors: the plugins' ``limits`` and the run config's.

A range is ``(least, most)``, both inclusive, ``None`` for unbounded; :class:`Above` makes the least
exclusive. A plugin class states the ranges of its options as data in its ``limits`` attribute
(``limits = {"lambda1": (0, 1e6), "epsilon": (Above(0), None)}``), enforced by :func:`check_plugin` for every
plugin section a config is resolved with; the run config's own keys carry theirs as field metadata
(:mod:`kmat_cli.runconfig`). Both report a value outside with :func:`outside`'s words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kmat_cli.errors import UsageError, short_repr


class Above(float):
    """A lower bound a value must exceed, not reach: ``(Above(0), None)`` means "greater than 0"."""


Range = tuple[float | None, float | None]

KNOWLEDGE_REGIMES = ("shipped", "partial", "pooled", "generic", "shuffled")  # see kmat_cli.knowledge
SEED_MAX = 2**32 - 1  # numpy's limit; torch's generators and the per-epoch seeds take it too


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
            raise UsageError(f"config key '{section}.{key}' must be {bound}, got {short_repr(options[key])}")
