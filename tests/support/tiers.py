"""The fast tier: which tests train a model, start a process or build the full-size BiomedCLIP, found from
their source, and a guard that fails any such test the finder missed.

A test ``trains``, ``spawns`` or is ``full_size`` when its function, a fixture it uses, or a function of their
modules that they call (transitively) contains one of the patterns below. ``pytest --fast`` (``make
test-fast``) deselects the three kinds and runs the rest with training (``Trainer.fit``), new processes
(``subprocess``, ``multiprocessing``) and the full-size BiomedCLIP folder (ViT-B/16 + BERT-base, about 200M
parameters: ``folders.biomedclip_config(tiny=False)``) refused, so a test the patterns miss fails there with
the marker to add by hand. The toy BiomedCLIP (the same tower kinds at toy size) stays in the fast tier.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

PATTERNS = {
    "spawns": re.compile(
        r"\bsubprocess\b|\bPopen\b|\bkmat_exe\b|\brun_kmat\(|(?<![\w.])kmat\(|\bmultiprocessing\b"
        r"|ProcessPool|\bos\.fork\b|\bworkers=[1-9]|--jobs|--executor"
    ),
    "trains": re.compile(
        r"\brun_training\(|\bkmat\.train\(|\.fit\(|\btrain_args\(|\btrain_argv\(|\btoy_cfg\(|\bTrainer\("
        r"|[\[(]\s*[\"'](?:train|benchmark|tune)[\"']|\*(?:SMALL|PHANTOM|SHORT_FLAGS)\b|\bsmall_bench\b"
        r"|\bphantom_run\b|\bphantom_prompts\b|--resume"
    ),
    "full_size": re.compile(r"\bbiomedclip_full\b|\bwrite_biomedclip_dir\((?!.*\btiny=True)"),
}
KINDS = tuple(PATTERNS)


@functools.cache
def _module_kinds(module: types.ModuleType) -> dict[str, frozenset[str]]:
    """The kinds of each top-level function and class of the module: those its own source shows, joined
    with those of the module's functions it names, to a fixed point (so a cycle of helpers is no problem)."""
    try:
        source = inspect.getsource(module)
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    lines = source.splitlines(keepends=True)
    nodes = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    kinds = {}
    for name, node in nodes.items():
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        text = "".join(lines[first - 1 : node.end_lineno])
        kinds[name] = {kind for kind, pattern in PATTERNS.items() if pattern.search(text)}
    names = {
        name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & nodes.keys()
        for name, node in nodes.items()
    }
    changed = True
    while changed:
        changed = False
        for name, called in names.items():
            joined = kinds[name].union(*(kinds[other] for other in called))
            if joined != kinds[name]:
                kinds[name], changed = joined, True
    return {name: frozenset(found) for name, found in kinds.items()}


def _function_kinds(func: Callable[..., Any]) -> frozenset[str]:
    func = inspect.unwrap(func)
    module = sys.modules.get(getattr(func, "__module__", ""), None)
    if module is None:
        return frozenset()
    return _module_kinds(module).get(func.__qualname__.split(".")[0], frozenset())


def kinds(item: pytest.Item) -> set[str]:
    """``trains`` / ``spawns`` of a collected test, from its function, its module's helpers and its fixtures."""
    found: set[str] = set()
    if isinstance(item, pytest.Function):
        found |= _function_kinds(item.function)
        for defs in item._fixtureinfo.name2fixturedefs.values():
            for fixture in defs:
                found |= _function_kinds(fixture.func)
    return found


def mark(items: list[pytest.Item]) -> None:
    """Add the markers of :data:`KINDS` the source shows (a marker set by hand is kept)."""
    for item in items:
        for kind in kinds(item) - set(item.keywords):
            item.add_marker(getattr(pytest.mark, kind))


def fast_only(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of any of :data:`KINDS` (``--fast``)."""
    keep, drop = [], []
    for item in items:
        (drop if any(kind in item.keywords for kind in KINDS) else keep).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def _refuse(what: str, marker: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the fast tier runs no test that {what}: mark this test @pytest.mark.{marker}")

    return refuse


@pytest.fixture(scope="session")
def fast_tier_guard() -> Iterator[None]:
    """Training, new processes and the full-size BiomedCLIP refused for the whole session, session fixtures
    included (tests/conftest.py, under ``--fast``)."""
    import multiprocessing.process
    import subprocess

    import folders

    from kmat_cli import train

    toy_only = folders.biomedclip_config

    def biomedclip_config(tiny: bool = False) -> dict[str, Any]:
        if not tiny:
            _refuse("builds the full-size BiomedCLIP", "full_size")()
        return toy_only(tiny)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train.Trainer, "fit", _refuse("trains a model", "trains"))
        patch.setattr(subprocess.Popen, "__init__", _refuse("starts a process", "spawns"))
        patch.setattr(multiprocessing.process.BaseProcess, "start", _refuse("starts a process", "spawns"))
        patch.setattr(folders, "biomedclip_config", biomedclip_config)
        yield
