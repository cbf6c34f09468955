"""Reading user YAML (config files, task files, ``--set`` and ``--grid`` values): safe, strict, bounded.

On top of ``yaml.SafeLoader`` (plain data only, no Python tags), these are refused, each as a
one-line :class:`~kmat_cli.errors.UsageError` naming the source and the line:

- anchors and aliases (``&name``, ``*name``): a few hundred bytes of nested aliases expand into billions
  of values ("billion laughs"); kmat's files never need them, so write the value out instead;
- a key given twice in one mapping (YAML keeps the last one silently, hiding a typo or a merge mistake);
- nesting deeper than :data:`MAX_DEPTH` levels (the YAML composer recurses once per level);
- an integer of more than :data:`MAX_DIGITS` digits (Python refuses to convert very long ones) and a number
  written finite that overflows to infinity (``1.0e+400``); ``.inf`` and ``.nan`` are read as written.

:mod:`kmat_cli.datafiles` is the reader the rest of kmat calls; this module is its YAML parser.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from kmat_cli.errors import UsageError, short_repr

MAX_DEPTH = 64  # kmat's deepest config is 3 levels; a task file's lists add 2 or 3
MAX_DIGITS = 64  # kmat's largest integer (a seed) has 10 digits


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that kmat does not accept (see the module docstring)."""


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors and aliases, duplicate keys or deep nesting."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem="anchors and aliases (& and *) are not allowed; write the value out",
                problem_mark=event.start_mark,
            )
        if self._depth >= MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: Any) -> Any:
        digits = sum(c.isalnum() for c in str(node.value)) - str(node.value).lower().startswith(("0x", "0b"))
        if digits > MAX_DIGITS:
            raise _Refused(
                problem=f"an integer of {digits} digits (at most {MAX_DIGITS})", problem_mark=node.start_mark
            )
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: Any) -> Any:
        value = super().construct_yaml_float(node)
        if math.isinf(value) and "inf" not in str(node.value).lower():
            raise _Refused(
                problem=f"number {short_repr(node.value, 40)} is out of range", problem_mark=node.start_mark
            )
        return value

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if repeated:
                raise _Refused(
                    problem=f"key {short_repr(key)} is given twice; keep one",
                    problem_mark=key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load(text: str, source: str) -> Any:
    """The data of the YAML ``text`` read with :class:`StrictSafeLoader`; ``source`` (a file name or the
    option that gave the text) starts every error message."""
    try:
        return yaml.load(text, Loader=StrictSafeLoader)
    except RecursionError as exc:
        raise UsageError(f"{source}: nested too deeply") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        kind = "" if isinstance(exc, _Refused) else "malformed YAML: "
        raise UsageError(f"{source}:{where} {kind}{problem}") from exc


StrictSafeLoader.add_constructor("tag:yaml.org,2002:int", StrictSafeLoader.construct_yaml_int)
StrictSafeLoader.add_constructor("tag:yaml.org,2002:float", StrictSafeLoader.construct_yaml_float)
