"""The plugin registry: backbones, transports, tasks and methods found through Python entry points.

Every built-in is declared in ``pyproject.toml`` under the groups ``kmat.backbones``, ``kmat.transports``,
``kmat.tasks`` and ``kmat.methods``; a third-party package registers the same way. Entry points are
loaded lazily, on first use of a name. ``package.module:attr`` is accepted wherever a name is, as an
escape hatch for plugins that are not installed as a distribution.

Files are data, never code (:func:`check_from_file`): a plugin name read from a file (a task file's
``config``, a ``--config`` file, a run folder's ``config.yaml``, a benchmark request) may name an installed
plugin, but ``module:attr`` there is refused before anything is imported, unless the user opts in with
``KMAT_TRUST_CODE=1``. The command line's own names (``--method pkg.mod:Attr``, ``--set``) are the user's
and always accepted; a prompts file may only name an installed backbone
(:mod:`kmat_cli.predict.file_backbone`).

    >>> from kmat_cli.registry import get
    >>> FGW = get("transports", "fgw")
    >>> loss = FGW(epsilon=0.1, alpha=0.1, max_iter=100)(X_hi, X_lo)
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from kmat_cli.errors import UsageError

KINDS = ("backbones", "transports", "tasks", "methods")
TRUST_CODE = "KMAT_TRUST_CODE"  # =1: plugin names in files may import code (module:attr)


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin: its name, the distribution that provides it and its entry-point value."""

    kind: str
    name: str
    value: str
    distribution: str


def check_kind(kind: str) -> str:
    """The plugin kind ``kind`` names (``transport`` is ``transports``); a UsageError suggesting the
    nearest kind when it names none."""
    if kind in KINDS:
        return kind
    singular = {k[:-1]: k for k in KINDS}
    if kind in singular:
        return singular[kind]
    raise UsageError(f"unknown plugin kind '{kind}'{_suggest(kind, KINDS)}; known kinds: {', '.join(KINDS)}")


def _suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


@cache
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=f"kmat.{kind}"):
        found.setdefault(ep.name, ep)
    return found


def names(kind: str) -> list[str]:
    """The registered names of one plugin kind, sorted."""
    return sorted(_entry_points(check_kind(kind)))


def infos(kind: str) -> list[PluginInfo]:
    """Name, entry-point value and providing distribution of every plugin of ``kind``."""
    kind = check_kind(kind)
    out = []
    for name, ep in sorted(_entry_points(kind).items()):
        owner = getattr(ep, "dist", None)
        dist = owner.name if owner is not None else "?"
        out.append(PluginInfo(kind=kind, name=name, value=ep.value, distribution=dist))
    return out


def _is_import_path(name: str) -> bool:
    """True for ``package.module:attr`` (dotted identifiers on both sides of one colon)."""
    module_name, sep, attr = name.partition(":")
    parts = module_name.split(".") + attr.split(".")
    return bool(sep) and all(part.isidentifier() for part in parts)


def check_from_file(kind: str, name: Any, source: str | os.PathLike, key: str) -> None:
    """The rule for a plugin name that ``source`` (a file) gives as ``key``: an installed plugin, a task
    file or anything that is not ``module:attr`` passes (an unknown name fails later, like one typed); a
    ``module:attr`` that is not an installed plugin raises a UsageError naming the file and
    ``KMAT_TRUST_CODE``, unless that is set to 1. Imports nothing."""
    kind = check_kind(kind)
    if not isinstance(name, str) or not _is_import_path(name) or name in _entry_points(kind):
        return
    if os.environ.get(TRUST_CODE) == "1":
        return
    raise UsageError(
        f"{source}: {key} '{name}' would import Python code from module '{name.partition(':')[0]}'; a file "
        f"may only name an installed {kind[:-1]} ({', '.join(names(kind))}); if you trust this file, run "
        f"again with {TRUST_CODE}=1"
    )


def _load_path(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import '{module_name}' for plugin '{path}': {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise UsageError(f"module '{module_name}' has no attribute '{attr}' (plugin '{path}')") from exc
    return obj


def get(kind: str, name: str) -> Any:
    """The plugin object (usually a class) registered as ``name`` in ``kind``, or at ``module:attr``.

    Raises ``UsageError`` (exit code 2) for an unknown name, listing the known ones and the closest match.
    A task name ending in ``.yaml``/``.yml`` is a custom task file, served by the ``yaml`` task plugin.
    """
    kind = check_kind(kind)
    known = _entry_points(kind)
    if name in known:
        return _load_cached(kind, name)
    if kind == "tasks" and name.lower().endswith((".yaml", ".yml")):
        return _task_file(name)
    if _is_import_path(name):
        return _load_path(name)
    raise UsageError(
        f"unknown {kind[:-1]} '{name}'{_suggest(name, list(known))}; known: {', '.join(sorted(known)) or 'none'}"
    )


def _task_file(path: str) -> Any:
    """A task name that is a YAML file: the ``yaml`` task plugin bound to that file (``.bind(path)``)."""
    if not Path(path).expanduser().is_file():
        raise UsageError(f"{path}: task file not found")
    return get("tasks", "yaml").bind(path)


@cache
def _load_cached(kind: str, name: str) -> Any:
    ep = _entry_points(kind)[name]
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must name itself, not crash with a bare traceback
        raise UsageError(f"{kind[:-1]} plugin '{name}' ({ep.value}) failed to load: {exc}") from exc


def static_summary(kind: str, name: str) -> str | None:
    """The first docstring line of a registered plugin, read from its module's source without importing
    it (``kmat list`` stays fast: no torch, no plugin code runs). Follows base classes defined in the same
    module when the class has no docstring of its own. None where the source cannot be read that way (a
    plugin built at import time, a compiled module): :func:`summary` of the loaded plugin tells then."""
    import ast
    import importlib.util

    ep = _entry_points(check_kind(kind)).get(name)
    if ep is None or ":" not in ep.value:
        return None
    module_name, _, attr = ep.value.partition(":")
    try:
        spec = importlib.util.find_spec(module_name.strip())
        source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else None
        tree = ast.parse(source) if source is not None else None
    except (ImportError, ValueError, OSError, SyntaxError):
        return None
    if tree is None:
        return None
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    seen: set[str] = set()
    target = attr.strip()
    while target in defs and target not in seen:
        seen.add(target)
        node = defs[target]
        doc = ast.get_docstring(node)
        if doc and doc.strip():
            return doc.strip().splitlines()[0]
        bases = [b.id for b in getattr(node, "bases", []) if isinstance(b, ast.Name)]
        target = bases[0] if bases else ""
    return None


def summary(obj: Any) -> str:
    """The first line of a plugin's docstring (what ``kmat list`` shows)."""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
