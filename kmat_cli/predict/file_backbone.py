"""Backbone configs that come with a prompts file: registered backbones only, options checked against them.

A prompts file (its ``kmat.backbone_config`` metadata, or a ``config.yaml`` lying beside it) is data from
wherever the file came from. Building a backbone from it must never import or call code the file chooses:
the name must be a registered backbone (an entry point of group ``kmat.backbones``), never a
``package.module:attr`` import path or a file path, and every option must be a keyword-only option of that
backbone's constructor (``kmat_cli.config.plugin_options``) with a value of the option's type (JSON
scalars, lists and mappings; finite numbers). ``package.module:attr`` stays available where the user
chose it: ``--backbone``, the user's own ``--config`` and a run folder's ``config.yaml`` (``--run``).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kmat_cli import registry
from kmat_cli.config import plugin_options, type_ok
from kmat_cli.errors import UsageError

_JSON_TYPES = (str, int, float, bool, type(None), list, dict)


def _plain(value: Any) -> bool:
    """``value`` is JSON data: str, int, finite float, bool, None, lists and str-keyed dicts of those."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return isinstance(value, _JSON_TYPES)


def _hint_types(cls: Any, name: str) -> tuple[type, ...] | None:
    """The plain types the constructor's annotation of ``name`` allows (``str | None`` -> (str, NoneType)),
    or None where it cannot say (no annotation, an unresolvable one, or one that is not plain types)."""
    try:
        hint = typing.get_type_hints(cls.__init__).get(name)
    except Exception:  # a third-party annotation that does not resolve: no check beyond the default's type
        return None
    if hint is None:
        return None
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    allowed = tuple(typing.get_origin(a) or a for a in args)
    return allowed if all(t in _JSON_TYPES for t in allowed) else None


def _fits(value: Any, allowed: tuple[type, ...]) -> bool:
    """``value`` is of one of the ``allowed`` types (bool is not an int; an int is a float)."""
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def checked_section(section: Any, source: Path, key: str = "kmat.backbone_config") -> dict[str, Any]:
    """``section`` (``{"name": ..., <options>}`` or a bare name) read from ``source``, checked as the module
    docstring says; a one-line ``UsageError`` naming ``source`` and ``key`` for anything else."""
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, Mapping) or not isinstance(section.get("name"), str):
        raise UsageError(f"{source}: {key} has no backbone name")
    name = section["name"]
    known = registry.names("backbones")
    if name not in known:
        raise UsageError(
            f"{source}: {key} names unknown backbone {name!r}; a prompts file may only name an installed "
            f"backbone ({', '.join(known) or 'none'}); pass --run RUN to build it from a run's own config"
        )
    cls = registry.get("backbones", name)
    options = plugin_options(cls)
    for option, value in section.items():
        if option == "name":
            continue
        if option not in options:
            raise UsageError(
                f"{source}: {key} option {option!r} is not an option of backbone {name!r} "
                f"(options: {', '.join(sorted(options)) or 'none'})"
            )
        allowed = _hint_types(cls, option)
        ok = _plain(value) and type_ok(options[option], value) and (allowed is None or _fits(value, allowed))
        if not ok:
            raise UsageError(
                f"{source}: {key} option {option!r} of backbone {name!r} has a value of the wrong type "
                f"({type(value).__name__}: {str(value)[:80]!r})"
            )
    return dict(section)
